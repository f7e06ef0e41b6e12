// Flow records (issue 16): the part of a tenant's table that tells the agent, through NFLOG, each new
// connection and its verdict. Denials: every policy decision to drop goes to the chain DENY_CHAIN
// (policy-nft-parts.ts verdictText), which logs and drops. Allowed connections: a second filter chain on
// the forward hook, after the policy's (an accept ends only its own chain), logs each connection's first
// packet; the audit chain marks what an audit-mode policy would have dropped, so it is logged as such.
// Rate-limited in the kernel, per source address and per tenant, so a flood costs the agent a bounded
// number of records; what the limits hold back is counted in the named counter FLOW_HELD, which the
// agent reports beside the records.

import { UPLINK_SPACE6 } from '../model/index.js';
import { names } from './names.js';

/** The NFLOG group the tenant tables log to (FLOW_GROUP in linux/netwatch.c, which reads it). */
export const FLOW_LOG_GROUP = 8;
/** Every policy decision to drop jumps here (a `goto`): it drops, and logs when flow records are on. */
export const DENY_CHAIN = 'deny';
/** Set by the audit chain on what only an audit-mode policy would drop: no class, profile or side mark (policy-nft-parts.ts) is ever this. */
export const AUDIT_MARK = 0x10000000;
/** The log prefixes netwatch.c knows: allowed, denied, allowed but an audit-mode policy would deny. */
export const FLOW_PREFIX = { allow: 'weft-a ', deny: 'weft-d ', audit: 'weft-w ' } as const;
const FLOW_SET = 'flowsrc';
const FLOW_SET6 = 'flowsrc6';
const FLOW_TOTAL = 'flowtotal';
/** The named counter of connections the limits kept from being logged (FLOW_HELD in linux/netwatch.c). */
export const FLOW_HELD = 'flowheld';
/**
 * Bytes copied per logged packet: an IPv4 header with options and the ports, or an IPv6 header, 84 bytes
 * of extension headers and the ports (a record whose ports lie past the copy says port 0, and the server
 * leaves it unexplained rather than explain it as portless).
 */
const SNAPLEN = 128;

/** Records per second the kernel passes on: per source address, and per table of the tenant on this host (the inet table; in a tenant without policy also the bridge table, for bridged connections). */
export interface FlowLimits {
  perSource: number;
  total: number;
}

export const FLOW_LIMITS_DEFAULT: FlowLimits = { perSource: 20, total: 500 };

const log = (prefix: string) => `log prefix "${prefix}" group ${FLOW_LOG_GROUP} snaplen ${SNAPLEN}`;

/**
 * The set and chains flow records need (`\tKIND NAME {` blocks, as NftTable.chains holds them), or only
 * the deny chain when they are off. The set's comment carries the limits: changing them changes a set,
 * which diffTables answers with a whole-table replace, so a chain is never rewritten naming a set the
 * delta does not declare.
 */
export function renderFlows(limits: FlowLimits | undefined, hooks: readonly FlowHook[] = FORWARD): string[] {
  if (!limits) return [`\tchain ${DENY_CHAIN} {`, '\t\tdrop', '\t}'];
  const l = limiting(limits, true);
  return [
    ...l.objects,
    `\tchain ${DENY_CHAIN} {`,
    `\t\t${l.perSource} drop`,
    `\t\t${l.perSource6} drop`,
    `\t\t${l.total} drop`,
    `\t\t${log(FLOW_PREFIX.deny)}`,
    '\t\tdrop',
    '\t}',
    ...hooks.flatMap((h) => [
      `\tchain ${h.chain} {`,
      `\t\ttype filter hook ${h.hook} priority filter + 10; policy accept;`,
      ...(h.only ? [`\t\t${h.only}`] : []),
      '\t\tct state != new accept',
      // DNS queries to a gateway (DNATed to the agent on the uplink) are the agent's own business.
      `\t\tct status dnat oifname "${names.uplinkTenant}" ip daddr 169.254.0.0/16 accept`,
      `\t\tct status dnat ip6 daddr ${UPLINK_SPACE6} accept`,
      `\t\t${l.perSource} accept`,
      `\t\t${l.perSource6} accept`,
      `\t\t${l.total} accept`,
      `\t\tmeta mark ${hex(AUDIT_MARK)} ${log(FLOW_PREFIX.audit)} accept`,
      `\t\t${log(FLOW_PREFIX.allow)}`,
      '\t}',
    ]),
  ];
}

/** Where allowed connections are logged: a chain on a hook, with a rule that lets past what is not its business. */
export interface FlowHook { chain: string; hook: 'forward' | 'input' | 'output'; only?: string }
const FORWARD: readonly FlowHook[] = [{ chain: 'flows', hook: 'forward' }];

/** A macvlan endpoint's container table (nft.ts renderEndpointTable): connections through its interface, both ways. */
export const endpointFlowHooks = (ifname: string): FlowHook[] => [
  { chain: 'flows_in', hook: 'input', only: `iifname != "${ifname}" accept` },
  { chain: 'flows_out', hook: 'output', only: `oifname != "${ifname}" accept` },
];

/**
 * The limits' objects (a table's own: named objects are not shared between tables) and the statements
 * that apply them. `six`: the table sees IPv6 too (the inet tables): sources are limited per IPv6 address as well, in a
 * set of their own (one container's IPv6 would otherwise take the table's whole budget); so does a
 * bridge table of a tenant with IPv6.
 */
function limiting(limits: FlowLimits, six = false): { objects: string[]; perSource: string; perSource6: string; total: string; held: string } {
  // What the limits hold back is counted in one named counter, which weft-netwatch reads (FLOW_HELD).
  const held = `counter name "${FLOW_HELD}"`;
  return {
    held,
    objects: [
      `\tcounter ${FLOW_HELD} {`,
      '\t}',
      `\tlimit ${FLOW_TOTAL} {`,
      `\t\trate over ${limits.total}/second burst ${limits.total} packets`,
      '\t}',
      `\tset ${FLOW_SET} {`,
      '\t\ttype ipv4_addr',
      '\t\tsize 65536',
      '\t\tflags dynamic,timeout',
      '\t\ttimeout 1m',
      `\t\tcomment "flow records: ${limits.perSource}/s per source, ${limits.total}/s in all"`,
      '\t}',
      ...(six ? [
        `\tset ${FLOW_SET6} {`,
        '\t\ttype ipv6_addr',
        '\t\tsize 65536',
        '\t\tflags dynamic,timeout',
        '\t\ttimeout 1m',
        '\t}',
      ] : []),
    ],
    perSource: `update @${FLOW_SET} { ip saddr limit rate over ${limits.perSource}/second burst ${limits.perSource * 2} packets } ${held}`,
    perSource6: `update @${FLOW_SET6} { ip6 saddr limit rate over ${limits.perSource}/second burst ${limits.perSource * 2} packets } ${held}`,
    // One named limit for the table's chains: its records in all, allowed and denied together.
    total: `limit name "${FLOW_TOTAL}" ${held}`,
  };
}

/** A UDP, UDP-Lite or SCTP 5-tuple, or an address pair and protocol, silent this long is new again when it resumes (bridge tables). */
export const BRIDGE_SEEN_TIMEOUT_S = 30;
/** A logged SYN is remembered this long, so its retransmissions (1, 3, 7, 15, 31 and 63 s later, Linux's default) are not new connections. */
export const BRIDGE_SYN_TIMEOUT_S = 65;
/** New UDP/SCTP flows and address pairs a source may add to the seen sets each second, as a multiple of its records a second. */
const NEW_FLOWS_PER_RECORD = 10;
const SEEN_SYN = 'seensyn';
const SEEN_PORTS = 'seenports';
const SEEN_PAIRS = 'seenpairs';
const NEW_SET = 'flownew';

/**
 * Flow records for bridged traffic in a tenant whose bridged packets skip IP netfilter (no policy that
 * filters, no services, no DSCP marks: plan.ts bridgedThroughNetfilter), as chains of the tenant's bridge
 * table (guard-nft.ts). Turning bridge-nf-call-iptables on for the records alone would put every bridged
 * packet through conntrack; here a new connection is told from the packet, without it:
 * - TCP: a segment with SYN alone, unless it is the retransmission of a SYN logged in the last
 *   BRIDGE_SYN_TIMEOUT_S (same addresses, ports and sequence number; only logged SYNs are remembered, so
 *   that set grows no faster than the records; a retransmission the per-source limit holds back before
 *   that lookup is counted as held once more);
 * - UDP, UDP-Lite, SCTP: a 5-tuple, and ICMP requests and other protocols: an address pair and
 *   protocol, not seen (either way, but ICMP requests one way) for BRIDGE_SEEN_TIMEOUT_S; a packet of a
 *   known flow refreshes it. Each source adds at most NEW_FLOWS_PER_RECORD times its records a second
 *   (what it adds past that is counted as held, packet by packet, and not tracked), so one container
 *   cannot fill the set for the others; when the set is full anyway, new flows count as held;
 * - a non-first fragment, a packet whose headers cannot be read, anything but IPv4 (and, in a tenant
 *   with IPv6, IPv6, in sets and chains of their own): never.
 * Bulk traffic costs, for UDP, one rule (a lookup and a refresh), for TCP a dispatch by protocol and a
 * flags test. Everything bridged here is allowed (a tenant that filters has bridged traffic in netfilter,
 * and its inet table logs it). Same limits and held counter as the inet table's, counted per table.
 */
export function renderBridgeFlows(limits: FlowLimits, six = false): string[] {
  const l = limiting(limits, six);
  const held = l.held;
  // `type`: the set's type line (`type ...` or `typeof ...`).
  const set = (name: string, type: string, timeoutS: number) => [
    `\tset ${name} {`,
    `\t\t${type}`,
    '\t\tsize 65536',
    '\t\tflags dynamic,timeout',
    `\t\ttimeout ${timeoutS}s`,
    '\t}',
  ];
  const f4 = bridgeFamily('ip', '', 'ipv4_addr', limits, l.perSource, held);
  // A tenant with IPv6 records its bridged IPv6 the same way, in sets and chains of its own (suffix 6).
  const f6 = six ? bridgeFamily('ip6', '6', 'ipv6_addr', limits, l.perSource6, held) : undefined;
  const udpPorts = (f: BridgeFamily) => `${f.ip} saddr . ${f.ip} daddr . udp sport . udp dport`;
  return [
    ...l.objects,
    ...[f4, ...(f6 ? [f6] : [])].flatMap((f) => [
      ...set(f.seenSyn, `typeof ${f.syn}`, BRIDGE_SYN_TIMEOUT_S),
      ...set(f.seenPorts, `type ${f.addr} . ${f.addr} . inet_service . inet_service`, BRIDGE_SEEN_TIMEOUT_S),
      ...set(f.seenPairs, `type ${f.addr} . ${f.addr} . inet_proto`, BRIDGE_SEEN_TIMEOUT_S),
      ...set(f.newSet, `type ${f.addr}`, 60),
    ]),
    // A chain that ends without a verdict returns to the base chain's caller: accepted, not logged. The
    // chains below let pass what is not their family before reading addresses, and non-first fragments
    // before reading ports or a type (nothing reassembles here: a fragment never starts a flow).
    '\tchain flows {',
    '\t\ttype filter hook forward priority 0; policy accept;',
    // A known UDP flow's packet (the bulk of UDP) in one rule: its tests of the family and UDP, one lookup
    // and a refresh. A non-first fragment fails the port loads and goes on to the dispatch.
    ...[f4, ...(f6 ? [f6] : [])].map((f) => `\t\t${udpPorts(f)} @${f.seenPorts} update @${f.seenPorts} { ${udpPorts(f)} } accept`),
    `\t\tether type ip meta l4proto vmap { tcp : goto flowtcp, udp : goto flowports, udplite : goto flowports, sctp : goto flowports, icmp : goto flowicmp }`,
    '\t\tether type ip goto flowpairs',
    ...(f6 ? [
      // Link-local sources (neighbour discovery, mDNS, DHCPv6) are no connections between endpoints; each
      // endpoint's link-local address would also be a second source with a budget of its own.
      '\t\tip6 saddr fe80::/10 accept',
      `\t\tether type ip6 meta l4proto vmap { tcp : goto flowtcp6, udp : goto flowports6, udplite : goto flowports6, sctp : goto flowports6, ipv6-icmp : goto flowicmp6 }`,
      // A packet whose upper header cannot be located (an extension header chain the kernel gives up on)
      // fails the protocol load here and is let through, never counted as held.
      '\t\tether type ip6 meta l4proto != 255 goto flowpairs6',
    ] : []),
    '\t}',
    ...[f4, ...(f6 ? [f6] : [])].flatMap((f) => bridgeChains(f, l.total, held)),
  ];
}

/** What the bridge chains of one family need: its names (suffixed), expressions and limit. */
interface BridgeFamily {
  ip: 'ip' | 'ip6'; sfx: string; addr: string; syn: string; ports: string; back: string; pair: string; newFlows: string;
  seenSyn: string; seenPorts: string; seenPairs: string; newSet: string; perSource: string;
  /** Lets a non-first fragment pass (its ports or type cannot be read). */
  fragment: string;
  /** ICMP requests, the only ICMP messages that start a flow. */
  requests: string;
}

function bridgeFamily(ip: 'ip' | 'ip6', sfx: string, addr: string, limits: FlowLimits, perSource: string, held: string): BridgeFamily {
  const newSet = `${NEW_SET}${sfx}`;
  return {
    ip, sfx, addr, perSource, newSet,
    seenSyn: `${SEEN_SYN}${sfx}`, seenPorts: `${SEEN_PORTS}${sfx}`, seenPairs: `${SEEN_PAIRS}${sfx}`,
    syn: `${ip} saddr . ${ip} daddr . tcp sport . tcp dport . tcp sequence`,
    ports: `${ip} saddr . ${ip} daddr . th sport . th dport`,
    back: `${ip} daddr . ${ip} saddr . th dport . th sport`,
    pair: `${ip} saddr . ${ip} daddr . meta l4proto`,
    newFlows: `update @${newSet} { ${ip} saddr limit rate over ${limits.perSource * NEW_FLOWS_PER_RECORD}/second burst ${limits.perSource * NEW_FLOWS_PER_RECORD * 2} packets } ${held} accept`,
    fragment: ip === 'ip' ? 'ip frag-off & 0x1fff != 0 accept' : 'frag frag-off != 0 accept',
    requests: ip === 'ip' ? 'icmp type != { echo-request, timestamp-request, info-request, address-mask-request } accept' : 'icmpv6 type != echo-request accept',
  };
}

function bridgeChains(f: BridgeFamily, total: string, held: string): string[] {
  const x = f.sfx;
  return [
    // A non-first fragment has no TCP header: the flags test fails, nothing more.
    `\tchain flowtcp${x} {`,
    `\t\ttcp flags & (fin | syn | rst | ack) == syn goto flowsyn${x}`,
    '\t}',
    // The per-source limit first, so a SYN it holds back costs no lookup (a retransmission it holds back
    // is counted as held again, a rare overcount).
    `\tchain flowsyn${x} {`,
    `\t\tether type != ${f.ip} accept`,
    `\t\t${f.perSource} accept`,
    `\t\t${f.syn} @${f.seenSyn} accept`,
    `\t\t${total} accept`,
    // A full set refuses the add, which ends that rule only: the SYN is logged all the same.
    `\t\tadd @${f.seenSyn} { ${f.syn} }`,
    `\t\t${log(FLOW_PREFIX.allow)}`,
    '\t}',
    `\tchain flowports${x} {`,
    `\t\tether type != ${f.ip} accept`,
    `\t\t${f.fragment}`,
    `\t\t${f.ports} @${f.seenPorts} update @${f.seenPorts} { ${f.ports} } accept`,
    `\t\t${f.newFlows}`,
    // Each way once: the first packet adds both, so the reply is a known flow.
    `\t\tadd @${f.seenPorts} { ${f.ports} } add @${f.seenPorts} { ${f.back} } goto flowlog${x}`,
    // The set is full: not tracked, so held, packet by packet, until room is made.
    `\t\t${held} accept`,
    '\t}',
    // ICMP: requests only (replies and errors belong to their request or another flow), one way, so the
    // peer's own requests back are news. (ICMPv6's neighbour discovery and router messages are no flows.)
    `\tchain flowicmp${x} {`,
    `\t\t${f.fragment}`,
    `\t\t${f.requests}`,
    `\t\t${f.pair} @${f.seenPairs} update @${f.seenPairs} { ${f.pair} } accept`,
    `\t\t${f.newFlows}`,
    `\t\tadd @${f.seenPairs} { ${f.pair} } goto flowlog${x}`,
    `\t\t${held} accept`,
    '\t}',
    `\tchain flowpairs${x} {`,
    `\t\t${f.pair} @${f.seenPairs} update @${f.seenPairs} { ${f.pair} } accept`,
    `\t\t${f.newFlows}`,
    `\t\tadd @${f.seenPairs} { ${f.pair} } add @${f.seenPairs} { ${f.ip} daddr . ${f.ip} saddr . meta l4proto } goto flowlog${x}`,
    `\t\t${held} accept`,
    '\t}',
    `\tchain flowlog${x} {`,
    `\t\t${f.perSource} accept`,
    `\t\t${total} accept`,
    `\t\t${log(FLOW_PREFIX.allow)}`,
    '\t}',
  ];
}

const hex = (n: number) => `0x${n.toString(16)}`;

/** A policy's render (policy-nft.ts) as the tenant's table holds it, with the deny chain its drops go to, flow records off: for tests that load a policy alone. */
export function policyTableOf<T extends { chains: string[] }>(p: T): T & { family: string; name: string } {
  return { family: 'inet', name: 'weft', ...p, chains: [...renderFlows(undefined), ...p.chains] };
}
