import { createHash } from 'node:crypto';
import { DEFAULT_NAMESPACE, NAMESPACE_NAME_LABEL, cidrRange, formatIp, parseCidr, policyTypesOf, selectorMatches } from '../model/index.js';
import type { Endpoint, LabelMap, LabelSelector, NetpolProtocol, NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort, Rule } from '../model/index.js';

/**
 * Kubernetes NetworkPolicy (issue 15) as the compiler's own rules, below Weft's. For one direction of a
 * pod, in order: Weft's rules (priorities 1-100), then NetworkPolicy's allows (priority NETPOL_ALLOW),
 * then, when some NetworkPolicy selects the pod for that direction (it is isolated), a deny of
 * everything (NETPOL_ISOLATION); else the tenant's default. Both ends must allow, as ever.
 *
 * A pod is an endpoint: its namespace is its label `namespace` (`default` without one), its labels are
 * its labels, and it declares a named port with the label `port.weft.io/NAME` = `PORT` (TCP) or
 * `PROTOCOL-PORT` (`udp-53`). A NetworkPolicy peer (pods by selector, or an ipBlock with except) becomes
 * a peer set, named by a hash of its content; a class records the sets it is in, and the pod's own
 * isolation (the policies that select it and the named ports they need resolved) is part of its
 * identity, so pods selected alike share a class and a rule index.
 */

export const NETPOL_ALLOW = 0;
export const NETPOL_ISOLATION = -1;
export const NAMED_PORT_PREFIX = 'port.weft.io/';

/** `revision`: the stored object's, when it is one (the agent's compile cache keys on it). */
export interface NetpolNamespace { name: string; labels: LabelMap; revision?: number }

/** The tenant's NetworkPolicies and the labels its namespaces were given (`kind: Namespace`). */
export interface NetpolInput {
  policies: ReadonlyArray<NetworkPolicy & { revision?: number }>;
  namespaces: readonly NetpolNamespace[];
}

/** A rule the compiler made from a NetworkPolicy: its peer may be a peer set (`fromSet` / `toSet`). */
export interface NetpolRule extends Rule {
  fromSet?: string;
  toSet?: string;
}

/** What a class adds when the tenant has NetworkPolicies: the peer sets it is in, and its own isolation. */
export interface NpPart {
  /** The sorted ids of the peer sets the class is in. */
  sets: string[];
  /** The pod's isolation ('' when no policy selects it): the key of its own rules. */
  own: string;
}

type Protocol = 'tcp' | 'udp' | 'sctp';
interface NamedPort { protocol: Protocol; port: number }

/** One peer set: pods (by namespace and selectors) or addresses, optionally only pods declaring a named port as given. */
interface SetSpec {
  id: string;
  /** Pods: the policy's namespace when there is no namespace selector. */
  namespace?: string;
  namespaceSelector?: LabelSelector;
  podSelector?: LabelSelector;
  /** Addresses: the block and its holes, as the CIDR texts classes carry. */
  block?: { cidr: string; except: string[] };
  /** Only pods that declare this named port with this protocol and number. */
  named?: { name: string } & NamedPort;
  /** Any address (an egress rule to everything, narrowed by `named`). */
  any?: true;
}

interface Own { ns: string; in: NetworkPolicy[]; out: NetworkPolicy[]; named: Record<string, NamedPort> }

const hash = (text: string) => createHash('sha256').update(text).digest('hex').slice(0, 12);

/** An ipBlock CIDR as classes carry it: its network address and length (Kubernetes accepts host bits). */
export function blockCidr(text: string): string {
  const c = cidrRange(parseCidr(text, 'cidr', false));
  const len = 32 - Math.log2(c.last - c.first + 1);
  return `${formatIp(c.first)}/${len}`;
}

const lower = (p: NetpolProtocol | undefined): Protocol => (p ?? 'TCP').toLowerCase() as Protocol;

/** The named ports an endpoint declares by label. */
export function namedPortsOf(labels: LabelMap): Record<string, NamedPort> {
  const out: Record<string, NamedPort> = {};
  for (const [k, v] of Object.entries(labels)) {
    if (!k.startsWith(NAMED_PORT_PREFIX)) continue;
    const m = /^(?:(tcp|udp|sctp)-)?(\d{1,5})$/.exec(v);
    const port = m ? Number(m[2]) : 0;
    if (m && port >= 1 && port <= 65535) out[k.slice(NAMED_PORT_PREFIX.length)] = { protocol: (m[1] ?? 'tcp') as Protocol, port };
  }
  return out;
}

export const namespaceOf = (e: Endpoint): string => e.labels['namespace'] ?? DEFAULT_NAMESPACE;

/**
 * The NetworkPolicy layer of one compile: the peer sets, what each endpoint and class is in, and the
 * rules of each pod's isolation. Built from the whole tenant (a peer set may name pods on any host).
 */
export class Netpol {
  private readonly specs: SetSpec[] = [];
  private readonly nsLabels = new Map<string, LabelMap>();
  private readonly owns = new Map<string, Own>();
  private readonly epParts = new WeakMap<Endpoint, { podSets: string[]; own: string }>();
  /** Every CIDR a block names (cidr and except), as classes carry them. */
  readonly cidrs: string[];
  /** A digest of the policies and namespaces: part of a compile's frame. */
  readonly digest: string;

  constructor(readonly input: NetpolInput, endpoints: readonly Endpoint[]) {
    for (const n of input.namespaces) this.nsLabels.set(n.name, n.labels);
    const bySpec = new Map<string, SetSpec>();
    const add = (s: Omit<SetSpec, 'id'>): string => {
      const text = JSON.stringify(s);
      let x = bySpec.get(text);
      if (!x) bySpec.set(text, (x = { ...s, id: hash(text) }));
      return x.id;
    };
    this.add = add;
    const declared = declarations(endpoints);
    this.declared = declared;
    for (const p of input.policies) {
      for (const r of p.spec.ingress ?? []) for (const x of r.from ?? []) add(peerSpec(x, p.namespace));
      for (const r of p.spec.egress ?? []) {
        const peers = r.to && r.to.length > 0 ? r.to.map((x) => peerSpec(x, p.namespace)) : [{ any: true as const }];
        for (const s of peers) {
          if (!s.any) add(s);
          for (const q of r.ports ?? []) if (typeof q.port === 'string') for (const n of declared.get(`${q.port}/${lower(q.protocol)}`) ?? []) add({ ...s, named: { name: q.port, protocol: lower(q.protocol), port: n } });
        }
      }
    }
    this.specs = [...bySpec.values()];
    this.blockNamed = this.specs.some((x) => x.block && x.named);
    const cidrs = new Set<string>();
    for (const s of this.specs) if (s.block) for (const c of [s.block.cidr, ...s.block.except]) cidrs.add(c);
    this.cidrs = [...cidrs].sort();
    // The named ports endpoints declare are in it: they decide the egress rules' sets.
    this.digest = hash(JSON.stringify([input.policies.map((p) => [p.namespace, p.name, p.spec]), input.namespaces.map((n) => [n.name, n.labels]), [...declared]]));
  }

  private readonly add: (s: Omit<SetSpec, 'id'>) => string;
  private readonly blockNamed: boolean;
  /** Per `NAME/protocol`, the port numbers some endpoint declares under that name. */
  private readonly declared: Map<string, number[]>;

  /** An endpoint's pod sets and isolation, computed once per endpoint object. */
  private partOf(e: Endpoint): { podSets: string[]; own: string } {
    let x = this.epParts.get(e);
    if (x) return x;
    const ns = namespaceOf(e);
    const nsLabels = { ...(this.nsLabels.get(ns) ?? {}), [NAMESPACE_NAME_LABEL]: ns };
    const named = namedPortsOf(e.labels);
    const podSets: string[] = [];
    for (const s of this.specs) if (!s.block && podInSet(s, ns, nsLabels, e.labels, named)) podSets.push(s.id);
    const selects = (p: NetworkPolicy, t: 'Ingress' | 'Egress') => p.namespace === ns && policyTypesOf(p).includes(t) && selectorMatches(p.spec.podSelector, e.labels);
    const inPols = this.input.policies.filter((p) => selects(p, 'Ingress'));
    const outPols = this.input.policies.filter((p) => selects(p, 'Egress'));
    let own = '';
    if (inPols.length > 0 || outPols.length > 0) {
      // Only the named ports its ingress policies name: pods differing in others share the identity.
      const names = new Set(inPols.flatMap((p) => (p.spec.ingress ?? []).flatMap((r) => (r.ports ?? []).map((q) => q.port)).filter((q): q is string => typeof q === 'string')));
      const used = Object.fromEntries(Object.entries(named).filter(([n]) => names.has(n)).sort(([a], [b]) => (a < b ? -1 : 1)));
      const text = JSON.stringify([ns, inPols.map((p) => p.name), outPols.map((p) => p.name), used]);
      own = hash(text);
      if (!this.owns.has(own)) this.owns.set(own, { ns, in: inPols, out: outPols, named: used });
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

  /** What decides that an endpoint needs moving to another class: its sets and isolation. */
  endpointKey(e: Endpoint): string {
    const x = this.partOf(e);
    return `${x.own}:${x.podSets.join(',')}`;
  }

  /** Is this endpoint in some pod set or isolated, or may a block's named-port set hold it (so it needs a class of its own)? */
  matters(e: Endpoint): boolean {
    const x = this.partOf(e);
    return x.own !== '' || x.podSets.length > 0 || (this.blockNamed && Object.keys(namedPortsOf(e.labels)).length > 0);
  }

  /** The endpoint's isolation ('' when no policy selects it). */
  ownOf(e: Endpoint): string {
    return this.partOf(e).own;
  }

  /** The rules a pod's isolation (`own`) holds for one direction: its policies' allows, then the isolation's deny. */
  rules(own: string, d: 'in' | 'out'): Array<{ policy: string; rule: NetpolRule }> {
    const o = this.owns.get(own);
    const pols = o ? (d === 'in' ? o.in : o.out) : [];
    if (!o || pols.length === 0) return [];
    const out: Array<{ policy: string; rule: NetpolRule }> = [];
    for (const p of pols) {
      const policy = `networkpolicy ${p.namespace}/${p.name}`;
      const rules = d === 'in' ? (p.spec.ingress ?? []).map((r) => ({ peers: r.from, ports: r.ports })) : (p.spec.egress ?? []).map((r) => ({ peers: r.to, ports: r.ports }));
      rules.forEach((r, i) => {
        const peers: Array<string | undefined> = r.peers && r.peers.length > 0 ? r.peers.map((x) => this.add(peerSpec(x, p.namespace))) : [undefined];
        const ports: Array<NetworkPolicyPort | undefined> = r.ports && r.ports.length > 0 ? [...r.ports] : [undefined];
        peers.forEach((peer, j) => ports.forEach((q, k) => {
          const id = `${d === 'in' ? 'ingress' : 'egress'}.${i}.${d === 'in' ? 'from' : 'to'}.${j}.ports.${k}`;
          for (const x of this.expand(q, peer, d, o, p.namespace, r.peers)) out.push({ policy, rule: { id: x.suffix ? `${id}.${x.suffix}` : id, priority: NETPOL_ALLOW, direction: d, action: 'allow', ...x.traffic, ...x.peer } });
        }));
      });
    }
    const names = pols.map((p) => `${p.namespace}/${p.name}`).join(', ');
    out.push({ policy: `networkpolicy isolation (${names})`, rule: { id: d === 'in' ? 'ingress' : 'egress', priority: NETPOL_ISOLATION, direction: d, action: 'deny', protocol: 'any' } });
    return out;
  }

  /** One (peer, port entry) of a rule as compiler rules: a named port resolves on the destination pod. */
  private expand(q: NetworkPolicyPort | undefined, peer: string | undefined, d: 'in' | 'out', o: Own, ns: string, peers: readonly NetworkPolicyPeer[] | undefined): Array<{ traffic: Pick<Rule, 'protocol' | 'ports'>; peer: Partial<NetpolRule>; suffix?: string }> {
    const setField = (id: string | undefined): Partial<NetpolRule> => (id === undefined ? {} : d === 'in' ? { fromSet: id } : { toSet: id });
    if (q === undefined) return [{ traffic: { protocol: 'any' }, peer: setField(peer) }];
    const protocol = lower(q.protocol);
    const proto = protocol === 'sctp' ? '132' : protocol;
    if (q.port === undefined) return [{ traffic: { protocol: proto }, peer: setField(peer) }];
    if (typeof q.port === 'number') return [{ traffic: { protocol: proto, ports: q.endPort !== undefined && q.endPort !== q.port ? `${q.port}-${q.endPort}` : String(q.port) }, peer: setField(peer) }];
    const name = q.port;
    if (d === 'in') {
      const n = o.named[name];
      return n && n.protocol === protocol ? [{ traffic: { protocol: proto, ports: String(n.port) }, peer: setField(peer) }] : [];
    }
    // Egress: the port is the destination's, so one rule per number some pod declares, to those pods only.
    const bases: Array<Omit<SetSpec, 'id'>> = peers && peers.length > 0 ? peers.map((x) => peerSpec(x, ns)) : [{ any: true }];
    const base = peer === undefined ? bases[0] : bases.find((b) => this.add(b) === peer);
    return (this.declared.get(`${name}/${protocol}`) ?? []).map((n) => ({ traffic: { protocol: proto, ports: String(n) }, peer: setField(this.add({ ...(base as Omit<SetSpec, 'id'>), named: { name, protocol, port: n } })), suffix: `${name}=${n}` }));
  }
}

function peerSpec(x: NetworkPolicyPeer, ns: string): Omit<SetSpec, 'id'> {
  if (x.ipBlock) return { block: { cidr: blockCidr(x.ipBlock.cidr), except: (x.ipBlock.except ?? []).map(blockCidr).sort() } };
  return {
    ...(x.namespaceSelector ? { namespaceSelector: x.namespaceSelector } : { namespace: ns }),
    // A namespaceSelector alone selects every pod of those namespaces.
    podSelector: x.podSelector ?? {},
  };
}

function hasNamed(named: Record<string, NamedPort>, want: { name: string } & NamedPort): boolean {
  const n = named[want.name];
  return n !== undefined && n.protocol === want.protocol && n.port === want.port;
}

function podInSet(s: SetSpec, ns: string, nsLabels: LabelMap, labels: LabelMap, named: Record<string, NamedPort>): boolean {
  if (s.named && !hasNamed(named, s.named)) return false;
  if (s.any) return true;
  if (s.namespace !== undefined && s.namespace !== ns) return false;
  if (s.namespaceSelector && !selectorMatches(s.namespaceSelector, nsLabels)) return false;
  return selectorMatches(s.podSelector ?? {}, labels);
}

/** Per `NAME/protocol`, the distinct numbers endpoints declare for it. */
function declarations(endpoints: readonly Endpoint[]): Map<string, number[]> {
  const out = new Map<string, Set<number>>();
  for (const e of endpoints) {
    for (const [name, n] of Object.entries(namedPortsOf(e.labels))) {
      const k = `${name}/${n.protocol}`;
      (out.get(k) ?? out.set(k, new Set()).get(k))!.add(n.port);
    }
  }
  return new Map([...out].map(([k, v]) => [k, [...v].sort((a, b) => a - b)]));
}
