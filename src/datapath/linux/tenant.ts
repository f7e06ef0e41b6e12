import { existsSync } from 'node:fs';
import type { Runner } from '../../exec/index.js';
import { bridgedThroughNetfilter, type TenantPlan } from '../plan.js';
import { containerTablesTexts, renderTenantTable } from '../nft.js';
import { loadContainerTable, refuseHostNamespace } from './endpoint.js';
import { renderGuardTable } from '../guard-nft.js';
import { inNs, ipBatch, ipBatchOrLookAgain, observeLinks, type ObservedLink } from './observe.js';
import { NftTables } from './nft.js';
import { UPLINK6_PREFIX } from '../transit.js';
import { LINUX_ENCAPS } from './encaps/index.js';
import { observeQos, qosCommands, tcBatch } from './qos.js';
import { ensureRoutes } from './routes.js';
import type { QosPlan } from '../services.js';
import type { NftOutcome, Protected } from '../datapath.js';

export const NETNS_DIR = '/run/netns';

/**
 * Converges one tenant's namespace to its plan: namespace, uplink to the host, a bridge per network with
 * its gateway, endpoint veths on their bridges, and the NAT table. Idempotent; touches only links it owns
 * (`wb*`, `we*`, `up0`, `wu<id>`) and its own nft table; changes nothing that is already right.
 */
export class TenantDatapath {
  /** Per namespace, its links as the last convergence read them (before its own changes), and when. */
  readonly observed = new Map<string, { at: number; links: ReadonlyMap<string, ObservedLink> }>();
  /** Per namespace, the bridge-nf-call-iptables value last set (a new namespace starts with 1). */
  private readonly brNf = new Map<string, number>();

  constructor(private readonly runner: Runner, private readonly nft: NftTables) {}

  /**
   * Bridged traffic (within one network) passes IP netfilter only when the plan needs it
   * (bridgedThroughNetfilter). Routed and NATed traffic goes through netfilter either way.
   */
  private async ensureBridgeFiltering(ns: string, want: 0 | 1): Promise<void> {
    if (this.brNf.get(ns) === want) return;
    await this.runner.run(inNs(ns, ['sysctl', '-q', '-w', `net.bridge.bridge-nf-call-iptables=${want}`, `net.bridge.bridge-nf-call-ip6tables=${want}`]));
    this.brNf.set(ns, want);
  }

  get lastRefusal(): string {
    return this.nft.lastRefusal;
  }

  /** `protect`: veths being wired right now by a CNI ADD, never deleted as stale. */
  async ensure(p: TenantPlan, protect: Protected = new Set()): Promise<NftOutcome> {
    const fresh = await this.ensureNamespace(p.ns);
    if (p.v6) await this.ensureForwarding6(p.ns);
    let links = await observeLinks(this.runner, p.ns);
    // An uplink without its planned address is rebuilt too: the address moved (a tenant whose /30 covered
    // a reserved link-local service, see transit.ts).
    const up = links.get(p.uplink.tenantLink);
    if (fresh || !up || !up.addresses.includes(`${p.uplink.tenantIp}/${p.uplink.prefix}`)) {
      await this.ensureUplink(p);
      links = await observeLinks(this.runner, p.ns);
    } else if (!sameSet(up.addresses6, uplink6(p))) {
      const stale = up.addresses6.filter((a) => !uplink6(p).includes(a));
      await ipBatch(this.runner, p.ns, stale.map((a) => `addr del ${a} dev ${p.uplink.tenantLink}`));
      if (stale.length > 0 && uplink6(p).length === 0) {
        // No longer a tenant with IPv6: its IPv6 default route and the host end's address go too.
        await this.runner.run(inNs(p.ns, ['ip', '-6', 'route', 'del', '::/0', 'dev', p.uplink.tenantLink]), { allowFailure: true });
        await this.runner.run(['ip', '-6', 'addr', 'flush', 'dev', p.uplink.hostLink, 'scope', 'global'], { allowFailure: true });
      }
      await this.ensureUplink6(p);
      links = await observeLinks(this.runner, p.ns);
    }
    let created = false;
    for (const b of p.bridges) {
      if (!b.overlay) continue;
      const encap = LINUX_ENCAPS[b.overlay.encap];
      const l = links.get(b.overlay.name);
      if (!encap.matches(l, b.overlay)) {
        await encap.create(this.runner, p.ns, b.overlay, l);
        created = true;
      }
    }
    if (created) links = await observeLinks(this.runner, p.ns);
    this.observed.set(p.ns, { at: performance.now(), links });
    // What follows reads the look before the batch (a bridge it made again is not among them: its proxy ARP is set again).
    await this.ensureLinks(p, links, protect);
    // linkCommands made every planned bridge's flag what bridgeFiltering says.
    this.bridgeFlags.set(p.ns, new Map(bridgeFiltering(p).bridges));
    await this.ensureRouted(p, links);
    for (const b of p.bridges) if (b.overlay) await LINUX_ENCAPS[b.overlay.encap].converge(this.runner, p.ns, b.overlay);
    const nft = await this.ensureTables(p, false);
    // Reading qdiscs costs an exec: skipped while nothing is or should be shaped here, except on the
    // first pass over a namespace, which finds what an earlier run of the agent left.
    const known = this.shaped.get(p.ns);
    if (p.qos.length > 0 || known === undefined || known.size > 0) {
      const veths = [...links.values()].filter((l) => l.kind === 'veth' && l.name.startsWith('we')).map((l) => l.name);
      this.shaped.set(p.ns, new Set());
      await this.ensureQos(p.ns, p.qos, new Set(links.keys()), veths);
    }
    return nft;
  }

  /**
   * The links' batch. Refused with "File exists" (a bridge made by someone else between the look and the
   * batch: another writer of this namespace, which the agent's own lock should exclude, so said as a
   * warning), the links are looked at once more and what is still not as planned is done again: a
   * convergence, and the ADD waiting for it, do not fail for a link already as planned. Any other refusal,
   * or a second one, is the error.
   */
  private async ensureLinks(p: TenantPlan, links: ReadonlyMap<string, ObservedLink>, protect: Protected): Promise<void> {
    let left = 0;
    const why = await ipBatchOrLookAgain(this.runner, p.ns, linkCommands(p, links, protect), async () => {
      const rest = linkCommands(p, await observeLinks(this.runner, p.ns), protect);
      left = rest.length;
      return rest;
    });
    if (why !== undefined) process.emitWarning(`weft: a link of ${p.ns} was made by another writer while it was converged (${why}): looked at again, ${left} changes left`);
  }

  /** Per namespace, the routed bridges given proxy ARP (a bridge made again starts without it). */
  private readonly proxied = new Map<string, Set<string>>();

  /**
   * Routed networks' bridges: proxy ARP (an endpoint's ARP for an address of its subnet on another host
   * is answered by the bridge, whose route for it is the uplink), and a route to each block this host
   * holds on its bridge (the bridge holds the gateway as a /32: the rest of the subnet is elsewhere). IPv6
   * needs no proxy: an endpoint has no on-link prefix, only its gateway (a /128 here), and sends it all;
   * the namespace routes each endpoint's IPv6 address (a /128) on the bridge.
   * Read only in namespaces with routed bridges: their routes go with their bridge.
   */
  private async ensureRouted(p: TenantPlan, links: ReadonlyMap<string, ObservedLink>): Promise<void> {
    const routed = p.bridges.filter((b) => b.routed);
    if (routed.length === 0) {
      this.proxied.delete(p.ns);
      return;
    }
    const done = this.proxied.get(p.ns) ?? new Set<string>();
    for (const b of [...done]) if (!links.has(b)) done.delete(b);
    const todo = routed.filter((b) => !done.has(b.name));
    if (todo.length > 0) {
      // proxy_arp_pvlan: the bridge answers for addresses on its own ports too (they are isolated), so
      // two endpoints of this host reach each other through the tenant's routing and its policy.
      await this.runner.run(inNs(p.ns, ['sysctl', '-q', '-w', ...todo.flatMap((b) => [`net.ipv4.conf.${b.name}.proxy_arp=1`, `net.ipv4.conf.${b.name}.proxy_arp_pvlan=1`, `net.ipv4.neigh.${b.name}.proxy_delay=0`])]));
      for (const b of todo) done.add(b.name);
    }
    this.proxied.set(p.ns, done);
    const gw = (address: string | undefined) => (address === undefined ? {} : { src: address.split('/')[0] as string });
    // IPv6: each endpoint's /128 on its bridge and the rest of each block unreachable, never the block on-link:
    // a /74 on-link would let a scan of addresses no one has fill the kernel's neighbour table (shared by
    // every namespace) with unanswered solicitations. IPv4 blocks are small (64 addresses by default).
    await ensureRoutes(this.runner, p.ns, routed.flatMap((b) => [
      ...(b.routed?.blocks ?? []).map((dst) => ({ dst, dev: b.name, ...gw(b.address) })),
      ...(b.routed?.blocks6 ?? []).map((dst) => ({ dst, unreachable: true })),
      ...(b.routed?.blocks6 ? p.endpoints.flatMap((e) => (e.bridge === b.name && e.ip6 !== undefined ? [{ dst: `${e.ip6}/128`, dev: b.name, ...gw(b.address6) }] : [])) : []),
    ]), p.v6 === true);
  }

  /** The tables alone (and whether bridged traffic passes them); `trust`: without a look at the kernel. */
  async ensureTables(p: TenantPlan, trust = true): Promise<NftOutcome> {
    // Turned on before the tables, so a policy never applies to a namespace that bypasses it; off after
    // them, so the guard's chain for bridged flow records is there before the inet table stops seeing them.
    const f = bridgeFiltering(p);
    await this.ensureBridgeFlags(p.ns, f.bridges, 1);
    if (f.namespace) await this.ensureBridgeFiltering(p.ns, 1);
    const [, nft] = await this.nft.ensureAll(p.ns, [renderGuardTable(p), renderTenantTable(p)], true, { trust }) as [NftOutcome, NftOutcome];
    if (!f.namespace) await this.ensureBridgeFiltering(p.ns, 0);
    await this.ensureBridgeFlags(p.ns, f.bridges, 0);
    await this.ensureContainerTables(p, !trust);
    return nft;
  }

  /** Per namespace, each bridge's own nf_call_iptables as last seen or set (bridgeFiltering). */
  private readonly bridgeFlags = new Map<string, Map<string, 0 | 1>>();

  /** Sets the bridges whose flag should be `value` (and is not known to be) to it. */
  private async ensureBridgeFlags(ns: string, want: ReadonlyMap<string, 0 | 1>, value: 0 | 1): Promise<void> {
    const known = this.bridgeFlags.get(ns) ?? new Map<string, 0 | 1>();
    const todo = [...want].filter(([b, v]) => v === value && known.get(b) !== v).map(([b]) => b);
    if (todo.length === 0) return;
    try {
      await ipBatch(this.runner, ns, todo.map((b) => `link set ${b} type bridge nf_call_iptables ${value} nf_call_ip6tables ${value}`));
      for (const b of todo) known.set(b, value);
      this.bridgeFlags.set(ns, known);
    } catch (e) {
      // A bridge not there (yet, or deleted by someone): the full pass makes it with its flag. The tables
      // are written all the same.
      process.emitWarning(`weft: bridge filtering flags in ${ns} not set: ${(e as Error).message}`);
      this.bridgeFlags.delete(ns);
    }
  }

  /** Per macvlan endpoint (`ns|netns|id`), the tables' text last loaded into its container. */
  private readonly containerTables = new Map<string, string>();

  /**
   * Each macvlan endpoint's container holds the tenant's policy and its interface's guard
   * (nft.ts containerTablesText): loaded when their text changed, and on a full check (`all`) whatever was
   * loaded, since nothing watches a container's tables. One container that cannot take them (gone, its
   * interface not made yet, refused) does not stop the others: it is tried again at the next pass.
   */
  private async ensureContainerTables(p: TenantPlan, all: boolean): Promise<void> {
    const prefix = `${p.ns}|`;
    const want = new Set<string>();
    const texts = containerTablesTexts(p, p.macvlans);
    for (const [i, mv] of p.macvlans.entries()) {
      const key = `${prefix}${mv.netns}|${mv.id}`;
      want.add(key);
      const text = texts[i] as string;
      if (!all && this.containerTables.get(key) === text) continue;
      this.containerTables.delete(key);
      if (!existsSync(mv.netns)) continue;
      try {
        refuseHostNamespace(mv.netns, p.ns);
        await loadContainerTable(this.runner, mv.netns, text, `${p.ns}c${process.pid}-${this.seq++}`);
        this.containerTables.set(key, text);
      } catch (e) {
        process.emitWarning(`weft: the tables of macvlan endpoint ${mv.id} in ${mv.netns} were not loaded: ${(e as Error).message}`);
      }
    }
    for (const key of this.containerTables.keys()) if (key.startsWith(prefix) && !want.has(key)) this.containerTables.delete(key);
  }

  private seq = 0;

  /** Per namespace, the veths shaped as of the last check (absent: not checked since the agent started). */
  private readonly shaped = new Map<string, Set<string>>();

  /** Shapes endpoints as planned (only those whose veth exists); unshapes `shapedVeths` not in the plan. */
  async ensureQos(ns: string, plans: readonly QosPlan[], present: ReadonlySet<string>, shapedVeths: readonly string[] = []): Promise<void> {
    if (plans.length === 0 && shapedVeths.length === 0) return;
    const cmds = qosCommands(plans, await observeQos(this.runner, ns), present, shapedVeths);
    await ipBatch(this.runner, ns, cmds.ip);
    await tcBatch(this.runner, ns, cmds.tc);
    const set = this.shaped.get(ns) ?? new Set<string>();
    for (const q of plans) if (present.has(q.veth)) set.add(q.veth);
    this.shaped.set(ns, set);
  }

  /** Namespaces known to forward IPv6 (a tenant with a dual-stack network). */
  private readonly forwarding6 = new Set<string>();

  /**
   * A dual-stack tenant's namespace routes IPv6 between its networks and takes no router advertisement
   * (its routes are Weft's). Its IPv6 default route is its uplink (ensureUplink6), NATed by the host.
   */
  private async ensureForwarding6(ns: string): Promise<void> {
    if (this.forwarding6.has(ns)) return;
    // A host without IPv6 (ipv6.disable=1) keeps its tenants' IPv4 working; their IPv6 cannot work there.
    if (!existsSync('/proc/sys/net/ipv6')) {
      process.emitWarning(`weft: this host has no IPv6 (booted with ipv6.disable=1?): the dual-stack networks of ${ns} carry IPv4 only here`);
      return;
    }
    await this.runner.run(inNs(ns, ['sysctl', '-q', '-w', 'net.ipv6.conf.all.accept_ra=0', 'net.ipv6.conf.default.accept_ra=0', 'net.ipv6.conf.all.forwarding=1', 'net.ipv6.conf.default.forwarding=1']));
    this.forwarding6.add(ns);
  }

  async ensureNamespace(ns: string): Promise<boolean> {
    if (existsSync(`${NETNS_DIR}/${ns}`)) return false;
    this.brNf.delete(ns);
    this.forwarding6.delete(ns);
    // Deleted by someone else: a commit helper still held from before sits in the old namespace, and its
    // commits would land there. It goes, with what was applied there, before the new one is made.
    await this.nft.release(ns);
    this.nft.forget(ns);
    await this.runner.run(['ip', 'netns', 'add', ns]);
    await ipBatch(this.runner, ns, ['link set lo up']);
    // No ICMP redirects: a service connection is DNATed back out of the bridge it came in on, and a
    // redirect would tell the client to bypass the VIP.
    await this.runner.run(inNs(ns, ['sysctl', '-q', '-w', 'net.ipv4.ip_forward=1', 'net.ipv4.conf.all.send_redirects=0', 'net.ipv4.conf.default.send_redirects=0']));
    return true;
  }

  /** The veth between host and tenant namespace, created with each end directly in its namespace. */
  private async ensureUplink(p: TenantPlan): Promise<void> {
    const u = p.uplink;
    await this.runner.run(['ip', 'link', 'del', u.hostLink], { allowFailure: true });
    await this.runner.run(['ip', 'link', 'add', u.hostLink, 'type', 'veth', 'peer', 'name', u.tenantLink, 'netns', p.ns]);
    await ipBatch(this.runner, undefined, [`addr replace ${u.hostIp}/${u.prefix} dev ${u.hostLink}`, `link set ${u.hostLink} up`]);
    await ipBatch(this.runner, p.ns, [
      `addr replace ${u.tenantIp}/${u.prefix} dev ${u.tenantLink}`, `link set ${u.tenantLink} up`,
      `route replace default via ${u.hostIp} dev ${u.tenantLink}`,
    ]);
    await this.ensureUplink6(p);
  }

  /**
   * A tenant with IPv6: the uplink's /126 on both ends (no DAD: the addresses are Weft's, each on one
   * link) and the namespace's IPv6 default route through the host (NAT66 out, published ports in).
   */
  private async ensureUplink6(p: TenantPlan): Promise<void> {
    const u = p.uplink;
    if (u.hostIp6 === undefined || u.tenantIp6 === undefined || !existsSync('/proc/sys/net/ipv6')) return;
    try {
      // A veth made while the host's default is disable_ipv6=1 starts with IPv6 off, and would refuse the address.
      await this.runner.run(['sysctl', '-q', '-w', `net.ipv6.conf.${u.hostLink}.disable_ipv6=0`]);
      await this.runner.run(inNs(p.ns, ['sysctl', '-q', '-w', `net.ipv6.conf.${u.tenantLink}.disable_ipv6=0`]));
      await ipBatch(this.runner, undefined, [`addr replace ${u.hostIp6}/${UPLINK6_PREFIX} dev ${u.hostLink} nodad`]);
      await ipBatch(this.runner, p.ns, [
        `addr replace ${u.tenantIp6}/${UPLINK6_PREFIX} dev ${u.tenantLink} nodad`,
        `route replace ::/0 via ${u.hostIp6} dev ${u.tenantLink}`,
      ]);
      this.uplink6Warned.delete(p.ns);
    } catch (e) {
      // The tenant's IPv4 and its IPv6 inside the tenant work without it: warned once, tried again next pass.
      if (!this.uplink6Warned.has(p.ns)) process.emitWarning(`weft: ${p.ns}: no IPv6 uplink (${(e as Error).message.split('\n')[0]}): its containers reach no IPv6 outside the tenant`);
      this.uplink6Warned.add(p.ns);
    }
  }

  /** Namespaces whose IPv6 uplink failed and was warned about (once until it works). */
  private readonly uplink6Warned = new Set<string>();

  /** Removes a tenant's namespace and host uplink (the tenant is gone from the desired state). */
  async remove(ns: string, hostLink: string): Promise<void> {
    await this.runner.run(['ip', 'link', 'del', hostLink], { allowFailure: true });
    // The commit helper's socket would keep the deleted namespace, and every device in it, alive.
    await this.nft.release(ns);
    if (existsSync(`${NETNS_DIR}/${ns}`)) await this.runner.run(['ip', 'netns', 'del', ns]);
    this.nft.forget(ns);
    this.observed.delete(ns);
    this.brNf.delete(ns);
    this.forwarding6.delete(ns);
    this.shaped.delete(ns);
    this.proxied.delete(ns);
    this.bridgeFlags.delete(ns);
  }
}

/** The global IPv6 addresses the tenant end of the uplink should hold. */
const uplink6 = (p: TenantPlan): string[] => (p.uplink.tenantIp6 !== undefined && existsSync('/proc/sys/net/ipv6') ? [`${p.uplink.tenantIp6}/${UPLINK6_PREFIX}`] : []);
const sameSet = (a: readonly string[], b: readonly string[]) => a.length === b.length && a.every((x) => b.includes(x));

/**
 * Which bridges pass their bridged frames to IP netfilter (bridge-nf-call-iptables): while the tenant
 * filters (bridgedThroughNetfilter), all of them, by the namespace's sysctl; but a routed network's bridge
 * never does (its ports are isolated: nothing is bridged there, everything is routed through the policy,
 * and br_netfilter cost its traffic 6-8 % for nothing), so a tenant with routed networks turns the
 * namespace's sysctl off and each other bridge's own flag on instead.
 */
export function bridgeFiltering(p: Pick<TenantPlan, 'policy' | 'services' | 'dscp' | 'bridges'>): { namespace: boolean; bridges: Map<string, 0 | 1> } {
  const want = bridgedThroughNetfilter(p) ? 1 : 0;
  const routed = p.bridges.some((b) => b.routed);
  return { namespace: want === 1 && !routed, bridges: new Map(p.bridges.map((b) => [b.name, routed && !b.routed ? want : 0])) };
}

/** The `ip -batch` lines that bring observed links to the plan; empty when all is right. */
export function linkCommands(p: TenantPlan, links: ReadonlyMap<string, ObservedLink>, protect: Protected = new Set()): string[] {
  const out: string[] = [];
  const wantBridges = new Set(p.bridges.map((b) => b.name));
  const wantVeths = new Set(p.endpoints.map((e) => e.veth));
  const wantIfbs = new Set(p.qos.map((q) => q.ifb));
  // A bridge is made with its filtering flag, and the flag is mended with the links: a bridge made again
  // is never open, not even until the tables' pass (bridgeFiltering).
  const flags = bridgeFiltering(p).bridges;
  for (const b of p.bridges) {
    const l = links.get(b.name);
    const nf = flags.get(b.name) ?? 0;
    if (!l) out.push(`link add ${b.name} address ${b.mac} type bridge nf_call_iptables ${nf} nf_call_ip6tables ${nf}`);
    // A bridge made before its MAC was fixed: set once (its old one, a port's, still reaches it while that port stays).
    else if (l.mac !== undefined && l.mac !== b.mac) out.push(`link set ${b.name} address ${b.mac}`);
    if (l && ((l.nfCallIptables ? 1 : 0) !== nf || (l.nfCallIp6tables ? 1 : 0) !== nf)) out.push(`link set ${b.name} type bridge nf_call_iptables ${nf} nf_call_ip6tables ${nf}`);
    if (!l || l.mtu !== b.mtu) out.push(`link set ${b.name} mtu ${b.mtu}`);
    if (b.address !== undefined && !l?.addresses.includes(b.address)) out.push(`addr replace ${b.address} dev ${b.name}`);
    // The same gateway6 on every host's bridge: no duplicate address detection (it would find the others').
    if (b.address6 !== undefined && !l?.addresses6.includes(b.address6)) out.push(`addr replace ${b.address6} dev ${b.name} nodad`);
    const vips6 = (b.vips6 ?? []).map((v) => `${v}/128`);
    // Deprecated at once (preferred_lft 0): still answered, never chosen as the router's own source (a
    // /128 in the subnet would win over gateway6 for hairpin masquerade and ICMPv6 errors).
    for (const v of vips6) if (!l?.addresses6.includes(v)) out.push(`addr replace ${v} dev ${b.name} nodad preferred_lft 0`);
    for (const a of l?.addresses6 ?? []) if (a !== b.address6 && !vips6.includes(a)) out.push(`addr del ${a} dev ${b.name}`);
    for (const vip of b.vips) if (!l || !l.addresses.includes(`${vip}/32`)) out.push(`addr replace ${vip}/32 dev ${b.name}`);
    for (const a of l?.addresses ?? []) {
      if (a !== b.address && a.endsWith('/32') && !b.vips.includes(a.slice(0, -3))) out.push(`addr del ${a} dev ${b.name}`);
    }
    if (!l || !l.up) out.push(`link set ${b.name} up`);
  }
  const routedBridges = new Set(p.bridges.filter((b) => b.routed).map((b) => b.name));
  for (const e of p.endpoints) {
    const l = links.get(e.veth);
    if (l && (l.master !== e.bridge || !l.up)) out.push(`link set ${e.veth} master ${e.bridge} up`);
    if (l && (l.hairpin ?? false) !== e.hairpin) out.push(`link set ${e.veth} type bridge_slave hairpin ${e.hairpin ? 'on' : 'off'}`);
    // Also when the port was just (re)made by `master` above: a new port starts open.
    if (l && routedBridges.has(e.bridge) && (l.isolated !== true || l.master !== e.bridge)) out.push(`link set ${e.veth} type bridge_slave isolated on`);
  }
  const wantOverlays = new Set<string>();
  for (const b of p.bridges) {
    if (!b.overlay) continue;
    wantOverlays.add(b.overlay.name);
    const l = links.get(b.overlay.name);
    if (l && (l.master !== b.name || !l.up || l.mtu !== b.mtu)) out.push(`link set ${b.overlay.name} master ${b.name} mtu ${b.mtu} up`);
  }
  const overlayKinds = new Set(Object.values(LINUX_ENCAPS).map((e) => e.kind));
  for (const l of links.values()) {
    if (l.kind === 'bridge' && l.name.startsWith('wb') && !wantBridges.has(l.name)) out.push(`link del ${l.name}`);
    if (l.kind === 'veth' && l.name.startsWith('we') && !wantVeths.has(l.name) && !protect.has(l.name)) out.push(`link del ${l.name}`);
    if (overlayKinds.has(l.kind) && l.name.startsWith('wx') && !wantOverlays.has(l.name)) out.push(`link del ${l.name}`);
    // An IFB the plan does not want goes, unless its endpoint is not in the plan and protected (being
    // wired, or recorded since the plan was made): a planned endpoint's IFB goes with its shaping.
    const owner = `we${l.name.slice(2)}`;
    if (l.kind === 'ifb' && l.name.startsWith('wi') && !wantIfbs.has(l.name) && (wantVeths.has(owner) || !protect.has(owner))) out.push(`link del ${l.name}`);
  }
  return out;
}
