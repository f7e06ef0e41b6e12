// Flow records (issue 16): the part of a tenant's table that tells the agent, through NFLOG, each new
// connection and its verdict. Denials: every policy decision to drop goes to the chain DENY_CHAIN
// (policy-nft-parts.ts verdictText), which logs and drops. Allowed connections: a second filter chain on
// the forward hook, after the policy's (an accept ends only its own chain), logs each connection's first
// packet; the audit chain marks what an audit-mode policy would have dropped, so it is logged as such.
// Rate-limited in the kernel, per source address and per tenant, so a flood costs the agent a bounded
// number of records; what the limits hold back is counted in the named counter FLOW_HELD, which the
// agent reports beside the records.

/** The NFLOG group the tenant tables log to (FLOW_GROUP in linux/netwatch.c, which reads it). */
export const FLOW_LOG_GROUP = 8;
/** Every policy decision to drop jumps here (a `goto`): it drops, and logs when flow records are on. */
export const DENY_CHAIN = 'deny';
/** Set by the audit chain on what only an audit-mode policy would drop: no class, profile or side mark (policy-nft-parts.ts) is ever this. */
export const AUDIT_MARK = 0x10000000;
/** The log prefixes netwatch.c knows: allowed, denied, allowed but an audit-mode policy would deny. */
export const FLOW_PREFIX = { allow: 'weft-a ', deny: 'weft-d ', audit: 'weft-w ' } as const;
const FLOW_SET = 'flowsrc';
const FLOW_TOTAL = 'flowtotal';
/** The named counter of connections the limits kept from being logged (FLOW_HELD in linux/netwatch.c). */
export const FLOW_HELD = 'flowheld';
/** Bytes copied per logged packet: an IPv4 header with options, and the ports. */
const SNAPLEN = 80;

/** Records per second the kernel passes on: per source address, and for the whole tenant on this host. */
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
export function renderFlows(limits: FlowLimits | undefined): string[] {
  if (!limits) return [`\tchain ${DENY_CHAIN} {`, '\t\tdrop', '\t}'];
  // What the limits hold back is counted in one named counter, which weft-netwatch reads (FLOW_HELD).
  const held = `counter name "${FLOW_HELD}"`;
  const perSource = `update @${FLOW_SET} { ip saddr limit rate over ${limits.perSource}/second burst ${limits.perSource * 2} packets } ${held}`;
  // One named limit for both chains: the tenant's records in all, allowed and denied together.
  const total = `limit name "${FLOW_TOTAL}" ${held}`;
  return [
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
    `\tchain ${DENY_CHAIN} {`,
    `\t\t${perSource} drop`,
    `\t\t${total} drop`,
    `\t\t${log(FLOW_PREFIX.deny)}`,
    '\t\tdrop',
    '\t}',
    '\tchain flows {',
    '\t\ttype filter hook forward priority filter + 10; policy accept;',
    '\t\tct state != new accept',
    // DNS queries to a gateway (DNATed to the agent on the uplink) are the agent's own business.
    '\t\tct status dnat ip daddr 169.254.0.0/16 accept',
    `\t\t${perSource} accept`,
    `\t\t${total} accept`,
    `\t\tmeta mark ${hex(AUDIT_MARK)} ${log(FLOW_PREFIX.audit)} accept`,
    `\t\t${log(FLOW_PREFIX.allow)}`,
    '\t}',
  ];
}

const hex = (n: number) => `0x${n.toString(16)}`;

/** A policy's render (policy-nft.ts) as the tenant's table holds it, with the deny chain its drops go to, flow records off: for tests that load a policy alone. */
export function policyTableOf<T extends { chains: string[] }>(p: T): T & { family: string; name: string } {
  return { family: 'inet', name: 'weft', ...p, chains: [...renderFlows(undefined), ...p.chains] };
}
