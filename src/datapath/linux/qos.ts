import type { Runner } from '../../exec/index.js';
import type { QosPlan } from '../services.js';
import { inNs } from './observe.js';

/** What `tc -j qdisc show` says, reduced to what shaping compares. */
interface QdiscJson {
  kind: string;
  dev: string;
  root?: boolean;
  handle?: string;
  options?: { rate?: number; burst?: number };
}

/** A queue's worth of delay at the rate: enough for TCP to fill the bucket, short enough to keep latency low. */
const LATENCY = '50ms';

export interface ObservedQos {
  /** Root TBF rate (bytes/s) and burst (bytes) per device. */
  tbf: Map<string, { rate: number; burst: number }>;
  ingress: Set<string>;
}

export async function observeQos(runner: Runner, ns: string): Promise<ObservedQos> {
  const r = await runner.run(inNs(ns, ['tc', '-j', 'qdisc', 'show']));
  const list = JSON.parse(r.stdout || '[]') as QdiscJson[];
  const out: ObservedQos = { tbf: new Map(), ingress: new Set() };
  for (const q of list) {
    if (q.kind === 'tbf' && q.root) out.tbf.set(q.dev, { rate: q.options?.rate ?? 0, burst: q.options?.burst ?? 0 });
    if (q.kind === 'ingress') out.ingress.add(q.dev);
  }
  return out;
}

/** The kernel keeps the burst as a time at the rate; what it reports back may differ by rounding. */
function tbfMatches(seen: { rate: number; burst: number } | undefined, q: QosPlan): boolean {
  return seen !== undefined && seen.rate === Math.round(q.rate / 8) && Math.abs(seen.burst - q.burst) <= Math.max(64, q.burst * 0.01);
}

/**
 * `tc -batch` lines that bring each shaped endpoint to its plan: a TBF on the veth (traffic towards the
 * container) and, for traffic from it, the veth's ingress redirected to the endpoint's IFB, which has the
 * same TBF. Endpoints that lost their profile have both removed. `present`: veths that exist now.
 */
export function qosCommands(plans: readonly QosPlan[], seen: ObservedQos, present: ReadonlySet<string>, shapedVeths: readonly string[]): { ip: string[]; tc: string[] } {
  const ip: string[] = [];
  const tc: string[] = [];
  const tbf = (dev: string, q: QosPlan) => `qdisc replace dev ${dev} root tbf rate ${q.rate}bit burst ${q.burst} latency ${LATENCY}`;
  const wanted = new Set<string>();
  for (const q of plans) {
    if (!present.has(q.veth)) continue;
    wanted.add(q.veth);
    if (!present.has(q.ifb)) ip.push(`link add ${q.ifb} type ifb`, `link set ${q.ifb} up`);
    if (!tbfMatches(seen.tbf.get(q.veth), q)) tc.push(tbf(q.veth, q));
    if (!tbfMatches(seen.tbf.get(q.ifb), q)) tc.push(tbf(q.ifb, q));
    if (!seen.ingress.has(q.veth)) {
      tc.push(`qdisc add dev ${q.veth} handle ffff: ingress`,
        `filter add dev ${q.veth} parent ffff: protocol all prio 1 u32 match u32 0 0 action mirred egress redirect dev ${q.ifb}`);
    }
  }
  for (const veth of shapedVeths) {
    if (wanted.has(veth) || !present.has(veth)) continue;
    if (seen.tbf.has(veth)) tc.push(`qdisc del dev ${veth} root`);
    if (seen.ingress.has(veth)) tc.push(`qdisc del dev ${veth} ingress`);
  }
  return { ip, tc };
}

export async function tcBatch(runner: Runner, ns: string, lines: readonly string[]): Promise<void> {
  if (lines.length === 0) return;
  await runner.run(['tc', '-n', ns, '-force', '-batch', '-'], { input: `${lines.join('\n')}\n` });
}
