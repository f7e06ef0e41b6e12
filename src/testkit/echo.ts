/**
 * Echo servers and a concurrent prober for the truth-table tests (matrix, NetworkPolicy), written into
 * a test's directory and run with `node FILE` inside a pod's namespace.
 *
 * ECHO_SERVER PORT...: echoes TCP and UDP (IPv4 and IPv6) on each port. Every socket has an error
 * handler: a prober that gives up between its connect and the echo resets the connection, and an
 * unhandled ECONNRESET once ended a pod's server, and with it every port of that pod, for the rest of a run.
 *
 * PROBER TARGETS TIMEOUT_MS FIRST_UDP_PORT: TARGETS is a JSON list of [ip, 'tcp' | 'udp', port]; prints a
 * JSON list of booleans (answered within TIMEOUT_MS). The i-th UDP probe is sent from FIRST_UDP_PORT + i
 * (0: the kernel chooses): a datagram whose 5-tuple an earlier, allowed probe left in conntrack passes as
 * that flow's, whatever the policy says now, so a test that changes policy gives each round new ports.
 */
export const ECHO_SERVER = `const net=require('net'),dgram=require('dgram');
for(const p of process.argv.slice(2).map(Number)){
net.createServer(s=>{s.on('error',()=>{});s.pipe(s)}).on('error',e=>console.error('tcp',p,e.message)).listen(p);
for(const o of [{type:'udp4'},{type:'udp6',ipv6Only:true}]){const u=dgram.createSocket(o);u.on('error',e=>console.error(o.type,p,e.message));u.on('message',(m,r)=>u.send(m,r.port,r.address,()=>{}));u.bind(p);}}`;

export const PROBER = `const net=require('net'),dgram=require('dgram');
const t=JSON.parse(process.argv[2]),wait=Number(process.argv[3]),from=Number(process.argv[4]||0);
Promise.all(t.map(([ip,proto,port],i)=>new Promise(res=>{let s;const done=(ok)=>{clearTimeout(tm);try{s.destroy?s.destroy():s.close()}catch{};res(ok)};const tm=setTimeout(()=>done(false),wait);
if(proto==='tcp'){s=net.connect(port,ip,()=>s.write('x'));s.on('data',()=>done(true));s.on('error',()=>done(false));}
else{s=dgram.createSocket(ip.includes(':')?'udp6':'udp4');s.on('message',()=>done(true));s.on('error',e=>{console.error(ip,port,e.message);done(false)});
s.bind(from>0?from+i:0,()=>s.send('x',port,ip,()=>{}));}}))).then(r=>console.log(JSON.stringify(r)));`;

/** UDP source ports for probe rounds: each round's block is new in the run (until the range wraps). */
export class ProbePorts {
  private next: number;
  constructor(private readonly start = 10_000, private readonly end = 30_000) {
    this.next = start;
  }
  /** The first port of a block of `count`, never handed out before unless the range has wrapped. */
  take(count: number): number {
    if (count > this.end - this.start) throw new Error(`a block of ${count} ports does not fit in ${this.start}-${this.end}`);
    if (this.next + count > this.end) this.next = this.start;
    const first = this.next;
    this.next += count;
    return first;
  }
}
