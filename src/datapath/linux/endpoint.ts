import { existsSync, readdirSync, statSync, writeFileSync, rmSync } from 'node:fs';
import { WeftError, formatCidr6, linkLocalOf, maskOf6, parseIp6 } from '../../model/index.js';
import type { Attachment, OuterAttachment } from '../datapath.js';
import { names } from '../names.js';
import { ROUTE_PROTO } from '../routed.js';
import { basename, dirname } from 'node:path';
import type { Runner } from '../../exec/index.js';
import { inNs, ipBatch } from './observe.js';
import { NETNS_DIR } from './tenant.js';
import { endpointTableName, guardTableName } from '../nft.js';

/**
 * Gives `ip` a name for a container netns path. Runtimes that pin namespaces under /run/netns (podman,
 * containerd) need nothing; any other path is bind-mounted there for the duration of `fn`.
 */
export async function withNetnsName<T>(runner: Runner, path: string, alias: string, fn: (name: string) => Promise<T>): Promise<T> {
  const dir = dirname(path);
  if (dir === NETNS_DIR || dir === '/var/run/netns') return fn(basename(path));
  const mountPoint = `${NETNS_DIR}/${alias}`;
  writeFileSync(mountPoint, '');
  try {
    await runner.run(['mount', '--bind', path, mountPoint]);
    try {
      return await fn(alias);
    } finally {
      await runner.run(['umount', mountPoint], { allowFailure: true });
    }
  } finally {
    rmSync(mountPoint, { force: true });
  }
}

/** A namespace file's identity (device and inode of its nsfs entry), or undefined if it cannot be read. */
function nsIdentity(path: string): string | undefined {
  try {
    const st = statSync(path);
    return `${st.dev}:${st.ino}`;
  } catch {
    return undefined;
  }
}

/**
 * Refuses to treat the host's own network namespace (the agent's, PID 1's) or any tenant router
 * namespace of this agent as a container: an endpoint record pointing there (`netns: /proc/1/ns/net`,
 * `/run/netns/weft-t7`) would otherwise wire the host, or another tenant, into this tenant. A target that
 * cannot be identified is refused too (fail closed).
 */
export function refuseHostNamespace(netnsPath: string, tenantNs: string): void {
  const target = nsIdentity(netnsPath);
  if (target === undefined) {
    throw new WeftError('WEFT_INVALID_VALUE', `netns: ${netnsPath} cannot be identified as a network namespace; refusing to wire it`, { field: 'netns' });
  }
  const prefix = tenantNs.replace(/t[0-9]+$/, '');
  const routers = names.tenantNamespaces(prefix, safeReaddir(NETNS_DIR)).map((t) => `${NETNS_DIR}/${t.ns}`);
  for (const own of ['/proc/self/ns/net', '/proc/1/ns/net', ...routers]) {
    if (nsIdentity(own) === target) {
      const what = own.startsWith(NETNS_DIR) ? `the tenant router ${basename(own)}` : 'this host';
      throw new WeftError('WEFT_INVALID_VALUE', `netns: ${netnsPath} is the network namespace of ${what}, not a container's; refusing to wire it`, { field: 'netns' });
    }
  }
}

function safeReaddir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/**
 * Creates the endpoint's veth with each end directly in its final namespace (no moves: moving links
 * between namespaces serialises on rtnl under bursts), puts the host end on the network's bridge, and
 * configures the container end. Fails if the container already has `ifname`; its interface comes up only once `ready` resolves.
 */
export async function attachEndpoint(runner: Runner, a: Attachment, nsAlias: string, ready?: Promise<void>): Promise<void> {
  refuseHostNamespace(a.netnsPath, a.tenantNs);
  if (a.ip6 !== undefined && !existsSync('/proc/sys/net/ipv6')) {
    throw new WeftError('WEFT_INVALID_VALUE', 'network: it is dual-stack and this host has no IPv6 (its kernel was booted with ipv6.disable=1): its endpoints cannot be wired here; use an IPv4-only network on this host', { field: 'network' });
  }
  if (a.macvlan) return attachMacvlan(runner, a, a.macvlan, nsAlias, ready);
  await withNetnsName(runner, a.netnsPath, nsAlias, async (cns) => {
    // One exec for the pair and the bridge port; without -force, a failed `link add` (the container
    // already has ifname) stops the batch before anything else happens.
    await runner.run(['ip', '-n', a.tenantNs, '-batch', '-'], {
      input: `link add ${a.veth} mtu ${a.mtu} type veth peer name ${a.ifname} address ${a.mac} mtu ${a.mtu} netns ${cns}\n`
        + `link set ${a.veth} master ${a.bridge} up\n${a.hairpin ? `link set ${a.veth} type bridge_slave hairpin on\n` : ''}`
        + `${a.isolated ? `link set ${a.veth} type bridge_slave isolated on\n` : ''}`,
    }).catch(async (e: unknown) => {
      await runner.run(['ip', '-n', a.tenantNs, 'link', 'del', a.veth], { allowFailure: true });
      throw e;
    });
    // A routed network's IPv6 endpoint: its /128 on the bridge now, as the tenant's routes will have it
    // (linux/tenant.ts ensureRouted), so it is reachable before the agent's next pass (which adds it anyway).
    if (a.isolated && a.ip6 !== undefined && a.gateway6 !== undefined) {
      await runner.run(['ip', '-n', a.tenantNs, 'route', 'replace', `${a.ip6}/128`, 'dev', a.bridge, 'table', 'main', 'proto', String(ROUTE_PROTO), 'src', a.gateway6], { allowFailure: true });
    }
    try {
      await ready;
      await ipBatch(runner, cns, containerSide(a));
    } catch (e) {
      await detachEndpoint(runner, a.tenantNs, a.veth);
      throw e;
    }
  });
}

/** The container end's address, state and (unless it was attached without one) default route. */
function containerSide(a: Attachment): string[] {
  const six = a.ip6 !== undefined && a.gateway6 !== undefined;
  const four = a.ip !== undefined && a.gateway !== undefined;
  return [
    // An ARP request for a brand-new remote endpoint can reach its host before that host's agent has
    // the neighbour entry (arpMode proxy drops it); retrying after 100 ms instead of the default 1 s
    // makes a new endpoint reachable from other hosts in ~0.1 s instead of ~1.1 s.
    `ntable change name arp_cache dev ${a.ifname} retrans 100`,
    ...(four ? [`addr add ${a.ip}/${a.prefixLength} dev ${a.ifname}`] : []),
    // Dual stack: the link-local address the guard expects (from the MAC, not the kernel's choice) and
    // the IPAM's address, both without duplicate detection (unique by allocation; DAD would hold the
    // address tentative for a second after ADD returns).
    ...(six ? [
      `link set ${a.ifname} addrgenmode none`,
      `addr add ${linkLocalOf(a.mac)}/64 dev ${a.ifname} nodad`,
      // A routed network's endpoint has no on-link prefix (its neighbours are on other ports or hosts, and
      // Linux answers neighbour solicitations only for addresses it holds): its subnet is through the gateway.
      `addr add ${a.ip6}/${a.prefixLength6} dev ${a.ifname} nodad${a.isolated ? ' noprefixroute' : ''}`,
      `ntable change name ndisc_cache dev ${a.ifname} retrans 100`,
    ] : []),
    `link set ${a.ifname} up`,
    ...(six && a.isolated ? [
      `route replace ${a.gateway6} dev ${a.ifname}`,
      `route replace ${subnetOf6(a.ip6 as string, a.prefixLength6 as number)} via ${a.gateway6} dev ${a.ifname}`,
    ] : []),
    // An interface added beside the container's own (`weft attach`) reaches its subnet only, unless asked.
    ...(a.defaultRoute && four ? [`route replace default via ${a.gateway} dev ${a.ifname}`] : []),
    ...(a.defaultRoute && six ? [`route replace default via ${a.gateway6} dev ${a.ifname}`] : []),
  ];
}

/**
 * A macvlan network's endpoint: a bridge-mode child of the parent (in this, the agent's, namespace) made
 * directly in the container, down, IPv6 off (unless its network is dual-stack), then its tables (the tenant's policy
 * and the interface's egress guard: nft.ts containerTablesText) loaded before it comes up, so not one
 * frame passes unfiltered. Nothing is left if a step fails.
 */
async function attachMacvlan(runner: Runner, a: Attachment, mv: { parent: string; table: string }, nsAlias: string, ready?: Promise<void>): Promise<void> {
  await withNetnsName(runner, a.netnsPath, nsAlias, async (cns) => {
    await runner.run(['ip', 'link', 'add', 'link', mv.parent, 'name', a.ifname, 'address', a.mac, 'mtu', String(a.mtu), 'netns', cns, 'type', 'macvlan', 'mode', 'bridge']);
    try {
      // Slash-separated: an interface name may hold dots. Without IPv6 in the kernel there is nothing to turn off.
      // A dual-stack network's: its addresses come from Weft alone, never from the segment's router
      // advertisements (no SLAAC address, no default route learned), and it takes none of its redirects.
      const six = a.ip6 !== undefined ? ['disable_ipv6=0', 'accept_ra=0', 'autoconf=0', 'accept_redirects=0'] : ['disable_ipv6=1'];
      await runner.run(['ip', 'netns', 'exec', cns, 'sysctl', '-q', '-w', ...six.map((x) => `net/ipv6/conf/${a.ifname}/${x}`)], { allowFailure: a.ip6 === undefined });
      await ready;
      await runner.run(['ip', 'netns', 'exec', cns, 'nft', '-f', '-'], { input: mv.table });
      await ipBatch(runner, cns, containerSide(a));
    } catch (e) {
      await runner.run(['ip', '-n', cns, 'link', 'del', a.ifname], { allowFailure: true });
      throw e;
    }
  });
}

/**
 * A macvlan endpoint's interface and tables in its container, if the container is still there and is no
 * host or tenant namespace: only a macvlan link with the endpoint's MAC goes (an interface of that name
 * that is not ours, say after an ADD that found the name taken, stays).
 */
export async function unwireMacvlan(runner: Runner, e: { netnsPath: string; ifname: string; mac: string; tenantNs: string }, endpointId: string, nsAlias: string): Promise<void> {
  if (!existsSync(e.netnsPath)) return;
  refuseHostNamespace(e.netnsPath, e.tenantNs);
  await withNetnsName(runner, e.netnsPath, nsAlias, async (cns) => {
    const shown = await runner.run(['ip', '-n', cns, '-d', '-j', 'link', 'show', 'dev', e.ifname], { allowFailure: true });
    const [link] = JSON.parse(shown.stdout || '[]') as Array<{ address?: string; linkinfo?: { info_kind?: string } }>;
    if (link?.linkinfo?.info_kind === 'macvlan' && link.address === e.mac) await runner.run(['ip', '-n', cns, 'link', 'del', e.ifname], { allowFailure: true });
    await runner.run(['ip', 'netns', 'exec', cns, 'nft', 'delete', 'table', 'inet', endpointTableName(endpointId)], { allowFailure: true });
    await runner.run(['ip', 'netns', 'exec', cns, 'nft', 'delete', 'table', 'netdev', guardTableName(endpointId)], { allowFailure: true });
  });
}

/** Replaces a macvlan endpoint's tables in its container (whole tables, in one transaction). */
export async function loadContainerTable(runner: Runner, netnsPath: string, text: string, nsAlias: string): Promise<void> {
  await withNetnsName(runner, netnsPath, nsAlias, (cns) => runner.run(['ip', 'netns', 'exec', cns, 'nft', '-f', '-'], { input: text }));
}

/**
 * Deleting the host end removes the pair, so this works when the container netns is already gone.
 * The address's conntrack entries go too: a later endpoint may get the same address, and must not
 * inherit NAT or policy state from the old one.
 */
export async function detachEndpoint(runner: Runner, tenantNs: string, veth: string, ip?: string): Promise<void> {
  await unwireEndpoint(runner, tenantNs, veth);
  if (ip !== undefined) await forgetConnections(runner, tenantNs, ip);
}

/** The veth and, if the endpoint was shaped, its IFB (`we…` → `wi…`), in one exec that goes past a missing one. */
export async function unwireEndpoint(runner: Runner, tenantNs: string, veth: string): Promise<void> {
  if (!existsSync(`${NETNS_DIR}/${tenantNs}`)) return;
  await runner.run(['ip', '-n', tenantNs, '-force', '-batch', '-'], { input: `link del ${veth}\nlink del wi${veth.slice(2)}\n`, allowFailure: true });
}

/** The address's conntrack entries, both directions at once (conntrack exits 1 when nothing matched: the usual case). */
export async function forgetConnections(runner: Runner, tenantNs: string, ip: string): Promise<void> {
  if (!existsSync(`${NETNS_DIR}/${tenantNs}`)) return;
  // conntrack reads IPv4 unless told the family.
  const family = ip.includes(':') ? ['-f', 'ipv6'] : [];
  await Promise.all(['-s', '-d'].map((dir) => runner.run(inNs(tenantNs, ['conntrack', '-D', ...family, dir, ip]), { allowFailure: true })));
}

/** For CNI CHECK: the container's interface exists, is up and holds the address. */
export async function checkEndpoint(runner: Runner, a: Pick<Attachment, 'netnsPath' | 'ifname' | 'ip' | 'prefixLength' | 'ip6' | 'prefixLength6'>, nsAlias: string): Promise<string | undefined> {
  if (!existsSync(a.netnsPath)) return `network namespace ${a.netnsPath} does not exist`;
  return withNetnsName(runner, a.netnsPath, nsAlias, async (cns) => {
    const r = await runner.run(['ip', '-n', cns, '-j', 'addr', 'show', 'dev', a.ifname], { allowFailure: true });
    if (r.code !== 0) return `interface ${a.ifname} is missing in the container`;
    const [link] = JSON.parse(r.stdout || '[]') as Array<{ flags?: string[]; addr_info?: Array<{ local: string; prefixlen: number }> }>;
    if (!link?.flags?.includes('UP')) return `interface ${a.ifname} is down`;
    if (a.ip !== undefined && !link.addr_info?.some((x) => x.local === a.ip && x.prefixlen === a.prefixLength)) return `interface ${a.ifname} lacks ${a.ip}/${a.prefixLength}`;
    if (a.ip6 !== undefined && !link.addr_info?.some((x) => x.local === a.ip6 && x.prefixlen === a.prefixLength6)) return `interface ${a.ifname} lacks ${a.ip6}/${a.prefixLength6}`;
    return undefined;
  });
}

/**
 * For Docker: a veth whose tenant end joins the network's bridge and whose other end (`outer`) is in the
 * agent's own namespace, for Docker to move into the container and configure. One exec, made from the
 * tenant namespace: the tenant end is created on its bridge and up, the outer end directly in the agent's
 * namespace (named by the agent's pid). A leftover pair of an earlier Join of the endpoint is replaced.
 */
export async function attachOuterVeth(runner: Runner, a: OuterAttachment): Promise<void> {
  const mtu = String(a.mtu);
  const add = () => runner.run(['ip', '-n', a.tenantNs, 'link', 'add', a.veth, 'mtu', mtu, 'master', a.bridge, 'up', 'type', 'veth',
    'peer', 'name', a.outer, 'mtu', mtu, 'address', a.mac, 'netns', String(process.pid)]);
  try {
    await add();
  } catch {
    await runner.run(['ip', '-n', a.tenantNs, 'link', 'del', a.veth], { allowFailure: true });
    await runner.run(['ip', 'link', 'del', a.outer], { allowFailure: true });
    await add();
  }
  if (a.hairpin) await runner.run(['ip', '-n', a.tenantNs, 'link', 'set', a.veth, 'type', 'bridge_slave', 'hairpin', 'on']);
  if (a.isolated) await runner.run(['ip', '-n', a.tenantNs, 'link', 'set', a.veth, 'type', 'bridge_slave', 'isolated', 'on']);
}

/** The prefix an IPv6 address of length `prefix` is in, as CIDR text. */
function subnetOf6(ip6: string, prefix: number): string {
  return formatCidr6({ base: (parseIp6(ip6) as bigint) & maskOf6(prefix), prefix });
}
