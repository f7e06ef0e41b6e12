import type { Runner } from '../../../exec/index.js';
import type { OverlayPlan } from '../../plan.js';
import type { ObservedLink } from '../observe.js';
import { VXLAN_PORT } from '../../names.js';
import type { LinuxEncap } from './types.js';

const ZERO_MAC = '00:00:00:00:00:00';

/**
 * Creates a network's VXLAN device from this (the host's) namespace directly into the tenant namespace:
 * its UDP socket stays on the underlay while the device sits on the tenant's bridge. No learning: every
 * forwarding entry comes from the desired state.
 */
async function createVxlan(runner: Runner, tenantNs: string, v: OverlayPlan, existing: ObservedLink | undefined): Promise<void> {
  if (vxlanMatches(existing, v)) return;
  if (existing) await runner.run(['ip', '-n', tenantNs, 'link', 'del', v.name], { allowFailure: true });
  await runner.run(['ip', 'link', 'add', v.name, 'netns', tenantNs, 'type', 'vxlan', 'id', String(v.vni), 'local', v.local,
    'dstport', String(VXLAN_PORT), 'nolearning', v.proxy ? 'proxy' : 'noproxy']);
}

function vxlanMatches(l: ObservedLink | undefined, v: OverlayPlan): boolean {
  return l?.vxlan !== undefined && l.vxlan.id === v.vni && l.vxlan.local === v.local && l.vxlan.proxy === v.proxy;
}

interface FdbJson { mac: string; dst?: string; flags?: string[] }

/**
 * `bridge -batch` lines that make the device's own forwarding entries exactly the plan's. A MAC has one
 * entry: two remote endpoints sharing one (a tenant's own `--mac-address` twice) would have each pass
 * replace the other's entry for ever, so the lowest tunnel end is kept (the first endpoint's traffic is lost
 * either way; the agent's work is not).
 */
export function fdbCommands(v: OverlayPlan, observed: readonly FdbJson[]): string[] {
  const dstOf = new Map<string, string>();
  for (const r of v.remotes) {
    const d = dstOf.get(r.mac);
    if (d === undefined || r.vtep < d) dstOf.set(r.mac, r.vtep);
  }
  const want = new Set([...v.peers.map((p) => `${ZERO_MAC} ${p}`), ...[...dstOf].map(([mac, vtep]) => `${mac} ${vtep}`)]);
  const have = new Set(observed.filter((e) => e.dst !== undefined && (e.flags ?? []).includes('self')).map((e) => `${e.mac} ${e.dst}`));
  const out: string[] = [];
  for (const k of want) {
    if (have.has(k)) continue;
    const [mac, dst] = k.split(' ');
    out.push(mac === ZERO_MAC ? `fdb append ${mac} dev ${v.name} dst ${dst} self permanent` : `fdb replace ${mac} dev ${v.name} dst ${dst} self permanent`);
  }
  for (const k of have) {
    if (want.has(k)) continue;
    const [mac, dst] = k.split(' ');
    out.push(`fdb del ${mac} dev ${v.name} dst ${dst} self`);
  }
  return out;
}

interface NeighJson { dst: string; lladdr?: string; state?: string[] }

/** `ip -batch` lines that make the device's permanent neighbours the remote endpoints (arpMode proxy). */
export function neighCommands(v: OverlayPlan, observed: readonly NeighJson[]): string[] {
  // Both families of a dual-stack endpoint: the device answers neighbour solicitations as it answers ARP.
  const want = new Map(v.proxy ? v.remotes.flatMap((r) => [r.ip, r.ip6].flatMap((ip) => (ip !== undefined ? [[ip, r.mac] as const] : []))) : []);
  const have = new Map(observed.filter((n) => (n.state ?? []).includes('PERMANENT')).map((n) => [n.dst, n.lladdr ?? '']));
  const out: string[] = [];
  for (const [ip, mac] of want) if (have.get(ip) !== mac) out.push(`neigh replace ${ip} lladdr ${mac} dev ${v.name} nud permanent`);
  for (const ip of have.keys()) if (!want.has(ip)) out.push(`neigh del ${ip} dev ${v.name}`);
  return out;
}

/** Forwarding entries and (for arpMode proxy) neighbour entries of one VXLAN device: two reads, at most two writes. */
async function ensureOverlay(runner: Runner, tenantNs: string, v: OverlayPlan): Promise<void> {
  const fdb = await runner.run(['bridge', '-n', tenantNs, '-j', 'fdb', 'show', 'dev', v.name], { allowFailure: true });
  const lines = fdbCommands(v, JSON.parse(fdb.stdout || '[]') as FdbJson[]);
  if (lines.length) await runner.run(['bridge', '-n', tenantNs, '-force', '-batch', '-'], { input: `${lines.join('\n')}\n` });
  const neigh = await runner.run(['ip', '-n', tenantNs, '-j', 'neigh', 'show', 'dev', v.name], { allowFailure: true });
  const nl = neighCommands(v, JSON.parse(neigh.stdout || '[]') as NeighJson[]);
  if (nl.length) await runner.run(['ip', '-n', tenantNs, '-force', '-batch', '-'], { input: `${nl.join('\n')}\n` });
}

/** VXLAN (RFC 7348) on UDP 4789, one VNI per network, forwarding entries only from the desired state. */
export const vxlan: LinuxEncap = { kind: 'vxlan', matches: vxlanMatches, create: createVxlan, converge: ensureOverlay };
