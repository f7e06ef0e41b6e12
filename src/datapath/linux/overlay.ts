import type { Runner } from '../../exec/index.js';
import type { VxlanPlan } from '../plan.js';
import type { ObservedLink } from './observe.js';

const ZERO_MAC = '00:00:00:00:00:00';
export const VXLAN_PORT = 4789;

/**
 * Creates a network's VXLAN device from this (the host's) namespace directly into the tenant namespace:
 * its UDP socket stays on the underlay while the device sits on the tenant's bridge. No learning: every
 * forwarding entry comes from the desired state.
 */
export async function createVxlan(runner: Runner, tenantNs: string, v: VxlanPlan, existing: ObservedLink | undefined): Promise<void> {
  if (existing?.vxlan && existing.vxlan.id === v.vni && existing.vxlan.local === v.local) return;
  if (existing) await runner.run(['ip', '-n', tenantNs, 'link', 'del', v.name], { allowFailure: true });
  await runner.run(['ip', 'link', 'add', v.name, 'netns', tenantNs, 'type', 'vxlan', 'id', String(v.vni), 'local', v.local,
    'dstport', String(VXLAN_PORT), 'nolearning']);
}

interface FdbJson { mac: string; dst?: string; flags?: string[] }

/** `bridge -batch` lines that make the device's own forwarding entries exactly the plan's. */
export function fdbCommands(v: VxlanPlan, observed: readonly FdbJson[]): string[] {
  const want = new Set([...v.peers.map((p) => `${ZERO_MAC} ${p}`), ...v.remotes.map((r) => `${r.mac} ${r.vtep}`)]);
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

export async function ensureFdb(runner: Runner, tenantNs: string, v: VxlanPlan): Promise<void> {
  const r = await runner.run(['bridge', '-n', tenantNs, '-j', 'fdb', 'show', 'dev', v.name], { allowFailure: true });
  const lines = fdbCommands(v, JSON.parse(r.stdout || '[]') as FdbJson[]);
  if (lines.length) await runner.run(['bridge', '-n', tenantNs, '-force', '-batch', '-'], { input: `${lines.join('\n')}\n` });
}
