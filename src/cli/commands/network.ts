import { usage } from '../errors.js';
import type { Command } from 'commander';
import { act, boolArg, collect, inspectAndRm, done, intArg, leaf, listScoped, tenantPath, type Io } from '../kit.js';
import { ENCAPS } from '../../model/plain.js';

export function networkCommands(program: Command, io: Io): void {
  const n = program.command('net').alias('network').description('networks: IPv4, dual-stack or IPv6-only subnets of a tenant, spanning hosts over VXLAN');
  leaf(n, {
    name: 'create <name>', summary: 'create a network',
    example: ['weft net create -s 10.1.2.0/24 -g 10.1.2.1 contiv-net', 'weft net create -t blue -s 10.1.2.0/24 contiv-net', 'weft net create --encrypt=false -s 10.9.0.0/16 bulk',
      'weft net create -s 192.168.50.0/24 -g 192.168.50.1 --encap macvlan --parent eth1 lan',
      'weft net create -s 10.20.0.0/16 --encap routed --bgp-peer 192.168.50.1 --bgp-as 64512 routed-net',
      'weft net create -s 10.30.0.0/20 --encap routed --block-size 27 flat-routed   # no BGP: hosts on one segment route to each other',
      'weft net create -s 10.1.4.0/24 --subnet6 fd00:1:4::/64 dual   # dual stack: every endpoint gets one address of each family',
      'weft net create --subnet6 fd00:1:5::/64 v6net   # IPv6 only: endpoints get an IPv6 address alone',
      'weft net create -s 10.40.0.0/16 --subnet6 fd00:40::/64 --encap routed --bgp-peer 192.168.50.1 --bgp-as 64512 routed6   # routed dual stack: IPv6 blocks pair with the IPv4 ones',
      'weft net create --subnet6 fd00:50::/64 --gateway6 fd00:50::1 --ip-range6 fd00:50::100-fd00:50::1ff --encap macvlan --parent eth1 lan6   # IPv6 only on a segment: Weft hands out the range'],
  })
    .option('-s, --subnet <cidr>', 'IPv4 subnet, e.g. 10.1.2.0/24 (give --subnet, --subnet6 or both)')
    .option('-g, --gateway <ip>', 'gateway address (default: the first address)')
    .option('-r, --ip-range <range>', 'sub-range for dynamic addresses, a.b.c.d-e.f.g.h')
    .option('--subnet6 <cidr>', 'an IPv6 subnet, /16 to /120, e.g. fd00:1:2::/64: beside --subnet (dual stack; any encap) or alone (IPv6 only; encap vxlan or macvlan); fixed at creation')
    .option('--gateway6 <ip>', "the IPv6 gateway address (default: the subnet's ::1; on macvlan the segment's router)")
    .option('--ip-range6 <range>', 'sub-range of --subnet6 for dynamic addresses, fd00::10-fd00::ffff (required with encap macvlan: the share of the segment Weft may use)')
    .option('-e, --encap <encap>', `encapsulation between hosts: ${Object.keys(ENCAPS).join(', ')} (default vxlan); macvlan: endpoints sit on the hosts' --parent interface's segment, the gateway its router; routed: no encapsulation, each host routes its own address blocks (announced by BGP to --bgp-peer, or straight between hosts on one segment)`)
    .option('--parent <ifname>', 'encap macvlan: the host interface (the same name on every host) the endpoints are children of')
    .option('--block-size <prefix>', 'encap routed: prefix length of the address blocks each host holds (default 26: 64 addresses); fixed at creation', intArg('--block-size', 8, 30))
    .option('--bgp-peer <ip>', 'encap routed: a BGP router (top-of-rack or route reflector) every host announces its blocks to; repeat for more', collect)
    .option('--bgp-as <asn>', "encap routed: the BGP routers' AS number (required with --bgp-peer)", intArg('--bgp-as', 1, 4294967295))
    .option('--bgp-local-as <asn>', "encap routed: the hosts' AS number (default 64513; must differ from --bgp-as)", intArg('--bgp-local-as', 1, 4294967295))
    .option('-p, --vni <vni>', 'VXLAN id, admins and ops only (default: the next free one in the global range)', intArg('--vni', 1, 16777215))
    .option('--pkt-tag <vni>', 'netctl spelling of --vni', intArg('--pkt-tag', 1, 16777215))
    .option('--encrypt <true|false>', 'false: its traffic between hosts skips WireGuard even when the cluster encrypts (faster, in clear; default true); fixed at creation', boolArg('--encrypt'))
    .option('--mtu <bytes>', 'MTU (default: underlay MTU - 50 for VXLAN - 60 for WireGuard unless --encrypt=false: 1390, or 1450)', intArg('--mtu', 576, 9000))
    .action(act(io, async (ctx, name) => {
      const o = ctx.opts;
      if (o['vni'] !== undefined && o['pktTag'] !== undefined) throw usage('--pkt-tag is --vni spelled as netctl does: give one');
      const vni = o['vni'] ?? o['pktTag'];
      const body = {
        name,
        ...(o['subnet'] ? { subnet: o['subnet'] } : {}),
        ...(o['gateway'] ? { gateway: o['gateway'] } : {}),
        ...(o['ipRange'] ? { ipRange: o['ipRange'] } : {}),
        ...(o['subnet6'] ? { subnet6: o['subnet6'] } : {}),
        ...(o['gateway6'] ? { gateway6: o['gateway6'] } : {}),
        ...(o['ipRange6'] ? { ipRange6: o['ipRange6'] } : {}),
        ...(o['encap'] ? { encap: o['encap'] } : {}),
        ...(o['parent'] ? { parent: o['parent'] } : {}),
        ...(o['blockSize'] !== undefined ? { blockSize: o['blockSize'] } : {}),
        ...(o['bgpPeer'] ? { bgpPeers: o['bgpPeer'] } : {}),
        ...(o['bgpAs'] !== undefined ? { bgpPeerAs: o['bgpAs'] } : {}),
        ...(o['bgpLocalAs'] !== undefined ? { bgpLocalAs: o['bgpLocalAs'] } : {}),
        ...(vni !== undefined ? { vni } : {}),
        ...(o['mtu'] !== undefined ? { mtu: o['mtu'] } : {}),
        ...(o['encrypt'] !== undefined ? { encrypt: o['encrypt'] } : {}),
      };
      const net = await ctx.client.request('POST', tenantPath(ctx, 'networks'), body);
      const how = net.encap === 'macvlan' ? ` macvlan on ${net.parent}`
        : net.encap === 'routed' ? ` routed in blocks of /${net.blockSize}${net.bgpPeers ? ` announced by BGP (AS ${net.bgpLocalAs}) to ${net.bgpPeers.join(', ')} (AS ${net.bgpPeerAs})` : ' between hosts on one segment (no BGP)'}`
          : ` vni ${net.vni}`;
      const six = net.subnet6 ? ` and ${net.subnet6} gateway ${net.gateway6}` : '';
      const four = net.subnet ? `${net.subnet} gateway ${net.gateway}` : 'IPv6 only:';
      done(ctx, net, `network ${ctx.tenant}/${name} created: ${four}${net.subnet ? six : six.replace(/^ and/, '')}${how} mtu ${net.mtu}${net.encrypt === false && net.encap === 'vxlan' ? ' (never encrypted)' : ''}`);
    }));
  leaf(n, { name: 'ls', summary: 'list networks', example: ['weft net ls', 'weft net ls -a'] })
    .option('-a, --all', 'networks of every tenant')
    .action(act(io, async (ctx) => {
      const items = await listScoped<any>(ctx, 'networks', Boolean(ctx.opts['all']));
      ctx.table(items, [
        { header: 'TENANT', get: (x) => x.tenant }, { header: 'NETWORK', get: (x) => x.name }, { header: 'ENCAP', get: (x) => (x.encap === 'macvlan' ? `macvlan:${x.parent}` : x.encap === 'routed' ? `routed/${x.blockSize}${x.bgpPeers ? ':bgp' : ''}` : x.encap) },
        { header: 'VNI', get: (x) => x.vni }, { header: 'SUBNET', get: (x) => both(x.subnet, x.subnet6) }, { header: 'GATEWAY', get: (x) => both(x.gateway, x.gateway6) },
        { header: 'MTU', get: (x) => x.mtu }, { header: 'ENCRYPT', get: (x) => (x.encrypt === false ? 'no' : 'yes') },
      ], (x) => x.name);
    }));
  inspectAndRm(io, n, 'networks', 'network', ' (refused while groups, services or endpoints use it)');
}

/** A dual-stack network's two values in one cell. */
const both = (v4: string | undefined, v6: string | undefined): string => [v4, v6].filter(Boolean).join(',');
