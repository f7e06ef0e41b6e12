import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { ProcessRunner, type RunOptions, type RunResult, type Runner } from '../../exec/index.js';
import type { Endpoint, Network, Tenant } from '../../model/index.js';
import { planTenant, type DesiredHostState } from '../plan.js';
import { TenantDatapath } from './tenant.js';
import { observeLinks } from './observe.js';
import { ensureRoutes } from './routes.js';
import { ROUTE_PROTO } from '../routed.js';
import { NftTables } from './nft.js';
import { renderHostTable } from '../host-nft.js';
import { attachEndpoint, detachEndpoint, checkEndpoint } from './endpoint.js';

/** Records argv while really running it, so tests can assert what a second pass did (nothing). */
class RecordingRunner implements Runner {
  readonly calls: string[] = [];
  private readonly real = new ProcessRunner();
  run(argv: readonly string[], opts?: RunOptions): Promise<RunResult> {
    this.calls.push(argv.join(' ') + (opts?.input ? ` <<< ${opts.input.trim().replace(/\n/g, '; ')}` : ''));
    return this.real.run(argv, opts);
  }
}

const real = new ProcessRunner();
const tag = `x${process.pid % 10000}`;
// High tenant ids keep this test's host-side uplinks (wu<id>) apart from any agent on this machine.
const ids = [9000 + (process.pid % 500), 9600 + (process.pid % 300), 9910 + (process.pid % 80)];
const created: string[] = [];
const ns = (n: string) => `${tag}-${n}`;

after(async () => {
  for (const n of created) await real.run(['ip', 'netns', 'del', n], { allowFailure: true });
  for (const id of ids) await real.run(['ip', 'link', 'del', `wu${id}`], { allowFailure: true });
});

const meta = { revision: 1, createdAt: '', updatedAt: '' };
/** Each endpoint's own MAC (the bridge table drops frames from a port that carry another). */
const macOf = (ip: string) => `02:57:${ip.split('.').map((o) => Number(o).toString(16).padStart(2, '0')).join(':')}`;
const tenants: Tenant[] = [{ ...meta, name: 'red', id: ids[0]!, defaultAction: 'allow' }, { ...meta, name: 'green', id: ids[1]!, defaultAction: 'allow' }];
const net = (t: string, name: string, subnet: string, gateway: string, vni: number): Network => ({ ...meta, tenant: t, name, subnet, gateway, encap: 'vxlan', vni, mtu: 1450 });
const ep = (id: string, t: string, network: string, ip: string): Endpoint => ({
  ...meta, id, tenant: t, network, ip, prefixLength: 24, gateway: '', mac: macOf(ip), mtu: 1450, vni: 0, host: 'h', ifname: 'eth0', containerId: id, labels: {}, state: 'created',
});
const desired: DesiredHostState = {
  host: 'h', nsPrefix: `${tag}-`, tenants,
  networks: [net('red', 'a-net', '10.91.1.0/24', '10.91.1.1', 50001), net('red', 'b-net', '10.91.2.0/24', '10.91.2.1', 50002), net('green', 'a-net', '10.91.1.0/24', '10.91.1.1', 50003)],
  endpoints: [ep('1111111111111111', 'red', 'a-net', '10.91.1.2'), ep('2222222222222222', 'red', 'b-net', '10.91.2.2'), ep('3333333333333333', 'green', 'a-net', '10.91.1.3')],
};

async function container(name: string): Promise<string> {
  await real.run(['ip', 'netns', 'add', ns(name)]);
  created.push(ns(name));
  await real.run(['ip', '-n', ns(name), 'link', 'set', 'lo', 'up']);
  return `/run/netns/${ns(name)}`;
}
const ping = async (from: string, ip: string) => (await real.run(['ip', 'netns', 'exec', ns(from), 'ping', '-c', '1', '-W', '1', ip], { allowFailure: true })).code === 0;

test('tenant datapath: routed networks, isolated tenants, idempotent, repairs drift', { skip: process.getuid?.() !== 0 && 'needs root' }, async () => {
  const rec = new RecordingRunner();
  const dp = new TenantDatapath(rec, new NftTables(rec));
  const plans = tenants.map((t) => planTenant(desired, t));
  for (const p of plans) {
    created.push(p.ns);
    await dp.ensure(p);
  }
  const red = plans[0]!;
  const green = plans[1]!;
  const attach = async (c: string, p: typeof red, i: number, ip: string, gw: string) => attachEndpoint(real, {
    tenantNs: p.ns, bridge: p.endpoints[i]!.bridge, veth: p.endpoints[i]!.veth, netnsPath: await container(c),
    ifname: 'eth0', mac: p.endpoints[i]!.mac, ip, prefixLength: 24, gateway: gw, mtu: 1450, hairpin: false, defaultRoute: true,
  }, `${tag}-alias`);
  await attach('c1', red, 0, '10.91.1.2', '10.91.1.1');
  await attach('c2', red, 1, '10.91.2.2', '10.91.2.1');
  await attach('c3', green, 0, '10.91.1.3', '10.91.1.1');

  assert.ok(await ping('c1', '10.91.2.2'), 'two networks of one tenant route to each other');
  assert.ok(await ping('c3', '10.91.1.1'), 'green reaches its own gateway');
  assert.ok(!(await ping('c3', '10.91.1.2')), 'green cannot reach red, though the subnets are the same');
  assert.equal(await checkEndpoint(real, { netnsPath: `/run/netns/${ns('c1')}`, ifname: 'eth0', ip: '10.91.1.2', prefixLength: 24 }, `${tag}-alias`), undefined);

  rec.calls.length = 0;
  await dp.ensure(red);
  assert.ok(!rec.calls.some((c) => c.includes('-batch') || c.includes('nft -f')), `a second pass changes nothing:\n${rec.calls.join('\n')}`);

  await real.run(['ip', '-n', red.ns, 'link', 'del', 'wb50002']);
  await real.run(['ip', 'netns', 'exec', red.ns, 'nft', 'flush', 'table', 'inet', 'weft']);
  assert.ok(!(await ping('c1', '10.91.2.2')));
  await dp.ensure(red);
  assert.ok(await ping('c1', '10.91.2.2'), 'the deleted bridge is back and the veth re-attached');
  const table = await real.run(['ip', 'netns', 'exec', red.ns, 'nft', 'list', 'table', 'inet', 'weft']);
  assert.match(table.stdout, /masquerade/, 'the flushed table is restored');

  await detachEndpoint(real, red.ns, red.endpoints[0]!.veth);
  const gone = await real.run(['ip', '-n', ns('c1'), 'link', 'show', 'eth0'], { allowFailure: true });
  assert.notEqual(gone.code, 0, 'deleting the host end removes the container end');
  await detachEndpoint(real, red.ns, red.endpoints[0]!.veth);
  await dp.remove(red.ns, red.uplink.hostLink);
  await dp.remove(green.ns, green.uplink.hostLink);
  assert.notEqual((await real.run(['ip', 'link', 'show', red.uplink.hostLink], { allowFailure: true })).code, 0);
});

/** Runs `first` (as another writer would) just before the first batch in `ns` whose input holds `marker`. */
class AnotherWriter implements Runner {
  made = false;
  constructor(private readonly ns: string, private readonly marker: string, private readonly first: readonly string[]) {}
  async run(argv: readonly string[], opts?: RunOptions): Promise<RunResult> {
    if (!this.made && argv.includes(this.ns) && argv.includes('-batch') && opts?.input?.includes(this.marker)) {
      this.made = true;
      await real.run(this.first);
    }
    return real.run(argv, opts);
  }
}

test('a bridge made by another writer between the look at the links and the batch fails nothing: looked at again, converged to the plan', { skip: process.getuid?.() !== 0 && 'needs root' }, async () => {
  const blue: Tenant = { ...meta, name: 'blue', id: ids[2]!, defaultAction: 'allow' };
  const plan = planTenant({ ...desired, tenants: [blue], networks: [net('blue', 'a-net', '10.91.7.0/24', '10.91.7.1', 50007)], endpoints: [] }, blue);
  created.push(plan.ns);
  const bridge = plan.bridges[0]!;
  const writer = new AnotherWriter(plan.ns, `link add ${bridge.name} `, ['ip', '-n', plan.ns, 'link', 'add', bridge.name, 'type', 'bridge', 'nf_call_iptables', '1']);
  await new TenantDatapath(writer, new NftTables(real)).ensure(plan);
  assert.ok(writer.made, 'the other writer made the bridge first');
  const l = (await observeLinks(real, plan.ns)).get(bridge.name);
  assert.deepEqual({ mac: l?.mac, mtu: l?.mtu, up: l?.up, address: l?.addresses.includes(bridge.address!), nf: l?.nfCallIptables },
    { mac: bridge.mac, mtu: bridge.mtu, up: true, address: true, nf: false }, 'the bridge as planned (its own filtering flag too: nothing routed here)');
});

test('a route of ours made by someone else between the look at the routes and the batch fails nothing (an ADD\'s own /128, say)', { skip: process.getuid?.() !== 0 && 'needs root' }, async () => {
  const n = ns('rt');
  await real.run(['ip', 'netns', 'add', n]);
  created.push(n);
  await real.run(['ip', '-n', n, '-batch', '-'], { input: 'link add d0 type bridge\nlink set d0 up\naddr add 10.92.0.1/32 dev d0\n' });
  const want = [{ dst: '10.92.0.0/26', dev: 'd0', src: '10.92.0.1' }, { dst: '10.92.1.0/26', dev: 'd0' }];
  const writer = new AnotherWriter(n, 'route add 10.92.0.0/26 ', ['ip', '-n', n, 'route', 'add', '10.92.0.0/26', 'dev', 'd0', 'proto', String(ROUTE_PROTO), 'scope', 'link', 'src', '10.92.0.1']);
  await ensureRoutes(writer, n, want);
  assert.ok(writer.made, 'the other writer made the route first');
  const listed = JSON.parse((await real.run(['ip', '-n', n, '-j', 'route', 'show', 'proto', String(ROUTE_PROTO)])).stdout) as Array<{ dst: string }>;
  assert.deepEqual(listed.map((r) => r.dst).sort(), ['10.92.0.0/26', '10.92.1.0/26'], 'both routes, once each');
});

test('the host table takes over from the NAT-only table of earlier agents in one transaction', { skip: process.getuid?.() !== 0 && 'needs root' }, async () => {
  const host = ns('host');
  await real.run(['ip', 'netns', 'add', host]);
  created.push(host);
  const old = 'table ip weft {\n\tchain postrouting {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n\t}\n}\n';
  await real.run(['ip', 'netns', 'exec', host, 'nft', '-f', '-'], { input: old });
  const rec = new RecordingRunner();
  assert.equal(await new NftTables(rec).ensure(host, renderHostTable([], ['192.0.2.2'])), 'replace');
  assert.equal(rec.calls.filter((c) => c.includes('nft -f')).length, 1, 'one nft transaction');
  const tables = (await real.run(['ip', 'netns', 'exec', host, 'nft', 'list', 'tables'])).stdout.trim();
  assert.equal(tables, 'table inet weft', 'the old ip table is gone, the inet one is there');
});


test('the host table: a published port\'s element deleted by hand is put back by the next check; an unchanged table is left alone, also after a port is added', { skip: process.getuid?.() !== 0 && 'needs root' }, async () => {
  const host = ns('host-pub');
  await real.run(['ip', 'netns', 'add', host]);
  created.push(host);
  const withPorts = (ports: number[]) => {
    const d: DesiredHostState = { ...desired, endpoints: [{ ...desired.endpoints[0]!, portMappings: ports.map((p) => ({ hostPort: p, containerPort: 80, protocol: 'tcp' as const })) }] };
    return renderHostTable(tenants.map((t) => planTenant(d, t)), ['192.0.2.2']);
  };
  const nft = new NftTables(new RecordingRunner());
  // Not owned (the host's): checked by listing, as the agent checks the host table.
  const ensure = (t: ReturnType<typeof withPorts>) => nft.ensure(host, t, { view: 'touched', owned: false });
  const elements = async () => (await real.run(['ip', 'netns', 'exec', host, 'nft', 'list', 'map', 'inet', 'weft', 'published'])).stdout.match(/tcp \. \d+/g);
  assert.equal(await ensure(withPorts([8080, 8081])), 'replace');
  assert.deepEqual(await elements(), ['tcp . 8080', 'tcp . 8081']);
  assert.equal(await ensure(withPorts([8080, 8081])), 'unchanged');
  await real.run(['ip', 'netns', 'exec', host, 'nft', 'delete', 'element', 'inet', 'weft', 'published', '{ tcp . 8081 }']);
  assert.deepEqual(await elements(), ['tcp . 8080']);
  assert.equal(await ensure(withPorts([8080, 8081])), 'replace');
  assert.deepEqual(await elements(), ['tcp . 8080', 'tcp . 8081'], 'the deleted element is back');
  assert.equal(await ensure(withPorts([8080, 8081, 8082])), 'delta');
  assert.equal(await ensure(withPorts([8080, 8081, 8082])), 'unchanged', 'the listing was read again after the delta: no needless replace');
  assert.deepEqual(await elements(), ['tcp . 8080', 'tcp . 8081', 'tcp . 8082']);
});

test('the host table: an element added or deleted by anyone else in any of its sets (a peer, a VNI in clear, a DNS listener) is undone by the next check, with one listing', { skip: process.getuid?.() !== 0 && 'needs root' }, async () => {
  const host = ns('host-sets');
  await real.run(['ip', 'netns', 'add', host]);
  created.push(host);
  const d: DesiredHostState = { ...desired, dnsPort: 53 };
  const table = renderHostTable(tenants.map((t) => planTenant(d, t)), ['192.0.2.2'], { device: 'wgx', clearVnis: [50003] });
  const runner = new RecordingRunner();
  const nft = new NftTables(runner);
  // Not owned (the host's): checked by listing, as the agent checks the host table.
  const ensure = () => nft.ensure(host, table, { view: 'touched', owned: false });
  const inNs = (...argv: string[]) => real.run(['ip', 'netns', 'exec', host, 'nft', ...argv]);
  const list = async (set: string) => (await inNs('list', 'set', 'inet', 'weft', set)).stdout;
  assert.equal(await ensure(), 'replace');
  assert.equal(await ensure(), 'unchanged');
  const before = runner.calls.length;
  assert.equal(await ensure(), 'unchanged');
  assert.deepEqual(runner.calls.slice(before).map((c) => c.replace(/^.*? nft /, 'nft ')), ['nft list table inet weft'], 'one listing, elements and all');

  // A peer nobody registered: its VXLAN would be let in.
  await inNs('add', 'element', 'inet', 'weft', 'peers', '{ 198.51.100.9 }');
  assert.match(await list('peers'), /198\.51\.100\.9/);
  assert.equal(await ensure(), 'replace');
  assert.doesNotMatch(await list('peers'), /198\.51\.100\.9/, 'the foreign peer is gone');
  assert.match(await list('peers'), /192\.0\.2\.2/);

  // A VNI let through in clear while the cluster encrypts.
  await inNs('add', 'element', 'inet', 'weft', 'clear_vnis', '{ 50001 }');
  assert.match(await list('clear_vnis'), /0xc351/);
  assert.equal(await ensure(), 'replace');
  // nft lists a raw-payload set's elements in hex: 50001 is 0xc351, 50003 0xc353.
  assert.doesNotMatch(await list('clear_vnis'), /0xc351/, 'the VNI is encrypted-only again');
  assert.match(await list('clear_vnis'), /0xc353/);

  // A tenant's DNS listener taken away.
  const dns = await list('dns');
  const one = /"(wu\d+)" \. ([\d.]+) \. udp \. 53/.exec(dns);
  assert.ok(one, dns);
  const [, link = '', addr = ''] = one;
  await inNs('delete', 'element', 'inet', 'weft', 'dns', `{ "${link}" . ${addr} . udp . 53 }`);
  assert.ok(!(await list('dns')).includes(`"${link}" . ${addr} . udp`), 'the listener is gone');
  assert.equal(await ensure(), 'replace');
  assert.equal(await list('dns'), dns, 'the listener is back');
  assert.equal(await ensure(), 'unchanged');
});
