import type { Runner } from '../../exec/index.js';

/** What `ip -d -j addr show` says about one link, reduced to what reconcile compares. */
export interface ObservedLink {
  name: string;
  kind: string;
  master: string | undefined;
  up: boolean;
  mtu: number;
  addresses: string[];
  /** Its global IPv6 addresses (link-local ones left out: the kernel makes them). */
  addresses6: string[];
  /** For a bridge port: whether the bridge may send frames back out of it. */
  hairpin?: boolean;
  /** For a bridge port: isolated (frames never go from it to another isolated port; routed networks). */
  isolated?: boolean;
  /** For a bridge: its MAC address. */
  mac?: string;
  /** For a bridge: whether its bridged frames pass IP netfilter (its own nf_call_iptables, ORed with the namespace's sysctl). */
  nfCallIptables?: boolean;
  nfCallIp6tables?: boolean;
  vxlan?: { id: number; local: string; proxy: boolean };
}

interface IpAddrJson {
  ifname: string;
  mtu: number;
  address?: string;
  master?: string;
  flags?: string[];
  linkinfo?: { info_kind?: string; info_data?: { id?: number; local?: string; proxy?: boolean; nf_call_iptables?: number; nf_call_ip6tables?: number }; info_slave_kind?: string; info_slave_data?: { hairpin?: boolean; isolated?: boolean } };
  addr_info?: Array<{ family: string; local: string; prefixlen: number; scope?: string }>;
}

/** Links of a namespace (undefined: the agent's own) keyed by name, in one exec. */
export async function observeLinks(runner: Runner, ns: string | undefined): Promise<Map<string, ObservedLink>> {
  const argv = ns === undefined ? ['ip', '-d', '-j', 'addr', 'show'] : ['ip', '-n', ns, '-d', '-j', 'addr', 'show'];
  const out = await runner.run(argv);
  const list = JSON.parse(out.stdout || '[]') as IpAddrJson[];
  return new Map(list.map((l) => [l.ifname, {
    name: l.ifname,
    kind: l.linkinfo?.info_kind ?? '',
    master: l.master,
    up: (l.flags ?? []).includes('UP'),
    mtu: l.mtu,
    addresses: (l.addr_info ?? []).filter((a) => a.family === 'inet').map((a) => `${a.local}/${a.prefixlen}`),
    addresses6: (l.addr_info ?? []).filter((a) => a.family === 'inet6' && a.scope === 'global').map((a) => `${a.local}/${a.prefixlen}`),
    ...(l.linkinfo?.info_slave_kind === 'bridge' ? { hairpin: l.linkinfo.info_slave_data?.hairpin === true, isolated: l.linkinfo.info_slave_data?.isolated === true } : {}),
    ...(l.linkinfo?.info_kind === 'bridge' ? { mac: l.address, nfCallIptables: l.linkinfo.info_data?.nf_call_iptables === 1, nfCallIp6tables: l.linkinfo.info_data?.nf_call_ip6tables === 1 } : {}),
    ...(l.linkinfo?.info_kind === 'vxlan' ? { vxlan: { id: l.linkinfo.info_data?.id ?? 0, local: l.linkinfo.info_data?.local ?? '', proxy: l.linkinfo.info_data?.proxy === true } } : {}),
  }]));
}

/** Commands for `ip -batch -`, run in a namespace; `-force` keeps going past a failed line. */
export async function ipBatch(runner: Runner, ns: string | undefined, lines: readonly string[]): Promise<void> {
  if (lines.length === 0) return;
  const argv = ns === undefined ? ['ip', '-force', '-batch', '-'] : ['ip', '-n', ns, '-force', '-batch', '-'];
  await runner.run(argv, { input: `${lines.join('\n')}\n` });
}

/**
 * `ipBatch` of what a look found missing. Refused with "File exists" (someone else added the same link or
 * route between the look and the batch), it looks again (`again`: the lines that look gives) and does
 * what is still missing, once: a convergence does not fail for what is already as wanted. Any other
 * refusal, or a second one, is the error. Returns the first refusal's first line if it looked again.
 */
export async function ipBatchOrLookAgain(runner: Runner, ns: string | undefined, lines: readonly string[], again: () => Promise<readonly string[]>): Promise<string | undefined> {
  try {
    await ipBatch(runner, ns, lines);
    return undefined;
  } catch (e) {
    const why = (e as Error).message;
    if (!why.includes('File exists')) throw e;
    await ipBatch(runner, ns, await again());
    return why.split('\n')[0];
  }
}

/**
 * Runs a command in a named network namespace. nsenter switches only the network namespace; `ip netns
 * exec` also builds a private mount namespace and remounts /sys, which costs milliseconds per call.
 */
export function inNs(ns: string | undefined, argv: readonly string[]): string[] {
  return ns === undefined ? [...argv] : ['nsenter', `--net=/run/netns/${ns}`, ...argv];
}

/**
 * This host's IPv6 underlay address: the first global IPv6 address (not tentative, deprecated or temporary)
 * of the interface holding `vtepIp`; undefined when it has none (routed networks' IPv6 blocks then reach
 * no other host through it).
 */
export async function detectUnderlayIp6(runner: Runner, vtepIp: string): Promise<string | undefined> {
  const r = await runner.run(['ip', '-j', 'addr', 'show'], { allowFailure: true });
  const list = JSON.parse(r.stdout || '[]') as Array<{ ifname: string; addr_info?: Array<{ family?: string; local: string; scope?: string; tentative?: boolean; deprecated?: boolean; temporary?: boolean; dadfailed?: boolean }> }>;
  const link = list.find((l) => l.addr_info?.some((a) => a.family === 'inet' && a.local === vtepIp));
  const a = link?.addr_info?.find((x) => x.family === 'inet6' && x.scope === 'global' && !x.tentative && !x.deprecated && !x.temporary && !x.dadfailed);
  return a?.local;
}

/** This host's underlay address: the first global IPv4 address, or loopback when there is none. */
export async function detectUnderlayIp(runner: Runner): Promise<string> {
  const r = await runner.run(['ip', '-4', '-j', 'addr', 'show', 'scope', 'global'], { allowFailure: true });
  const list = JSON.parse(r.stdout || '[]') as IpAddrJson[];
  for (const l of list) for (const a of l.addr_info ?? []) if (a.family === 'inet' && !l.ifname.startsWith('wu')) return a.local;
  return '127.0.0.1';
}
