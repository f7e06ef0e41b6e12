import type { Endpoint } from '../model/index.js';
import { explainer, layerOf, type Decision, type Explanation, type PolicyState } from '../policy/index.js';

/** A flow record as an agent reports it (agent/flows.ts): the kernel's facts, in the tenant they were seen in. */
export interface ReportedFlow {
  tenant: string;
  at: number;
  verdict: 'allow' | 'deny' | 'audit';
  proto: number;
  src: string;
  sport: number;
  dst: string;
  dport: number;
}

/** One end of a flow as shown: its address and port, and the endpoint there (when one of the tenant's). */
export interface FlowEnd {
  ip: string;
  port: number;
  endpoint?: string;
  name?: string;
  group?: string;
  host?: string;
}

/** What decided, on one side, as `weft explain` says it. */
export interface FlowSide {
  group: string | null;
  action: string;
  layer: string;
  policy?: string;
  rule: string | null;
}

/** A flow record as `GET /api/v1/flows` shows it. */
export interface Flow {
  time: string;
  /** The host whose kernel logged it. */
  host: string;
  tenant: string;
  /** The kernel's verdict: what happened, whatever the policy says now. */
  verdict: 'allow' | 'deny' | 'audit';
  protocol: string;
  src: FlowEnd;
  dst: FlowEnd;
  /** The side and rule that decided it (as explain decides, from the policy as stored when it was reported). */
  decidedBy: { side: 'egress' | 'ingress' | 'both' | 'none'; layer: string; policy?: string; rule: string | null };
  egress: FlowSide | null;
  ingress: FlowSide | null;
  /**
   * False when the policy as stored decides otherwise than the kernel did (a change the host had not yet
   * enforced, or drift): the rule named is then what would decide now.
   */
  agrees: boolean;
}

const PROTOCOLS: Record<number, string> = { 1: 'icmp', 6: 'tcp', 17: 'udp', 132: 'sctp' };
export const protocolName = (n: number) => PROTOCOLS[n] ?? String(n);

function side(d: (Decision & { group: string | undefined }) | undefined): FlowSide | null {
  if (!d) return null;
  return { group: d.group ?? null, action: d.action, layer: layerOf(d), ...(d.by ? { policy: d.by.policy, rule: d.by.rule.id } : { rule: null }) };
}

/** Which side decided: for a denial the side that denied (egress first, as the datapath checks it), else the ingress side's rule. */
function decider(e: Explanation, verdict: Flow['verdict']): Flow['decidedBy'] {
  const sides = verdict === 'audit' && e.audit ? e.audit : e;
  const eg = side(sides.egress);
  const ig = side(sides.ingress);
  const pick = (s: FlowSide, name: 'egress' | 'ingress') => ({ side: name, layer: s.layer, ...(s.policy !== undefined ? { policy: s.policy } : {}), rule: s.rule });
  if (verdict !== 'allow') {
    if (eg && eg.action !== 'allow') return pick(eg, 'egress');
    if (ig && ig.action !== 'allow') return pick(ig, 'ingress');
  } else {
    if (ig?.rule) return pick(ig, 'ingress');
    if (eg?.rule) return pick(eg, 'egress');
    if (ig) return pick(ig, 'ingress');
    if (eg) return pick(eg, 'egress');
  }
  return { side: 'none', layer: 'default', rule: null };
}

/**
 * Annotates one tenant's records from one host with the endpoints at either end and the rule that
 * decided (the evaluator `weft explain` uses, over the policy as stored), classifying the tenant once.
 */
export function annotate(host: string, state: PolicyState, endpoints: readonly Endpoint[], records: readonly ReportedFlow[]): Flow[] {
  const explain = explainer(state);
  const byIp = new Map(endpoints.map((e) => [e.ip, e]));
  const end = (ip: string, port: number): FlowEnd => {
    const e = byIp.get(ip);
    return { ip, port, ...(e ? { endpoint: e.id, name: e.containerName ?? e.containerId.slice(0, 12), host: e.host, ...(e.group ? { group: e.group } : {}) } : {}) };
  };
  return records.map((r) => {
    const e = explain(r.src, r.dst, String(r.proto), r.dport || undefined);
    const modelled: Flow['verdict'] = !e.allowed ? 'deny' : e.audit ? 'audit' : 'allow';
    return {
      time: new Date(r.at).toISOString(), host, tenant: r.tenant, verdict: r.verdict, protocol: protocolName(r.proto),
      src: end(r.src, r.sport), dst: end(r.dst, r.dport),
      decidedBy: decider(e, r.verdict), egress: side(e.egress), ingress: side(e.ingress),
      agrees: modelled === r.verdict,
    };
  });
}

/** Records kept per tenant, and in all (the busiest tenant gives way first). */
export const FLOWS_PER_TENANT = 5000;
export const FLOWS_TOTAL = 100_000;

type Listener = (f: Flow) => void;

/**
 * The flow records this server was sent, newest last, bounded per tenant and in all, with the live
 * listeners of `GET /api/v1/flows?follow=1`. In memory: records are a view of recent traffic, not state,
 * and a restart starts them over. With several servers each keeps what its agents sent it.
 */
export class FlowBook {
  private readonly rings = new Map<string, Flow[]>();
  private total = 0;
  private readonly listeners = new Set<{ tenants: ReadonlySet<string> | undefined; fn: Listener }>();
  /** Records lost before they reached this server (kernel limits, agents' buffers), per tenant. */
  readonly lost = new Map<string, number>();

  add(flows: readonly Flow[]): void {
    for (const f of flows) {
      let ring = this.rings.get(f.tenant);
      if (!ring) this.rings.set(f.tenant, (ring = []));
      ring.push(f);
      this.total++;
      if (ring.length > FLOWS_PER_TENANT) this.drop(ring);
      for (const l of this.listeners) if (!l.tenants || l.tenants.has(f.tenant)) l.fn(f);
    }
    while (this.total > FLOWS_TOTAL) this.drop(this.busiest());
  }

  countLost(tenant: string, n: number): void {
    this.lost.set(tenant, (this.lost.get(tenant) ?? 0) + n);
  }

  /** The kept records of these tenants (undefined: all), oldest first, that `keep` accepts; at most `limit`, the newest. */
  list(tenants: ReadonlySet<string> | undefined, keep: (f: Flow) => boolean, limit: number): Flow[] {
    const from = tenants ? [...tenants].map((t) => this.rings.get(t) ?? []) : [...this.rings.values()];
    const all = from.flatMap((ring) => ring.filter(keep));
    if (from.length > 1) all.sort((a, b) => (a.time < b.time ? -1 : a.time > b.time ? 1 : 0));
    return all.slice(-limit);
  }

  /** Calls `fn` with each new record of these tenants (undefined: all); returns the unsubscribe. */
  follow(tenants: ReadonlySet<string> | undefined, fn: Listener): () => void {
    const l = { tenants, fn };
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }

  /** A tenant's records go with it. */
  forget(tenant: string): void {
    this.total -= this.rings.get(tenant)?.length ?? 0;
    this.rings.delete(tenant);
    this.lost.delete(tenant);
  }

  private drop(ring: Flow[]): void {
    // The oldest tenth at once: the array is shifted once per ~500 records, not once per record.
    const n = Math.max(1, Math.floor(ring.length / 10));
    ring.splice(0, n);
    this.total -= n;
  }

  private busiest(): Flow[] {
    let best: Flow[] = [];
    for (const r of this.rings.values()) if (r.length > best.length) best = r;
    return best;
  }
}
