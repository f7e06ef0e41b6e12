import { addressOf, type Endpoint } from '../model/index.js';
import { layerOf, type Decision, type Explanation, type FullExplanation } from '../policy/index.js';

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
  /**
   * The side and rule that decided it on the reporting host (as explain decides, from the policy as
   * stored when it was reported); layer `unexplained` when the server's time for explaining was spent.
   */
  decidedBy: { side: 'egress' | 'ingress' | 'none'; layer: string; policy?: string; rule: string | null };
  /** The sides the reporting host enforces (null: the other end's host enforces it, or it is no endpoint). */
  egress: FlowSide | null;
  ingress: FlowSide | null;
  /**
   * False when the policy as stored decides otherwise than the kernel did (a change the host had not yet
   * enforced, or drift): the rule named is then what would decide now.
   */
  agrees: boolean;
}

const PROTOCOLS: Record<number, string> = { 1: 'icmp', 6: 'tcp', 17: 'udp', 58: 'icmpv6', 132: 'sctp' };
export const protocolName = (n: number) => PROTOCOLS[n] ?? String(n);

function side(d: (Decision & { group: string | undefined }) | undefined): FlowSide | null {
  if (!d) return null;
  return { group: d.group ?? null, action: d.action, layer: layerOf(d), ...(d.by ? { policy: d.by.policy, rule: d.by.rule.id } : { rule: null }) };
}

/** The sides this host enforces: egress where the connection starts, ingress where it ends (both on one host). */
type Sides = { egress: Explanation['egress']; ingress: Explanation['ingress'] };
const passes = (x: Sides) => (x.egress?.action ?? 'allow') === 'allow' && (x.ingress?.action ?? 'allow') === 'allow';

/** Which side decided: for a denial the side that denied (egress first, as the datapath checks it), else the ingress side's rule. */
function decider(x: Sides, verdict: Flow['verdict']): Flow['decidedBy'] {
  const eg = side(x.egress);
  const ig = side(x.ingress);
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
 * The server's time for explaining records, refilled as time passes (`msPerSecond`, up to `burstMs`): a
 * flood of distinct flows into a tenant of 50,000 rules costs at most that share of a core. Records past
 * it are named (endpoints, groups) but not explained (`layer: unexplained`).
 */
export class ExplainBudget {
  private left: number;
  private at = performance.now();
  constructor(private readonly msPerSecond: number, private readonly burstMs: number) {
    this.left = burstMs;
  }
  take(): boolean {
    const now = performance.now();
    this.left = Math.min(this.burstMs, this.left + ((now - this.at) / 1000) * this.msPerSecond);
    this.at = now;
    return this.left > 0;
  }
  spend(ms: number): void {
    this.left -= ms;
  }
}

/**
 * Annotates one tenant's records from one host with the endpoints at either end and the rule that
 * decided, with the evaluator `weft explain` uses over the policy as stored (`explain`, one per tenant
 * and state). A host enforces only its own endpoints' sides (egress where a connection starts, ingress
 * where it ends), so a connection between two hosts is recorded by each, each explained by its own side.
 * An endpoint made after a record's time is not the one that was there: its address is shown alone.
 */
export function annotate(host: string, explain: (src: string, dst: string, protocol: string, port?: number) => FullExplanation, endpoints: readonly Endpoint[], records: readonly ReportedFlow[], budget?: ExplainBudget): Flow[] {
  return records.map(annotator(host, explain, endpoints, budget));
}

/** annotate for one record at a time (the route yields between them), with one memo of explanations. */
export function annotator(host: string, explain: (src: string, dst: string, protocol: string, port?: number) => FullExplanation, endpoints: readonly Endpoint[], budget?: ExplainBudget): (r: ReportedFlow) => Flow {
  // An endpoint by either address (a record of an IPv6 connection names its IPv6 addresses).
  const byIp = new Map(endpoints.flatMap((e) => [e.ip, e.ip6].flatMap((ip) => (ip !== undefined ? [[ip, e] as const] : []))));
  const at = (ip: string, time: number) => {
    const e = byIp.get(ip);
    return e && !(Date.parse(e.createdAt) > time) ? e : undefined;
  };
  const end = (ip: string, port: number, e: Endpoint | undefined): FlowEnd =>
    ({ ip, port, ...(e ? { endpoint: e.id, name: e.containerName ?? e.containerId.slice(0, 12), host: e.host, ...(e.group ? { group: e.group } : {}) } : {}) });
  const memo = new Map<string, FullExplanation>();
  return (r) => {
    const [a, b] = [at(r.src, r.at), at(r.dst, r.at)];
    // An endpoint's IPv6 address is decided as its IPv4 one (one class per endpoint: policy/cidr6.ts);
    // the memo is keyed by what is explained (an address may have been another endpoint's before).
    const four = (ip: string, x: Endpoint | undefined) => (x !== undefined && ip.includes(':') ? addressOf(x) : ip);
    const [from, to] = [four(r.src, a), four(r.dst, b)];
    const key = `${from}|${to}|${r.proto}|${r.dport}`;
    let e = memo.get(key);
    // TCP, UDP or SCTP without ports: their headers lay past what the kernel copied (a chain of IPv6
    // extension headers), so no rule with ports can be told apart: named, not explained.
    const portless = (r.proto === 6 || r.proto === 17 || r.proto === 132) && r.dport === 0;
    if (!e) {
      if (portless || (budget && !budget.take())) {
        // Named, not explained: portless, or the server's time for explaining is spent (a flood of distinct flows).
        return {
          time: new Date(r.at).toISOString(), host, tenant: r.tenant, verdict: r.verdict, protocol: protocolName(r.proto),
          src: end(r.src, r.sport, a), dst: end(r.dst, r.dport, b), decidedBy: { side: 'none', layer: 'unexplained', rule: null }, egress: null, ingress: null, agrees: true,
        };
      }
      const t0 = performance.now();
      memo.set(key, (e = explain(from, to, String(r.proto), r.dport || undefined)));
      budget?.spend(performance.now() - t0);
    }
    const here = (x: Sides): Sides => ({ egress: a?.host === host ? x.egress : undefined, ingress: b?.host === host ? x.ingress : undefined });
    const enforced = here(e);
    const would = here(e.would);
    const modelled: Flow['verdict'] = !passes(enforced) ? 'deny' : !passes(would) ? 'audit' : 'allow';
    return {
      time: new Date(r.at).toISOString(), host, tenant: r.tenant, verdict: r.verdict, protocol: protocolName(r.proto),
      src: end(r.src, r.sport, a), dst: end(r.dst, r.dport, b),
      decidedBy: decider(r.verdict === 'audit' ? would : enforced, r.verdict), egress: side(enforced.egress), ingress: side(enforced.ingress),
      agrees: modelled === r.verdict,
    };
  };
}

/** What a host's endpoints of one group sent and received between two of its reports (agent/flows.ts). */
export interface GroupTraffic {
  tenant: string;
  /** '' for endpoints without a group. */
  group: string;
  sentBytes: number;
  sentPackets: number;
  receivedBytes: number;
  receivedPackets: number;
}

/** Groups counted per tenant; past that, under `other`. */
export const TRAFFIC_GROUPS = 1000;

/** Records kept per tenant, and in all (the busiest tenant gives way first). */
export const FLOWS_PER_TENANT = 5000;
export const FLOWS_TOTAL = 100_000;
/** Deleted tenants' names remembered (FlowBook.forget). */
export const FLOORS = 10_000;

type Listener = (f: Flow) => void;

/** Distinct rules and group pairs counted per tenant; past that, counted under `other`. */
export const TALLY_KEYS = 1000;

/** A tenant's counts since this server started: connections per deciding rule, and per pair of groups. */
export interface Tally {
  rules: Map<string, { layer: string; policy: string | null; rule: string | null; verdict: Flow['verdict']; connections: number }>;
  groups: Map<string, { from: string; to: string; verdict: Flow['verdict']; connections: number }>;
}

function count<V extends { connections: number }>(m: Map<string, V>, key: string, verdict: string, make: () => V, other: () => V): void {
  let v = m.get(key);
  if (!v) {
    const rest = `other|${verdict}`;
    if (m.size < TALLY_KEYS) m.set(key, (v = make()));
    else if (!(v = m.get(rest))) m.set(rest, (v = other()));
  }
  v.connections++;
}

/** The group an end belongs to, for the pair counts: its group, or where it is when it has none. */
const groupOf = (e: FlowEnd) => e.group ?? (e.endpoint ? '(no group)' : '(outside)');

/**
 * The flow records this server was sent, newest last, bounded per tenant and in all, with the live
 * listeners of `GET /api/v1/flows?follow=1`. In memory: records are a view of recent traffic, not state,
 * and a restart starts them over. With several servers each keeps what its agents sent it.
 */
export class FlowBook {
  private readonly rings = new Map<string, Flow[]>();
  private total = 0;
  private readonly listeners = new Set<{ tenants: ReadonlySet<string> | undefined; fn: Listener }>();
  /** Records lost on the way to this server (a kernel queue, an agent's buffer), per tenant. */
  readonly lost = new Map<string, number>();
  /** Connections the hosts' rate limits kept from being logged, per tenant. */
  readonly held = new Map<string, number>();
  /** Per tenant, what the records counted (`weft top`, /metrics). */
  readonly tallies = new Map<string, Tally>();
  /** Per tenant and group, bytes and packets its endpoints sent and received, as their hosts counted them. */
  readonly traffic = new Map<string, Map<string, Omit<GroupTraffic, 'tenant'>>>();

  countTraffic(t: GroupTraffic): void {
    let groups = this.traffic.get(t.tenant);
    if (!groups) this.traffic.set(t.tenant, (groups = new Map()));
    // Past TRAFFIC_GROUPS, under a name no group can have.
    const key = groups.has(t.group) || groups.size < TRAFFIC_GROUPS ? t.group : '(other)';
    let g = groups.get(key);
    if (!g) groups.set(key, (g = { group: key, sentBytes: 0, sentPackets: 0, receivedBytes: 0, receivedPackets: 0 }));
    g.sentBytes += t.sentBytes;
    g.sentPackets += t.sentPackets;
    g.receivedBytes += t.receivedBytes;
    g.receivedPackets += t.receivedPackets;
  }

  /** A tenant's groups by bytes moved (sent and received), the most first. */
  topTraffic(tenant: string, n: number): Array<Omit<GroupTraffic, 'tenant'>> {
    return [...(this.traffic.get(tenant)?.values() ?? [])].sort((a, b) => b.sentBytes + b.receivedBytes - (a.sentBytes + a.receivedBytes)).slice(0, n);
  }

  add(flows: readonly Flow[]): void {
    for (const f of flows) {
      let tally = this.tallies.get(f.tenant);
      if (!tally) this.tallies.set(f.tenant, (tally = { rules: new Map(), groups: new Map() }));
      const d = f.decidedBy;
      count(tally.rules, `${d.layer}|${d.policy ?? ''}|${d.rule ?? ''}|${f.verdict}`, f.verdict,
        () => ({ layer: d.layer, policy: d.policy ?? null, rule: d.rule, verdict: f.verdict, connections: 0 }),
        () => ({ layer: 'other', policy: null, rule: null, verdict: f.verdict, connections: 0 }));
      const [from, to] = [groupOf(f.src), groupOf(f.dst)];
      count(tally.groups, `${from}>${to}|${f.verdict}`, f.verdict, () => ({ from, to, verdict: f.verdict, connections: 0 }), () => ({ from: 'other', to: 'other', verdict: f.verdict, connections: 0 }));
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

  countHeld(tenant: string, n: number): void {
    this.held.set(tenant, (this.held.get(tenant) ?? 0) + n);
  }

  /** The kept records of these tenants (undefined: all), oldest first, that `keep` accepts; at most `limit`, the newest. */
  list(tenants: ReadonlySet<string> | undefined, keep: (f: Flow) => boolean, limit: number): Flow[] {
    const from = tenants ? [...tenants].map((t) => this.rings.get(t) ?? []) : [...this.rings.values()];
    // By time: a ring is in the order records came, and an agent's records held while the server was away come late.
    const all = from.flatMap((ring) => ring.filter(keep)).sort((a, b) => (a.time < b.time ? -1 : a.time > b.time ? 1 : 0));
    return all.slice(-limit);
  }

  /** Calls `fn` with each new record of these tenants (undefined: all); returns the unsubscribe. */
  follow(tenants: ReadonlySet<string> | undefined, fn: Listener): () => void {
    const l = { tenants, fn };
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }

  /** Per tenant, the store's create revision of the tenant whose records are held. */
  private readonly created = new Map<string, number>();
  /**
   * Per deleted tenant, the lowest create revision a tenant of that name may have now (create revisions
   * only grow): a report read before the deletion adds nothing after it. At most FLOORS, the oldest go
   * first (a report that old is still caught by its second read, routes/flows.ts).
   */
  private readonly floors = new Map<string, number>();

  /**
   * Whether records of the tenant created at `createRevision` may be added now: not if a tenant of that
   * name was deleted after it was made, nor if a later tenant of that name holds the book; if it is a
   * later tenant than the one held, the earlier one's records are forgotten first (its deletion not heard
   * of here), so the new one's users never see them.
   */
  admit(tenant: string, createRevision: number): boolean {
    if (createRevision < (this.floors.get(tenant) ?? 0)) return false;
    const had = this.created.get(tenant);
    if (had !== undefined && createRevision < had) return false;
    if (had !== undefined && createRevision > had) this.dropTenant(tenant);
    this.created.set(tenant, createRevision);
    return true;
  }

  /** The tenants this book holds anything of, with the create revision of each one held. */
  tenants(): Map<string, number | undefined> {
    const names = new Set([...this.created.keys(), ...this.rings.keys(), ...this.lost.keys(), ...this.held.keys(), ...this.tallies.keys(), ...this.traffic.keys()]);
    return new Map([...names].map((t) => [t, this.created.get(t)]));
  }

  /**
   * Reads again each tenant this book holds anything of (after a lost watch: deletions in the gap were
   * never heard of) and forgets one gone or replaced by a later tenant of its name. `createdAt` answers a
   * tenant's create revision (undefined: gone); one it cannot read, or an older reading than the book's,
   * changes nothing.
   */
  async recheck(createdAt: (tenant: string) => Promise<number | undefined>): Promise<void> {
    for (const [t, held] of this.tenants()) {
      const at = await createdAt(t).catch(() => null);
      if (at === null) continue;
      if (at !== undefined) this.admit(t, at);
      else if (held === undefined) this.forget(t);
      else this.forgetHeld(t, held);
    }
  }

  /**
   * Forgets a tenant if the one held is still the one created at `createRevision` (a reading that it is
   * gone, taken before a later tenant of that name got into the book, must not drop that one).
   */
  forgetHeld(tenant: string, createRevision: number): void {
    if (this.created.get(tenant) === createRevision) this.forget(tenant);
  }

  /**
   * A tenant's records go with it. `deletedAt`: the store revision of its deletion, when known; any
   * tenant of that name made before it (and the one held) is refused from now on.
   */
  forget(tenant: string, deletedAt = 0): void {
    const had = this.created.get(tenant);
    const floor = Math.max(this.floors.get(tenant) ?? 0, deletedAt, had === undefined ? 0 : had + 1);
    this.dropTenant(tenant);
    this.floors.delete(tenant);
    this.floors.set(tenant, floor);
    for (const t of this.floors.keys()) {
      if (this.floors.size <= FLOORS) break;
      this.floors.delete(t);
    }
  }

  private dropTenant(tenant: string): void {
    this.created.delete(tenant);
    this.total -= this.rings.get(tenant)?.length ?? 0;
    this.rings.delete(tenant);
    this.lost.delete(tenant);
    this.held.delete(tenant);
    this.tallies.delete(tenant);
    this.traffic.delete(tenant);
  }

  /**
   * Prometheus text of the tallies of the tenants `visible` accepts: per tenant the `perTenant` busiest
   * rules and group pairs, for the `tenants` busiest tenants, and records lost (bounded series).
   */
  metricsText(visible: (tenant: string) => boolean, perTenant: number, tenants: number): string {
    const total = (t: Tally) => [...t.rules.values()].reduce((n, r) => n + r.connections, 0);
    const busiest = [...this.tallies].filter(([t]) => visible(t)).map(([tenant, t]) => ({ tenant, t, n: total(t) })).sort((a, b) => b.n - a.n).slice(0, tenants);
    const moved = new Map([...this.traffic].filter(([t]) => visible(t)).map(([t, gs]) => [t, [...gs.values()].reduce((n, g) => n + g.sentBytes + g.receivedBytes, 0)]));
    const trafficOf = [...moved].sort((a, b) => b[1] - a[1]).slice(0, tenants).map(([tenant]) => ({ tenant, groups: this.topTraffic(tenant, perTenant) }));
    const q = (v: string) => `"${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`;
    const labels = (o: Record<string, string>) => `{${Object.entries(o).map(([k, v]) => `${k}=${q(v)}`).join(',')}}`;
    const out = [
      '# HELP weft_policy_rule_hits_total New connections each rule decided, counted from flow records since this server started (the busiest rules of each tenant; connections over the hosts\' flow-record rate limits are not counted).',
      '# TYPE weft_policy_rule_hits_total counter',
      ...busiest.flatMap(({ tenant, t }) => this.top(t.rules, perTenant).map((r) => `weft_policy_rule_hits_total${labels({ tenant, layer: r.layer, policy: r.policy ?? '', rule: r.rule ?? '', verdict: r.verdict })} ${r.connections}`)),
      '# HELP weft_group_connections_total New connections between groups (from, to) by verdict, counted from flow records since this server started (the busiest pairs of each tenant).',
      '# TYPE weft_group_connections_total counter',
      ...busiest.flatMap(({ tenant, t }) => this.top(t.groups, perTenant).map((g) => `weft_group_connections_total${labels({ tenant, from: g.from, to: g.to, verdict: g.verdict })} ${g.connections}`)),
      '# HELP weft_group_bytes_total Bytes the endpoints of a group sent and received (direction), as their hosts\' veth counters counted them since this server started (the busiest groups of each tenant; \'\' no group).',
      '# TYPE weft_group_bytes_total counter',
      ...trafficOf.flatMap(({ tenant, groups }) => groups.flatMap((g) => [
        `weft_group_bytes_total${labels({ tenant, group: g.group, direction: 'sent' })} ${g.sentBytes}`,
        `weft_group_bytes_total${labels({ tenant, group: g.group, direction: 'received' })} ${g.receivedBytes}`,
      ])),
      '# HELP weft_group_packets_total Packets the endpoints of a group sent and received (direction), likewise.',
      '# TYPE weft_group_packets_total counter',
      ...trafficOf.flatMap(({ tenant, groups }) => groups.flatMap((g) => [
        `weft_group_packets_total${labels({ tenant, group: g.group, direction: 'sent' })} ${g.sentPackets}`,
        `weft_group_packets_total${labels({ tenant, group: g.group, direction: 'received' })} ${g.receivedPackets}`,
      ])),
      '# HELP weft_flow_records_lost_total Flow records lost on the way from the hosts\' kernels (a full queue, an agent\'s buffer while this server was away).',
      '# TYPE weft_flow_records_lost_total counter',
      ...[...this.lost].filter(([t]) => visible(t)).sort((a, b) => b[1] - a[1]).slice(0, tenants).map(([tenant, n]) => `weft_flow_records_lost_total${labels({ tenant })} ${n}`),
      '# HELP weft_flow_records_held_total New connections the hosts\' flow-record rate limits kept from being logged (not counted by rule).',
      '# TYPE weft_flow_records_held_total counter',
      ...[...this.held].filter(([t]) => visible(t)).sort((a, b) => b[1] - a[1]).slice(0, tenants).map(([tenant, n]) => `weft_flow_records_held_total${labels({ tenant })} ${n}`),
    ];
    return `${out.join('\n')}\n`;
  }

  /** The `n` largest counts of a tally, largest first. */
  top<V extends { connections: number }>(m: ReadonlyMap<string, V>, n: number): V[] {
    return [...m.values()].sort((a, b) => b.connections - a.connections).slice(0, n);
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
