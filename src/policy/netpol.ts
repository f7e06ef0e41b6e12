import { createHash } from 'node:crypto';
import { DEFAULT_NAMESPACE, NAMESPACE_NAME_LABEL, policyTypesOf, selectorMatches } from '../model/index.js';
import type { AdminNetworkPolicy, AnpSubject, BaselineAdminNetworkPolicy, Endpoint, LabelMap, NetworkPolicy, Rule } from '../model/index.js';
import type { PolicyRule } from './decide.js';
import {
  anpPeers, anpPort, declarations, hasNamed, hash, namedPortsOf, npPeer, npPort, podInSet,
  type NamedPort, type SetBase, type SetSpec, type TierPort,
} from './netpol-sets.js';

export { NAMED_PORT_PREFIX, blockCidr, namedPortsOf } from './netpol-sets.js';

/**
 * Kubernetes' policy tiers (issue 15) as the compiler's own rules, around Weft's. For one direction of a
 * pod, the highest priority among matching rules decides:
 *   - AdminNetworkPolicies (priorities above 100): lowest `priority` first, each rule in order, the first
 *     that matches deciding; Pass skips the rest of this tier;
 *   - Weft's group rules (1-100, DESIGN §4);
 *   - NetworkPolicy: its allows (0) and, for a pod some NetworkPolicy selects in that direction (it is
 *     isolated), a deny of everything (-1);
 *   - the BaselineAdminNetworkPolicy (-2 and below), each rule in order, for pods nothing above decided;
 *   - else the tenant's default.
 * Both ends must allow, as ever. A pod is an endpoint: its namespace is its label `namespace` (`default`
 * without one), its labels are its labels, and it declares a named port with the label
 * `port.weft.io/NAME` = `PORT` (TCP) or `PROTOCOL-PORT` (`udp-53`). A peer becomes a peer set, named by a
 * hash of its content; a class records the sets it is in, and what applies to a pod (the tiers'
 * policies selecting it, and the named ports they need resolved on it) joins its group in the identity
 * whose rule index its side uses, so pods selected alike share a class and an index.
 */

export const NETPOL_ALLOW = 0;
export const NETPOL_ISOLATION = -1;
/** The highest priority of Weft's own rules: AdminNetworkPolicies sit above it, Pass jumps to it. */
export const WEFT_TOP = 100;
const ANP_BASE = WEFT_TOP + 1;
const BANP_TOP = -2;

/** `revision`: the stored object's, when it is one (the agent's compile cache keys on it). */
export interface NetpolNamespace { name: string; labels: LabelMap; revision?: number }

/** The tenant's Kubernetes policies and the labels its namespaces were given (`kind: Namespace`). */
export interface NetpolInput {
  policies: ReadonlyArray<NetworkPolicy & Stamp>;
  namespaces: readonly NetpolNamespace[];
  anps?: ReadonlyArray<AdminNetworkPolicy & Stamp>;
  banp?: (BaselineAdminNetworkPolicy & Stamp) | undefined;
}

/** A stored policy's revision (the agent's compile cache keys on it) and whether it is in audit mode. */
interface Stamp { revision?: number; audit?: boolean }

/** A rule the compiler made from a tier: its peer may be a peer set, its action Pass. */
export type NetpolRule = PolicyRule;

/** What a class adds when the tenant has such policies: the peer sets it is in, and what applies to it. */
export interface NpPart {
  /** The sorted ids of the peer sets the class is in. */
  sets: string[];
  /** What applies to the pod ('' when nothing does): the key of its own rules. */
  own: string;
}

/** One rule of a tier as written, before it meets a pod (its named ports) and its peers become sets. */
interface TierRule {
  key: string;
  policy: string;
  id: string;
  level: number;
  action: 'allow' | 'deny' | 'pass';
  dir: 'in' | 'out';
  /** undefined: any peer. */
  peers: Array<SetBase | undefined>;
  /** undefined: every port of every protocol. */
  ports: Array<TierPort | undefined>;
  /** Of a policy in audit mode. */
  audit: boolean;
}

/** What applies to a pod; `isolated`: the NetworkPolicies isolating it per direction, `name (audit)` for those in audit mode. */
interface Own { in: TierRule[]; out: TierRule[]; isolated: { in: string[]; out: string[] }; named: Record<string, NamedPort> }
const AUDIT_SUFFIX = ' (audit)';

/**
 * An egress rule's named port becomes one rule per number pods declare under that name; past this many
 * numbers for one name the others are not matched (their pods are not allowed by it: fail closed). A
 * tenant's pods could otherwise multiply one rule by every number they declare.
 */
export const MAX_NAMED_NUMBERS = 64;
type Dir = 'in' | 'out';
const dirs = { in: 'ingress', out: 'egress' } as const;

export const namespaceOf = (e: Endpoint): string => e.labels['namespace'] ?? DEFAULT_NAMESPACE;

/**
 * The Kubernetes tiers of one compile: the peer sets, what each endpoint and class is in, and the rules
 * of each pod's identity. Built from the whole tenant (a peer set may name pods on any host).
 */
export class Netpol {
  private readonly specs: SetSpec[];
  /** The pod sets by a label their pod selector requires (podSetIndex). */
  private readonly podSets: PodSetIndex;
  private readonly bySpec = new Map<string, SetSpec>();
  private readonly nsLabels = new Map<string, LabelMap>();
  private readonly owns = new Map<string, Own>();
  // A WeakMap, not an Attached: this object lives for one compile and its keys (the endpoints) for long; on
  // the endpoints a property per compile would pile up (a review's find).
  private readonly epParts = new WeakMap<Endpoint, { podSets: string[]; own: string }>();
  /** Per named port, what endpoints declare for it: egress rules resolve a name on each destination. */
  private readonly declared: Map<string, NamedPort[]>;
  private readonly np = new Map<NetworkPolicy & Stamp, Record<Dir, TierRule[]>>();
  private readonly anp: Array<{ subject: AnpSubject; rules: Record<Dir, TierRule[]> }> = [];
  private readonly banp: { subject: AnpSubject; rules: Record<Dir, TierRule[]> } | undefined;
  private readonly blockNamed: boolean;
  /** The named ports some rule names. */
  private readonly names: Set<string>;
  private readonly made = new Map<string, Array<{ policy: string; rule: NetpolRule }>>();
  /** The tier rules before they meet pods (a compile's size, for its log line). */
  readonly ruleCount: number;
  /** Every CIDR a block names (cidr and except), as classes carry them. */
  readonly cidrs: string[];
  /** A digest of the policies, namespaces and declared named ports: part of a compile's frame. */
  readonly digest: string;
  /**
   * Some rule compares SCTP ports (a port, a range, or a named port some pod declares as SCTP): the
   * compile then decides SCTP by port in a slot of its own (compile.ts).
   */
  readonly sctpPorts: boolean;

  constructor(readonly input: NetpolInput, endpoints: readonly Endpoint[]) {
    for (const n of input.namespaces) this.nsLabels.set(n.name, n.labels);
    // Only the names some rule names: a pod declaring others changes nothing here (and no frame).
    const names = new Set<string>();
    const note = (q: { port?: unknown; namedPort?: unknown } | undefined) => { const n = q?.namedPort ?? q?.port; if (typeof n === 'string') names.add(n); };
    for (const p of input.policies) for (const r of [...(p.spec.ingress ?? []), ...(p.spec.egress ?? [])]) for (const q of r.ports ?? []) note(q);
    for (const a of [...(input.anps ?? []), ...(input.banp ? [input.banp] : [])]) for (const r of [...a.ingress, ...a.egress]) for (const q of r.ports ?? []) note(q as { namedPort?: unknown });
    this.names = names;
    const declared = [...declarations(endpoints)].filter(([n]) => names.has(n));
    this.declared = new Map(declared.map(([n, xs]) => [n, xs.slice(0, MAX_NAMED_NUMBERS)]));
    const anps = [...(input.anps ?? [])].sort((a, b) => a.priority - b.priority || (a.name < b.name ? -1 : 1));
    let rank = anps.reduce((n, a) => n + a.ingress.length + a.egress.length, 0);
    for (const a of anps) {
      const rules = { in: [] as TierRule[], out: [] as TierRule[] };
      for (const d of ['in', 'out'] as const) {
        a[dirs[d]].forEach((r, i) => rules[d].push({
          key: `anp/${a.name}/${d}/${i}`, policy: `adminnetworkpolicy ${a.name}`, id: `${dirs[d]}.${i}${r.name ? ` (${r.name})` : ''}`,
          level: ANP_BASE + --rank, action: r.action === 'Allow' ? 'allow' : r.action === 'Deny' ? 'deny' : 'pass', dir: d,
          peers: r.peers.flatMap(anpPeers), ports: r.ports ? r.ports.map(anpPort) : [undefined], audit: a.audit === true,
        }));
      }
      this.anp.push({ subject: a.subject, rules });
    }
    for (const p of input.policies) {
      const rules = { in: [] as TierRule[], out: [] as TierRule[] };
      for (const d of ['in', 'out'] as const) {
        const list = d === 'in' ? (p.spec.ingress ?? []).map((r) => ({ peers: r.from, ports: r.ports })) : (p.spec.egress ?? []).map((r) => ({ peers: r.to, ports: r.ports }));
        list.forEach((r, i) => rules[d].push({
          key: `np/${p.namespace}/${p.name}/${d}/${i}`, policy: `networkpolicy ${p.namespace}/${p.name}`, id: `${dirs[d]}.${i}`, level: NETPOL_ALLOW, action: 'allow', dir: d,
          peers: r.peers && r.peers.length > 0 ? r.peers.map((x) => npPeer(x, p.namespace)) : [undefined],
          ports: r.ports && r.ports.length > 0 ? r.ports.map(npPort) : [undefined], audit: p.audit === true,
        }));
      }
      this.np.set(p, rules);
    }
    const b = input.banp;
    if (b) {
      const rules = { in: [] as TierRule[], out: [] as TierRule[] };
      for (const d of ['in', 'out'] as const) {
        b[dirs[d]].forEach((r, i) => rules[d].push({
          key: `banp/${d}/${i}`, policy: 'baselineadminnetworkpolicy default', id: `${dirs[d]}.${i}${r.name ? ` (${r.name})` : ''}`,
          level: BANP_TOP - i, action: r.action === 'Allow' ? 'allow' : 'deny', dir: d, peers: r.peers.flatMap(anpPeers), ports: r.ports ? r.ports.map(anpPort) : [undefined], audit: b.audit === true,
        }));
      }
      this.banp = { subject: b.subject, rules };
    }
    // Every set a rule can name, so that each class is told which it is in before any rule is made.
    const all = [...this.anp.map((x) => x.rules), ...this.np.values(), ...(this.banp ? [this.banp.rules] : [])];
    for (const rs of all) for (const t of [...rs.in, ...rs.out]) for (const peer of t.peers) for (const port of t.ports) this.peersOf(t.dir, peer, port);
    this.specs = [...this.bySpec.values()];
    this.podSets = podSetIndex(this.specs, endpoints);
    this.blockNamed = this.specs.some((x) => x.block && x.named);
    const cidrs = new Set<string>();
    for (const s of this.specs) if (s.block) for (const c of [s.block.cidr, ...s.block.except]) cidrs.add(c);
    this.cidrs = [...cidrs].sort();
    this.ruleCount = all.reduce((n, rs) => n + rs.in.length + rs.out.length, 0);
    this.sctpPorts = all.some((rs) => [...rs.in, ...rs.out].some((t) => t.ports.some((q) => q?.protocol === 'sctp' && q.range !== undefined)))
      || declared.some(([, xs]) => xs.some((x) => x.protocol === 'sctp'));
    this.digest = createHash('sha256').update(JSON.stringify([input.policies.map((p) => [p.namespace, p.name, p.spec, p.audit === true]), input.namespaces.map((n) => [n.name, n.labels]),
      anps.map((a) => [a.name, a.priority, a.subject, a.ingress, a.egress, a.audit === true]), b ? [b.subject, b.ingress, b.egress, b.audit === true] : null, [...this.declared]])).digest('hex');
  }

  private add(s: SetBase): string {
    const text = JSON.stringify(s);
    let x = this.bySpec.get(text);
    if (!x) this.bySpec.set(text, (x = { ...s, id: hash(text) }));
    return x.id;
  }

  /**
   * The sets one (peer, port) of a rule names, with the port each holds: a named port on egress is the
   * destination's, so one set per number some pod declares under it (those pods only). An ingress named
   * port resolves on the pod itself (`own`), and leaves the peer as it is.
   */
  private peersOf(d: Dir, peer: SetBase | undefined, port: TierPort | undefined, own?: Record<string, NamedPort>): Array<{ set: string | undefined; port: TierPort | undefined; suffix?: string }> {
    const n = port?.named;
    if (!n) return [{ set: peer && this.add(peer), port }];
    if (d === 'in') {
      // Registering the sets (no pod yet): the peer is named whatever the pod declares.
      if (own === undefined) return [{ set: peer && this.add(peer), port }];
      const x = own[n.name];
      const fits = x && (n.protocol === undefined || x.protocol === n.protocol);
      return fits ? [{ set: peer && this.add(peer), port: { protocol: x.protocol, range: [x.port, x.port] } }] : [];
    }
    return (this.declared.get(n.name) ?? []).filter((x) => n.protocol === undefined || x.protocol === n.protocol).map((x) => ({
      set: this.add({ ...(peer ?? { any: true }), named: { name: n.name, ...x } }), port: { protocol: x.protocol, range: [x.port, x.port] as [number, number] }, suffix: `${n.name}=${x.protocol}/${x.port}`,
    }));
  }

  private subjectHolds(s: AnpSubject, nsLabels: LabelMap, labels: LabelMap): boolean {
    if ('namespaces' in s) return selectorMatches(s.namespaces, nsLabels);
    return selectorMatches(s.pods.namespaceSelector, nsLabels) && selectorMatches(s.pods.podSelector, labels);
  }

  /** An endpoint's pod sets and identity, computed once per endpoint object. */
  private partOf(e: Endpoint): { podSets: string[]; own: string } {
    let x = this.epParts.get(e);
    if (x) return x;
    const ns = namespaceOf(e);
    const nsLabels = { ...(this.nsLabels.get(ns) ?? {}), [NAMESPACE_NAME_LABEL]: ns };
    const named = namedPortsOf(e.labels);
    const podSets: string[] = [];
    for (const s of this.podSets.candidates(ns, nsLabels, e.labels)) if (podInSet(s, ns, nsLabels, e.labels, named)) podSets.push(s.id);
    const o: Own = { in: [], out: [], isolated: { in: [], out: [] }, named: {} };
    for (const a of this.anp) if (this.subjectHolds(a.subject, nsLabels, e.labels)) { o.in.push(...a.rules.in); o.out.push(...a.rules.out); }
    for (const [p, rules] of this.np) {
      if (p.namespace !== ns || !selectorMatches(p.spec.podSelector, e.labels)) continue;
      const types = policyTypesOf(p);
      const name = `${p.namespace}/${p.name}${p.audit ? AUDIT_SUFFIX : ''}`;
      if (types.includes('Ingress')) { o.in.push(...rules.in); o.isolated.in.push(name); }
      if (types.includes('Egress')) { o.out.push(...rules.out); o.isolated.out.push(name); }
    }
    if (this.banp && this.subjectHolds(this.banp.subject, nsLabels, e.labels)) { o.in.push(...this.banp.rules.in); o.out.push(...this.banp.rules.out); }
    let own = '';
    if (o.in.length + o.out.length + o.isolated.in.length + o.isolated.out.length > 0) {
      // Only the named ports its ingress rules name: pods differing in others share the identity.
      const names = new Set(o.in.flatMap((t) => t.ports.flatMap((q) => (q?.named ? [q.named.name] : []))));
      o.named = Object.fromEntries(Object.entries(named).filter(([k]) => names.has(k)).sort(([a], [b]) => (a < b ? -1 : 1)));
      own = hash(JSON.stringify([o.in.map((t) => t.key), o.out.map((t) => t.key), o.isolated, o.named]));
      if (!this.owns.has(own)) this.owns.set(own, o);
    }
    this.epParts.set(e, (x = { podSets, own }));
    return x;
  }

  /** What a class holding this endpoint (or none) with these CIDRs adds; undefined when nothing. */
  part(e: Endpoint | undefined, cidrs: readonly string[]): NpPart | undefined {
    const ep = e ? this.partOf(e) : undefined;
    const sets = ep ? [...ep.podSets] : [];
    if (cidrs.length > 0) {
      const have = new Set(cidrs);
      const named = e ? namedPortsOf(e.labels) : {};
      for (const s of this.specs) {
        if (!s.block || !have.has(s.block.cidr) || s.block.except.some((c) => have.has(c))) continue;
        if (s.named && !(e && hasNamed(named, s.named))) continue;
        sets.push(s.id);
      }
    }
    if (sets.length === 0 && !ep?.own) return undefined;
    return { sets: sets.sort(), own: ep?.own ?? '' };
  }

  /**
   * What decides that an endpoint needs moving to another class: its sets, its identity, and the named
   * ports it declares that rules name (a block's named-port set holds it by them).
   */
  endpointKey(e: Endpoint): string {
    const x = this.partOf(e);
    const named = Object.entries(namedPortsOf(e.labels)).filter(([n]) => this.names.has(n)).sort(([a], [b]) => (a < b ? -1 : 1));
    return `${x.own}:${x.podSets.join(',')}:${JSON.stringify(named)}`;
  }

  /** Is this endpoint in some pod set or selected by some policy, or may a block's named-port set hold it (so it needs a class of its own)? */
  matters(e: Endpoint): boolean {
    const x = this.partOf(e);
    return x.own !== '' || x.podSets.length > 0 || (this.blockNamed && Object.keys(namedPortsOf(e.labels)).length > 0);
  }

  /** The endpoint's identity ('' when no policy of these tiers selects it). */
  ownOf(e: Endpoint): string {
    return this.partOf(e).own;
  }

  /** The rules an identity (`own`) holds for one direction, and a NetworkPolicy isolation's deny. */
  rules(own: string, d: Dir): Array<{ policy: string; rule: NetpolRule }> {
    const o = this.owns.get(own);
    if (!o) return [];
    const made = this.made.get(`${d}/${own}`);
    if (made) return made;
    const out: Array<{ policy: string; rule: NetpolRule }> = [];
    this.made.set(`${d}/${own}`, out);
    for (const t of o[d]) {
      t.peers.forEach((peer, j) => t.ports.forEach((port, k) => {
        for (const x of this.peersOf(d, peer, port, o.named)) {
          const id = `${t.id}.${d === 'in' ? 'from' : 'to'}.${j}.ports.${k}${x.suffix ? `.${x.suffix}` : ''}`;
          const set = x.set === undefined ? {} : d === 'in' ? { fromSet: x.set } : { toSet: x.set };
          out.push({ policy: t.policy, rule: { id, priority: t.level, direction: d, action: t.action, ...trafficOf(x.port), ...set, ...(t.audit ? { audit: true } : {}) } });
        }
      }));
    }
    // Isolation by enforced policies denies; by policies in audit mode only, it would (audited).
    const names = o.isolated[d];
    const enforced = names.filter((x) => !x.endsWith(AUDIT_SUFFIX));
    if (names.length > 0) {
      const audit = enforced.length === 0;
      out.push({ policy: `networkpolicy isolation (${names.join(', ')})`, rule: { id: dirs[d], priority: NETPOL_ISOLATION, direction: d, action: 'deny', protocol: 'any', ...(audit ? { audit } : {}) } });
    }
    return out;
  }
}

function trafficOf(q: TierPort | undefined): Pick<Rule, 'protocol' | 'ports'> {
  if (q?.protocol === undefined) return { protocol: 'any' };
  const protocol = q.protocol === 'sctp' ? '132' : q.protocol;
  if (!q.range) return { protocol };
  const [a, b] = q.range;
  return { protocol, ports: a === b ? String(a) : `${a}-${b}` };
}

/** The pod sets a pod may be in, in the sets' order, without testing every set against every pod. */
interface PodSetIndex { candidates(ns: string, nsLabels: LabelMap, labels: LabelMap): SetSpec[] }

/**
 * Pod sets filed under labels their pod selector requires: of the selector's matchLabels pairs and its `In`
 * expressions (each value of one an option), the one fewest of the tenant's pods carry (a set is filed
 * under every value of an `In`). A set whose pod selector requires nothing is decided by the namespace
 * alone, once per namespace; one requiring no label (other expressions only) is tested for every pod.
 * A pod is tested against the sets filed under its own labels and those. A tenant's policies with 10,000
 * podSelector peers, each naming one pod, were 10,000 × pods selector tests on every compile (17 s at
 * 10,000 pods, on the agent's event loop), and filing under the first label alone let a label every pod
 * carries, listed first, bring them back (docs/decisions.md, session 55).
 */
function podSetIndex(specs: readonly SetSpec[], endpoints: readonly Endpoint[]): PodSetIndex {
  const carried = new Map<string, Map<string, number>>();
  for (const e of endpoints) {
    for (const [k, v] of Object.entries(e.labels)) {
      const vs = carried.get(k) ?? carried.set(k, new Map()).get(k)!;
      vs.set(v, (vs.get(v) ?? 0) + 1);
    }
  }
  const byLabel = new Map<string, Map<string, number[]>>();
  const file = (k: string, v: string, i: number) => {
    const vs = byLabel.get(k) ?? byLabel.set(k, new Map()).get(k)!;
    const xs = vs.get(v);
    if (xs) xs.push(i);
    else vs.set(v, [i]);
  };
  const always: number[] = [];
  const byNamespace: number[] = [];
  specs.forEach((s, i) => {
    if (s.block) return;
    const sel = s.podSelector ?? {};
    const options: Array<[string, string[]]> = Object.entries(sel.matchLabels ?? {}).map(([k, v]) => [k, [v]]);
    for (const r of sel.matchExpressions ?? []) if (r.operator === 'In') options.push([r.key, [...new Set(r.values ?? [])]]);
    if (options.length > 0) {
      let best = options[0] as [string, string[]];
      let fewest = Infinity;
      for (const o of options) {
        const n = o[1].reduce((a, v) => a + (carried.get(o[0])?.get(v) ?? 0), 0);
        if (n < fewest) [best, fewest] = [o, n];
      }
      for (const v of best[1]) file(best[0], v, i);
    } else if (!s.any && (sel.matchExpressions ?? []).length === 0) {
      byNamespace.push(i);
    } else {
      always.push(i);
    }
  });
  const nsSets = new Map<string, number[]>();
  return {
    candidates(ns: string, nsLabels: LabelMap, labels: LabelMap): SetSpec[] {
      let inNs = nsSets.get(ns);
      if (!inNs) {
        // The namespace's part of each such set (its name, its selector); a named port is the pod's own (podInSet).
        inNs = byNamespace.filter((i) => { const s = specs[i] as SetSpec; return (s.namespace === undefined || s.namespace === ns) && (!s.namespaceSelector || selectorMatches(s.namespaceSelector, nsLabels)); });
        nsSets.set(ns, inNs);
      }
      const at = [...always, ...inNs];
      for (const [k, v] of Object.entries(labels)) { const xs = byLabel.get(k)?.get(v); if (xs) at.push(...xs); }
      // In the sets' order, as a full scan lists them (an endpoint's key, endpointKey, is made of them).
      at.sort((a, b) => a - b);
      return at.map((i) => specs[i] as SetSpec);
    },
  };
}
