import type { Command } from 'commander';
import { act, boolArg, inspectAndRm, done, intArg, leaf, listScoped, tenantPath, type Io } from '../kit.js';
import { ENCAPS } from '../../model/plain.js';

export function networkCommands(program: Command, io: Io): void {
  const n = program.command('net').alias('network').description('networks: IPv4 subnets of a tenant, spanning hosts over VXLAN');
  leaf(n, {
    name: 'create <name>', summary: 'create a network',
    example: ['weft net create -s 10.1.2.0/24 -g 10.1.2.1 contiv-net', 'weft net create -t blue -s 10.1.2.0/24 contiv-net', 'weft net create --encrypt=false -s 10.9.0.0/16 bulk',
      'weft net create -s 192.168.50.0/24 -g 192.168.50.1 --encap macvlan --parent eth1 lan'],
  })
    .requiredOption('-s, --subnet <cidr>', 'IPv4 subnet, e.g. 10.1.2.0/24')
    .option('-g, --gateway <ip>', 'gateway address (default: the first address)')
    .option('-r, --ip-range <range>', 'sub-range for dynamic addresses, a.b.c.d-e.f.g.h')
    .option('-e, --encap <encap>', `encapsulation between hosts: ${Object.keys(ENCAPS).join(', ')} (default vxlan); macvlan: endpoints sit on the hosts' --parent interface's segment, the gateway its router`)
    .option('--parent <ifname>', 'encap macvlan: the host interface (the same name on every host) the endpoints are children of')
    .option('-p, --vni <vni>', 'VXLAN id (default: next free in the global range)', intArg('--vni', 1, 16777215))
    .option('--pkt-tag <vni>', 'netctl spelling of --vni', intArg('--pkt-tag', 1, 16777215))
    .option('--encrypt <true|false>', 'false: its traffic between hosts skips WireGuard even when the cluster encrypts (faster, in clear; default true); fixed at creation', boolArg('--encrypt'))
    .option('--mtu <bytes>', 'MTU (default: underlay MTU - 50 for VXLAN - 60 for WireGuard unless --encrypt=false: 1390, or 1450)', intArg('--mtu', 576, 9000))
    .action(act(io, async (ctx, name) => {
      const o = ctx.opts;
      const vni = o['vni'] ?? o['pktTag'];
      const body = {
        name, subnet: o['subnet'],
        ...(o['gateway'] ? { gateway: o['gateway'] } : {}),
        ...(o['ipRange'] ? { ipRange: o['ipRange'] } : {}),
        ...(o['encap'] ? { encap: o['encap'] } : {}),
        ...(o['parent'] ? { parent: o['parent'] } : {}),
        ...(vni !== undefined ? { vni } : {}),
        ...(o['mtu'] !== undefined ? { mtu: o['mtu'] } : {}),
        ...(o['encrypt'] !== undefined ? { encrypt: o['encrypt'] } : {}),
      };
      const net = await ctx.client.request('POST', tenantPath(ctx, 'networks'), body);
      const how = net.encap === 'macvlan' ? ` macvlan on ${net.parent}` : ` vni ${net.vni}`;
      done(ctx, net, `network ${ctx.tenant}/${name} created: ${net.subnet} gateway ${net.gateway}${how} mtu ${net.mtu}${net.encrypt === false && net.encap !== 'macvlan' ? ' (never encrypted)' : ''}`);
    }));
  leaf(n, { name: 'ls', summary: 'list networks', example: ['weft net ls', 'weft net ls -a'] })
    .option('-a, --all', 'networks of every tenant')
    .action(act(io, async (ctx) => {
      const items = await listScoped<any>(ctx, 'networks', Boolean(ctx.opts['all']));
      ctx.table(items, [
        { header: 'TENANT', get: (x) => x.tenant }, { header: 'NETWORK', get: (x) => x.name }, { header: 'ENCAP', get: (x) => (x.encap === 'macvlan' ? `macvlan:${x.parent}` : x.encap) },
        { header: 'VNI', get: (x) => x.vni }, { header: 'SUBNET', get: (x) => x.subnet }, { header: 'GATEWAY', get: (x) => x.gateway },
        { header: 'MTU', get: (x) => x.mtu }, { header: 'ENCRYPT', get: (x) => (x.encrypt === false ? 'no' : 'yes') },
      ], (x) => x.name);
    }));
  inspectAndRm(io, n, 'networks', 'network', ' (refused while groups, services or endpoints use it)');
}
