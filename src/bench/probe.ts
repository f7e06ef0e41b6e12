import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';

/** A prober living in the client container: "IP PORT TIMEOUT_MS" in, "1 <connect ms>" or "0" out. */
export const PROBER = `const net=require('net');require('readline').createInterface({input:process.stdin}).on('line',l=>{const[ip,port,to]=l.split(' ');const t0=process.hrtime.bigint();const s=net.connect(+port,ip);const tm=setTimeout(()=>{s.destroy();console.log('0')},+to);s.on('connect',()=>{clearTimeout(tm);const d=Number(process.hrtime.bigint()-t0)/1e6;s.destroy();console.log('1 '+d)});s.on('error',()=>{clearTimeout(tm);console.log('0')})});`;
/** Accepts connections on every port given as an argument and discards what arrives. */
export const SERVER = `const net=require('net');for(const p of process.argv.slice(2))net.createServer(s=>s.on('data',()=>{}).on('error',()=>{})).listen(+p);`;

/** Measures TCP connect times from inside a network namespace, one connection at a time. */
export class Prober {
  private readonly p: ChildProcess;
  private readonly waiting: Array<(l: string) => void> = [];
  constructor(netns: string, script: string, bg: ChildProcess[]) {
    this.p = spawn('nsenter', [`--net=${netns}`, process.execPath, script], { stdio: ['pipe', 'pipe', 'ignore'] });
    bg.push(this.p);
    createInterface({ input: this.p.stdout! }).on('line', (l) => this.waiting.shift()?.(l));
  }
  probe(ip: string, port: number, timeoutMs: number): Promise<number | undefined> {
    return new Promise((resolve) => {
      this.waiting.push((l) => resolve(l.startsWith('1') ? Number(l.split(' ')[1]) : undefined));
      this.p.stdin!.write(`${ip} ${port} ${timeoutMs}\n`);
    });
  }
}
