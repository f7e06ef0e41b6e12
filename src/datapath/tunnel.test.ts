import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Endpoint, Host, Network, Tenant } from '../model/index.js';
import { planHostSide, planTenant, type DesiredHostState } from './plan.js';
import { planTunnel, tunnelDevice } from './tunnel.js';
import { parseDump, wgSetArgs } from './linux/wireguard.js';

const meta = { revision: 1, createdAt: '', updatedAt: '' };
const KEY = (c: string) => `${c.repeat(42)}A=`;
const host = (name: string, vtepIp: string, extra: Partial<Host> = {}): Host => ({ ...meta, name, vtepIp, lastSeen: '', ...extra });
const net = (name: string, vni: number, encrypt?: boolean): Network => ({
  ...meta, tenant: 'acme', name, subnet: `10.${vni % 250}.0.0/24`, gateway: `10.${vni % 250}.0.1`, encap: 'vxlan', vni, mtu: 1390, ...(encrypt === undefined ? {} : { encrypt }),
});
const ep = (id: string, network: string, vni: number, h: string, ip: string): Endpoint => ({
  ...meta, id, tenant: 'acme', network, group: '', containerId: id, host: h, ifname: 'eth0', ip, prefixLength: 24, gateway: '', mac: `02:00:00:00:00:${id.slice(-2)}`,
  mtu: 1390, vni, labels: {}, state: 'active',
} as Endpoint);
const tenant: Tenant = { ...meta, name: 'acme', id: 1, defaultAction: 'allow' };
const hosts = [
  host('node1', '192.0.2.1', { tunnelIp: '100.64.0.1', wgPublicKey: KEY('a') }),
  host('node2', '192.0.2.2', { tunnelIp: '100.64.0.2', wgPublicKey: KEY('b') }),
  // Registered before it had a key (an old agent): no peer, so encrypted networks never reach it in clear.
  host('node3', '192.0.2.3', { tunnelIp: '100.64.0.3' }),
];
const desired: DesiredHostState = {
  host: 'node1', nsPrefix: 'weft-', vtep: '192.0.2.1', hosts, encryption: 'wireguard', tunnelRange: '100.64.0.0/16', underlayMtu: 1500,
  tenants: [tenant], networks: [net('secret', 10001), net('bulk', 10002, false)],
  endpoints: [ep('e000000000000001', 'secret', 10001, 'node2', '10.11.0.2'), ep('e000000000000002', 'secret', 10001, 'node3', '10.11.0.3'),
    ep('e000000000000003', 'bulk', 10002, 'node2', '10.12.0.2'), ep('e000000000000004', 'bulk', 10002, 'node3', '10.12.0.3')],
};

test('the tunnel: this host addressed from the range, a peer per other host with a key and an address', () => {
  assert.deepEqual(planTunnel(desired), {
    device: 'weft-wg', address: '100.64.0.1', prefix: 16, port: 51820, mtu: 1440,
    peers: [{ host: 'node2', publicKey: KEY('b'), endpoint: '192.0.2.2:51820', allowedIp: '100.64.0.2' }],
  });
  assert.equal(planTunnel({ ...desired, encryption: 'none' }), undefined, 'encryption off: no tunnel');
  assert.equal(planTunnel({ ...desired, hosts: hosts.map((h) => (h.name === 'node1' ? host('node1', '192.0.2.1') : h)) }), undefined, 'no tunnel address yet: no tunnel');
  assert.equal(planTunnel({ ...desired, underlayMtu: 9000 })?.mtu, 8940, 'the underlay MTU less 60');
});

test('an encrypted network uses tunnel addresses and reaches only tunnel peers; an opted-out one stays on the underlay', () => {
  const p = planTenant(desired, tenant);
  const [secret, bulk] = p.bridges.map((b) => b.overlay);
  assert.equal(secret?.local, '100.64.0.1');
  assert.deepEqual(secret?.peers, ['100.64.0.2'], 'node3 has no key: not reached at all (never in clear)');
  assert.deepEqual(secret?.remotes.map((r) => [r.ip, r.vtep]), [['10.11.0.2', '100.64.0.2']]);
  assert.equal(bulk?.local, '192.0.2.1');
  assert.deepEqual(bulk?.peers, ['192.0.2.2', '192.0.2.3']);
  const off = planTenant({ ...desired, encryption: 'none' }, tenant).bridges.map((b) => b.overlay?.local);
  assert.deepEqual(off, ['192.0.2.1', '192.0.2.1'], 'encryption off: every network on the underlay');
});

test('the host side lists the VNIs still allowed in clear only while the tunnel is up', () => {
  assert.deepEqual(planHostSide(desired).clearVnis, [10002]);
  assert.deepEqual(planHostSide({ ...desired, encryption: 'none' }).clearVnis, []);
  assert.deepEqual(planHostSide(desired).peers, ['192.0.2.2', '192.0.2.3'], 'clear VXLAN from registered hosts, keyed or not');
});

test('tunnel device names fit in 15 bytes whatever the prefix', () => {
  assert.equal(tunnelDevice('weft-'), 'weft-wg');
  const long = tunnelDevice('a-very-long-prefix-');
  assert.ok(long.length <= 15 && long.startsWith('wg'), long);
  assert.notEqual(long, tunnelDevice('a-very-long-prefix2-'), 'distinct prefixes, distinct devices');
  assert.match(tunnelDevice('wu1-'), /^wg[0-9a-f]{13}$/, 'never wu*, the uplinks\' pattern in the host table');
});

const DUMP = [
  'cHJpdmF0ZQ==\tcHVibGlj\t51820\toff',
  `${KEY('b')}\t(none)\t192.0.2.2:51820\t100.64.0.2/32\t1764300000\t1000\t2000\t25`,
  `${KEY('z')}\t(none)\t(none)\t100.64.0.9/32\t0\t0\t0\toff`,
].join('\n');

test('wg dump parsing and the `wg set` delta: only what differs, removed peers removed, the key by file', () => {
  const d = parseDump(DUMP);
  assert.equal(d?.port, 51820);
  assert.deepEqual(d?.peers[0], { publicKey: KEY('b'), endpoint: '192.0.2.2:51820', allowedIps: ['100.64.0.2/32'], handshake: 1764300000, rx: 1000, tx: 2000, keepalive: 25 });
  const t = planTunnel(desired)!;
  assert.deepEqual(wgSetArgs(t, d, 'cHJpdmF0ZQ==', '/k'), ['peer', KEY('z'), 'remove'], 'node2 is right; the stranger goes');
  assert.deepEqual(wgSetArgs(t, d, 'bmV3', '/k'), ['private-key', '/k', 'peer', KEY('z'), 'remove'], 'a rotated key is set from its file');
  assert.deepEqual(wgSetArgs(t, undefined, 'x', '/k'), ['private-key', '/k', 'listen-port', '51820',
    'peer', KEY('b'), 'endpoint', '192.0.2.2:51820', 'allowed-ips', '100.64.0.2/32', 'persistent-keepalive', '25']);
  const moved = { ...t, peers: [{ ...t.peers[0]!, endpoint: '192.0.2.22:51820' }] };
  assert.deepEqual(wgSetArgs(moved, d, 'cHJpdmF0ZQ==', '/k').slice(0, 4), ['peer', KEY('b'), 'endpoint', '192.0.2.22:51820'], 'a moved host is updated');
  assert.equal(parseDump(''), undefined);
});
