import type { Logger } from 'pino';
import type { Client } from '../client/index.js';
import type { Runner } from '../exec/index.js';
import type { Endpoint } from '../model/index.js';
import type { DesiredState } from './state.js';

/** What a verification asks (control/verify.ts VerifyRequest, as the watch carries it). */
interface Request { tenant: string; id: string; flows: Array<{ protocol: 'tcp' | 'udp'; port: number }>; timeoutMs: number; createdAt: string }

/** A request older than this (replayed by a watch resuming) is not answered: its server has given up. */
const STALE_MS = 60_000;
/** How many endpoints probe at once (each is one short-lived process in its namespace). */
const PARALLEL = 8;

/**
 * Probes a list of [ip, protocol, port] (on its standard input) from inside a namespace, all at once, and prints a JSON array of
 * booleans. TCP: a connection, or a refusal (a RST came back through the policy), is a pass. UDP: an
 * answer from the target, or a port-unreachable (an ICMP error came back), is a pass; silence is not.
 * A UDP datagram is sent again every quarter of the timeout on the same socket (the same flow): one lost
 * datagram, or one the target read late, is not a blocked flow (a CI run: an allowed 80/udp cell reported
 * blocked on both hosts while conntrack held the flow).
 * A UDP pass is confirmed by a second probe from another socket (another source port): a conntrack entry
 * left by earlier traffic on the first one's 5-tuple (allowed then; an entry lives 30 s past its last
 * packet) lets a datagram through that the policy now drops for new flows, and verify checks new flows.
 * Probes leave from the endpoint's own address (argv[2]), whichever interface the route picks.
 * A probe's timeout decides only after the I/O already there is handled (setImmediate runs after the poll
 * phase): on a loaded host a connection established in time could otherwise be counted a failure when
 * its timer and its connect event come in the same turn of the loop (a CI run: two allowed cells
 * reported blocked, while conntrack held a completed connection of each pair a second old).
 */
export const PROBER = `const net=require('net'),dgram=require('dgram');const to=+process.argv[1],src=process.argv[2];let input='';process.stdin.on('data',d=>input+=d).on('end',()=>{const t=JSON.parse(input);
const once=(ip,proto,port)=>new Promise(res=>{let s,again,over=false;const done=(ok)=>{if(over)return;over=true;clearTimeout(tm);clearInterval(again);try{s.destroy?s.destroy():s.close()}catch{};res(ok)};const tm=setTimeout(()=>setImmediate(()=>done(false)),to);
if(proto==='tcp'){s=net.connect({port,host:ip,localAddress:src},()=>done(true));s.on('error',(e)=>done(e.code==='ECONNREFUSED'));}
else{s=dgram.createSocket(net.isIPv6(ip)?'udp6':'udp4');s.on('message',(m,r)=>{if(r.address===ip&&r.port===port)done(true)});s.on('error',(e)=>done(e.code==='ECONNREFUSED'));const send=()=>{if(!over)s.send('weft-verify',()=>{})};s.bind(0,src,()=>s.connect(port,ip,()=>{send();again=setInterval(send,Math.max(20,to/4))}));}});
Promise.all(t.map(([ip,proto,port])=>once(ip,proto,port).then(ok=>ok&&proto==='udp'?once(ip,proto,port):ok))).then(r=>console.log(JSON.stringify(r)));});`;

export interface VerifyDeps { state: DesiredState; client: Client; runner: Runner; host: string; log: Logger }

/**
 * `weft verify` on this host: every endpoint of the tenant here probes every other endpoint of the tenant
 * on each flow, from its own namespace, and the results go back to the server that asked.
 */
export async function answerVerify(d: VerifyDeps, r: Request): Promise<void> {
  if (Date.now() - Date.parse(r.createdAt) > STALE_MS) return;
  const all = [...d.state.endpoints.values()].filter((e) => e.tenant === r.tenant);
  const local = all.filter((e) => e.host === d.host && e.netns !== undefined);
  if (local.length === 0) return;
  const results: Array<[string, string, number, boolean]> = [];
  const errors: string[] = [];
  /** From `src` over one family to the targets that have it (none other can be reached from it over that family). */
  const probeOver = async (src: Endpoint, family: 'ip' | 'ip6', dsts: readonly Endpoint[]) => {
    const from = src[family];
    const targets = dsts.flatMap((dst) => r.flows.map((f, i) => ({ dst, f, i })));
    if (from === undefined || targets.length === 0) return;
    // From the endpoint's own address: a container's other interface (an attached one's, or the one an
    // attachment sits beside) must not answer for it.
    const run = await d.runner.run(['nsenter', `--net=${src.netns}`, process.execPath, '-e', PROBER, String(r.timeoutMs), from],
      { input: JSON.stringify(targets.map((x) => [x.dst[family], x.f.protocol, x.f.port])), timeoutMs: r.timeoutMs + 10_000, allowFailure: true });
    let ok: unknown;
    try { ok = JSON.parse(run.stdout); } catch { ok = undefined; }
    if (!Array.isArray(ok) || ok.length !== targets.length) {
      errors.push(`${src.id}: the prober failed (exit ${run.code}): ${run.stderr.trim().slice(0, 200)}`);
      return;
    }
    targets.forEach((x, k) => results.push([src.id, x.dst.id, x.i, ok[k] === true]));
  };
  // Over IPv4 where both ends have it, else over IPv6 (an IPv6-only network's endpoints, either end).
  const probe = async (src: Endpoint) => {
    const others = all.filter((x) => x.id !== src.id);
    const four = src.ip !== undefined ? others.filter((x) => x.ip !== undefined) : [];
    const six = src.ip6 !== undefined ? others.filter((x) => x.ip6 !== undefined && !four.includes(x)) : [];
    await probeOver(src, 'ip', four);
    await probeOver(src, 'ip6', six);
  };
  for (let k = 0; k < local.length; k += PARALLEL) await Promise.all(local.slice(k, k + PARALLEL).map(probe));
  try {
    await d.client.request('PUT', `/api/v1/tenants/${r.tenant}/verify/${r.id}/reports/${encodeURIComponent(d.host)}`, { results, ...(errors.length ? { error: errors.join('; ').slice(0, 1000) } : {}) });
  } catch (e) {
    d.log.warn({ err: (e as Error).message, tenant: r.tenant }, 'verification report not sent');
  }
}
