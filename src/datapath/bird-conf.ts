import type { BgpPlan } from './routed.js';

/** BGP timers (seconds): a host that stops answering is withdrawn within the hold time. */
export const BGP_TIMERS = { hold: 3, keepalive: 1, connectRetry: 1 } as const;

const prefixSet = (patterns: readonly string[], more = false) => `[ ${patterns.map((c) => (more ? `${c}+` : c)).join(', ')} ]`;

/**
 * One channel of a session: announces `exports` of `own` (this host's blocks), learns only `imports`, never
 * inside `own`; none of either while it has nothing to learn. `nextHop`: the address announced as next hop
 * (IPv6 over an IPv4 session: the host's IPv6 underlay address; IPv4: the session's own address).
 */
function channel(family: 'ipv4' | 'ipv6', own: readonly string[], exports: readonly string[], imports: readonly string[], nextHop?: string): string[] {
  if (imports.length === 0) return [`\t${family} { import none; export none; };`];
  const exp = exports.length ? `if source = RTS_STATIC && net ~ ${prefixSet(exports)} then accept; ` : '';
  const mine = own.length ? `if net ~ ${prefixSet(own, true)} then reject; ` : '';
  return [
    `\t${family} {`,
    `\t\timport filter { ${mine}if net ~ ${prefixSet(imports)} then accept; reject; };`,
    `\t\texport filter { ${exp}reject; };`,
    nextHop === undefined ? '\t\tnext hop self;' : `\t\tnext hop address ${nextHop};`,
    '\t};',
  ];
}

/**
 * bird2's configuration for a host's BGP: its blocks as static routes (blackholes: only announced, never
 * written to the kernel, where the agent routes them into the tenants' uplinks), one eBGP session per
 * router, each announcing the blocks of its networks and learning only blocks of those networks (exactly
 * the block size: no aggregate, no default, no more specific route; nothing inside this host's own
 * blocks, which a peer could otherwise pull away from it); only routes learned by BGP go to the kernel.
 * `allow local as`: the other hosts share this host's AS, so their routes come back through the router
 * with it in their path. A host with an IPv6 underlay address gives every session an ipv6 channel, whether
 * or not a dual-stack network uses it yet (a channel added or removed restarts the session: its IPv4
 * routes would be withdrawn with it), announcing that address as next hop (the kernel cannot route IPv6
 * through an IPv4 one).
 */
export function renderBirdConfig(p: BgpPlan): string {
  const six = p.nextHop6 !== undefined;
  const lines = [
    '# Written by the weft agent: replaced on every change of routed networks.',
    `router id ${p.routerId};`,
    'protocol device { scan time 10; }',
    'protocol kernel weft_kernel {',
    '\tipv4 { import none; export where source = RTS_BGP; };',
    '\tmerge paths on;',
    '}',
    'protocol static weft_blocks {',
    '\tipv4;',
    ...p.blocks.map((b) => `\troute ${b} blackhole;`),
    '}',
    ...(six ? [
      'protocol kernel weft_kernel6 {',
      '\tipv6 { import none; export where source = RTS_BGP; };',
      '\tmerge paths on;',
      '}',
      'protocol static weft_blocks6 {',
      '\tipv6;',
      ...p.blocks6.map((b) => `\troute ${b} blackhole;`),
      '}',
    ] : []),
  ];
  for (const s of p.sessions) {
    lines.push(
      `protocol bgp ${s.name} {`,
      `\tlocal ${p.routerId} as ${s.localAs};`,
      `\tneighbor ${s.peer} as ${s.peerAs};`,
      `\thold time ${BGP_TIMERS.hold}; keepalive time ${BGP_TIMERS.keepalive}; connect retry time ${BGP_TIMERS.connectRetry};`,
      '\tallow local as;',
      ...channel('ipv4', p.blocks, s.exports, s.imports),
      ...(six ? channel('ipv6', p.blocks6, s.exports6, s.imports6, p.nextHop6) : []),
      '}',
    );
  }
  return `${lines.join('\n')}\n`;
}
