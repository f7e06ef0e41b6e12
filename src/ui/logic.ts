/**
 * What the views show, worked out without the DOM (unit-tested under Node): the topology tree, a
 * service's backends, which changes concern a view, and how flows and verdicts read.
 */

export interface Endpoint { id: string; tenant: string; network: string; group?: string; ip?: string; ip6?: string; host: string; containerName?: string; containerId: string; labels: Record<string, string>; state: string }
export interface Network { name: string; subnet?: string; subnet6?: string; gateway?: string; encap?: string; vni?: number }
export interface Group { name: string; network?: string; policies?: string[] }
export interface Service { name: string; network: string; vip?: string; vip6?: string; selector: Record<string, string>; ports: Array<{ port: number; targetPort: number; protocol: string }> }
export interface Host { name: string; state?: 'up' | 'down'; lastSeen: string; agentVersion?: string; vtepIp?: string; wireguard?: { mode: string; peers: number; handshaken: number; error?: string } }
export interface FlowEnd { ip: string; port: number; endpoint?: string; name?: string; group?: string; host?: string }
export interface Flow {
  time: string; host: string; tenant: string; verdict: 'allow' | 'deny' | 'audit'; protocol: string; src: FlowEnd; dst: FlowEnd;
  decidedBy: { side: string; layer: string; policy?: string; rule: string | null }; agrees: boolean;
}
/** One side of an explanation, as `GET .../explain` gives it: the rule is the stored rule itself. */
export interface Side { group: string | null; action: string; layer: string; policy?: string; rule: { id: string; direction?: string; protocol?: string; ports?: string; action?: string } | null }
export interface Rep { id: string; ip: string; name: string }
export interface Answer { allowed: boolean; egress: Side | null; ingress: Side | null; audit?: { egress: Side | null; ingress: Side | null } }
/** What its members get, when they do not all get the same (the most common first), with one pair of each. */
export interface Variant extends Answer { from: Rep; to: Rep; pairs: number }
export interface Cell extends Answer { variants?: Variant[]; partial?: true }
export interface Matrix { tenant: string; protocol: string; port: number | null; groups: Array<{ name: string; endpoints: number; classes: number; representative: Rep | null }>; cells: Array<Array<Cell | null>>; truncated?: number }

export interface TopologyNetwork { network: Network; groups: Array<{ name: string; endpoints: Endpoint[] }>; hosts: string[] }

/** Networks → groups → endpoints (by address), with the hosts each network spans; endpoints without a group under "(no group)". */
export function topology(networks: readonly Network[], groups: readonly Group[], endpoints: readonly Endpoint[]): TopologyNetwork[] {
  const NONE = '(no group)';
  return [...networks].sort((a, b) => a.name.localeCompare(b.name)).map((n) => {
    const mine = endpoints.filter((e) => e.network === n.name).sort((a, b) => ipOrder(a.ip) - ipOrder(b.ip));
    const byGroup = new Map<string, Endpoint[]>();
    // Groups of this network first, even when empty: a group with no members is worth seeing.
    for (const g of groups) if (g.network === n.name) byGroup.set(g.name, []);
    for (const e of mine) {
      const k = e.group ?? NONE;
      const list = byGroup.get(k) ?? [];
      list.push(e);
      byGroup.set(k, list);
    }
    const names = [...byGroup.keys()].sort((a, b) => (a === NONE ? 1 : b === NONE ? -1 : a.localeCompare(b)));
    return { network: n, groups: names.map((g) => ({ name: g, endpoints: byGroup.get(g) ?? [] })), hosts: [...new Set(mine.map((e) => e.host))].sort() };
  });
}

/** What a person calls an endpoint: its container's name, else the start of its container's id (as `weft ep ls`). */
export function endpointName(e: Endpoint): string {
  return e.containerName ?? e.containerId.slice(0, 12);
}

/** IPv4 addresses in order; an endpoint without one (an IPv6-only network's) after them. */
export function ipOrder(ip: string | undefined): number {
  return ip === undefined ? 2 ** 32 : ip.split('.').reduce((n, x) => n * 256 + Number(x), 0);
}

/** The endpoints a service sends to: on its network, carrying every label of its selector. */
export function backends(s: Service, endpoints: readonly Endpoint[]): Endpoint[] {
  const sel = Object.entries(s.selector);
  return endpoints.filter((e) => e.network === s.network && sel.every(([k, v]) => e.labels?.[k] === v)).sort((a, b) => ipOrder(a.ip) - ipOrder(b.ip));
}

export type ViewName = 'topology' | 'matrix' | 'flows' | 'hosts' | 'services' | 'history';

/** A change as the watch stream and the history give it (control/changes.ts publicChange). */
export interface PublicChange { revision: number; op: 'put' | 'delete'; kind: string; key: string; tenant?: string; actor: string; time: string }

/** Whether a change from the watch stream may alter what a view of `tenant` shows: the tenant's own changes, hosts' for the host views. */
export function concerns(c: Pick<PublicChange, 'kind' | 'tenant'>, tenant: string, view: ViewName): boolean {
  if (c.kind === 'host') return view === 'hosts' || view === 'topology';
  return c.tenant === tenant;
}

/** One end of a flow as a person reads it: the endpoint's name and group, else its address. */
export function endText(e: FlowEnd): string {
  const who = e.name ?? e.endpoint ?? e.ip;
  return e.group ? `${who}/${e.group}` : who;
}

/** The rule that decided, as `weft flows` prints it. */
export function ruleText(d: Flow['decidedBy']): string {
  if (d.layer === 'unexplained') return 'not explained (server busy)';
  const what = d.policy ? `${d.policy}/${d.rule ?? '-'}` : d.rule ?? d.layer;
  return d.side === 'none' ? what : `${what} (${d.side})`;
}

/** A side of an explanation in words: "db-policy/1 (ingress)" or "default (egress)". */
export function sideText(s: Side | null, side: 'egress' | 'ingress'): string {
  if (!s) return `${side}: not an endpoint`;
  const by = s.policy ? `${s.policy}/${s.rule?.id ?? '-'}` : s.layer === 'default' || !s.rule ? 'tenant default' : s.rule.id;
  return `${side}: ${s.action} by ${by}${s.layer !== 'weft' && s.layer !== 'default' ? ` [${s.layer}]` : ''}`;
}

/** A matrix cell's verdict in a word (never colour alone): allow, deny, audit (allowed, but an audit-mode policy would deny), or mixed (members differ). */
export function cellVerdict(c: Cell | null): 'allow' | 'deny' | 'audit' | 'mixed' | 'empty' {
  if (!c) return 'empty';
  if (c.variants && new Set(c.variants.map(answerVerdict)).size > 1) return 'mixed';
  return answerVerdict(c);
}

export function answerVerdict(c: Answer): 'allow' | 'deny' | 'audit' {
  if (!c.allowed) return 'deny';
  return c.audit ? 'audit' : 'allow';
}

/** The side that decided a cell: the one that denied, else ingress (the last to decide). */
export function decidingSide(c: Answer): { side: 'egress' | 'ingress'; by: Side | null } {
  if (c.egress && c.egress.action !== 'allow') return { side: 'egress', by: c.egress };
  if (c.ingress && c.ingress.action !== 'allow') return { side: 'ingress', by: c.ingress };
  return c.ingress ? { side: 'ingress', by: c.ingress } : { side: 'egress', by: c.egress };
}

const NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/** Parses the location's hash: #/TENANT/VIEW; a tenant that is not a valid name is no tenant. */
export function parseRoute(hash: string): { tenant?: string; view: ViewName } {
  const [, raw, view] = hash.replace(/^#/, '').split('/');
  let tenant: string | undefined;
  try {
    tenant = raw ? decodeURIComponent(raw) : undefined;
  } catch {
    tenant = undefined;
  }
  const views: ViewName[] = ['topology', 'matrix', 'flows', 'hosts', 'services', 'history'];
  return { ...(tenant && NAME.test(tenant) ? { tenant } : {}), view: views.includes(view as ViewName) ? (view as ViewName) : 'topology' };
}

/** Seconds, minutes or hours since a time, for "last seen". */
export function ago(time: string, now = Date.now()): string {
  const s = Math.max(0, Math.round((now - Date.parse(time)) / 1000));
  if (Number.isNaN(s)) return 'never';
  return s < 90 ? `${s} s ago` : s < 5400 ? `${Math.round(s / 60)} min ago` : `${Math.round(s / 3600)} h ago`;
}

/** Waits before the n-th reconnection in a row: 1, 2, 4 … 30 s, each with up to half again at random (tabs of a restarted server do not return at once). */
export function backoff(n: number, random = Math.random()): number {
  const base = Math.min(30_000, 1000 * 2 ** Math.min(n, 5));
  return base + random * base * 0.5;
}

/** The timers `coalesced` uses (the browser's; the unit test's own). */
export interface Timers { set(f: () => void, ms: number): unknown; clear(t: unknown): void }

/**
 * Runs `work` for a burst of `kick`s: the first waits `delay` ms, kicks meanwhile join it, and a kick while
 * it runs makes exactly one more run after it. Never two runs at once (an older read drawn last would hide
 * a newer one until the next change), and never put off for as long as kicks keep coming (a debounce that
 * restarts its wait on each kick would, under a steady stream of changes, never draw).
 */
export function coalesced(work: () => Promise<void>, delay: number, timers: Timers): { kick(): void; cancel(): void } {
  let state: 'idle' | 'waiting' | 'running' | 'again' | 'cancelled' = 'idle';
  let timer: unknown;
  const go = () => {
    state = 'running';
    work().catch(() => undefined).finally(() => {
      if (state === 'again') wait();
      else if (state === 'running') state = 'idle';
    });
  };
  const wait = () => {
    state = 'waiting';
    timer = timers.set(go, delay);
  };
  return {
    kick() {
      if (state === 'idle') wait();
      else if (state === 'running') state = 'again';
    },
    cancel() {
      timers.clear(timer);
      state = 'cancelled';
    },
  };
}
