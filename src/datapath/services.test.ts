import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Endpoint, Group, Netprofile, Service } from '../model/index.js';
import { burstBytes, namedServices, planProfiles, planServices, selects } from './services.js';
import { renderServices, SERVICE_BUCKETS } from './services-nft.js';
import { diffTables } from './table-delta.js';

const meta = { revision: 1, createdAt: '', updatedAt: '' };
const ep = (id: string, ip: string, host: string, labels: Record<string, string>, group?: string): Endpoint => ({
  ...meta, id, tenant: 't', network: 'n', ip, prefixLength: 24, gateway: '10.0.0.1', mac: '', mtu: 1450, vni: 1, host, ifname: 'eth0',
  containerId: id, labels, state: 'created', ...(group ? { group } : {}),
});
const svc = (selector: Record<string, string>): Service => ({
  ...meta, tenant: 't', name: 's', network: 'n', vip: '10.0.0.200', selector, ports: [{ port: 80, targetPort: 8080, protocol: 'TCP' }],
});

test('a selector matches only when every label matches', () => {
  assert.ok(selects({ group: 'db' }, { group: 'db', network: 'n' }));
  assert.ok(!selects({ group: 'db', tier: 'x' }, { group: 'db' }));
  assert.ok(!selects({ group: 'db' }, { group: 'web' }));
});

test('backends are the matching endpoints of every host, sorted by address, once each', () => {
  const eps = [ep('a', '10.0.0.10', 'h2', { group: 'db' }), ep('b', '10.0.0.9', 'h1', { group: 'db' }), ep('c', '10.0.0.3', 'h1', { group: 'web' })];
  const [p] = planServices([svc({ group: 'db' })], eps);
  assert.deepEqual(p, { service: 's', vip: '10.0.0.200', protocol: 'tcp', port: 80, targetPort: 8080, backends: ['10.0.0.9', '10.0.0.10'] });
});

test('DNS names a service\'s IPv6 VIP only while an endpoint it selects has an IPv6 address', () => {
  const s6 = { ...svc({ group: 'db' }), vip6: 'fd00::c8' };
  const v4only = [ep('a', '10.0.0.10', 'h1', { group: 'db' }), { ...ep('w', '10.0.0.11', 'h1', { group: 'web' }), ip6: 'fd00::11', prefixLength6: 64, gateway6: 'fd00::1' }];
  assert.equal(namedServices([s6], v4only)[0]?.vip6, undefined, 'only an IPv4 backend (another group has IPv6): no AAAA');
  assert.equal(namedServices([s6], v4only)[0]?.vip, '10.0.0.200', 'the IPv4 VIP stays');
  const dual = [...v4only, { ...ep('b', '10.0.0.12', 'h2', { group: 'db' }), ip6: 'fd00::12', prefixLength6: 64, gateway6: 'fd00::1' }];
  assert.equal(namedServices([s6], dual)[0]?.vip6, 'fd00::c8', 'a backend with IPv6 on another host: AAAA');
  assert.equal(namedServices([svc({ group: 'db' })], dual)[0]?.vip6, undefined);
});

test('buckets spread evenly over the backends, and a lost backend changes only elements', () => {
  const three = planServices([svc({ group: 'db' })], ['10.0.0.2', '10.0.0.3', '10.0.0.4'].map((ip, i) => ep(`e${i}`, ip, 'h', { group: 'db' })));
  const r3 = renderServices(three, undefined, []);
  const counts = new Map<string, number>();
  for (const e of r3.maps[0]!.elements) {
    const backend = e.split(' : ')[1]!;
    counts.set(backend, (counts.get(backend) ?? 0) + 1);
  }
  assert.equal(r3.maps[0]!.elements.length, SERVICE_BUCKETS);
  for (const n of counts.values()) assert.ok(Math.abs(n - SERVICE_BUCKETS / 3) <= 1, `uneven buckets: ${[...counts.values()]}`);
  const two = planServices([svc({ group: 'db' })], ['10.0.0.2', '10.0.0.3'].map((ip, i) => ep(`e${i}`, ip, 'h', { group: 'db' })));
  const table = (r: ReturnType<typeof renderServices>) => ({ family: 'inet', name: 'weft', maps: r.maps, chains: [...r.chains, '\tchain prerouting {', ...r.dnat, '\t}'] });
  const delta = diffTables(table(r3), table(renderServices(two, undefined, [])))?.script;
  assert.ok(delta !== undefined && delta.startsWith('flush map inet weft svc'), 'a backend change rewrites the service map');
  assert.ok(!delta.includes('chain'), 'and no chain');
  const svcMap = /^add map inet weft svc \{[\s\S]*?\n\}/m.exec(delta)?.[0] ?? '';
  assert.match(svcMap, /10\.0\.0\.3/, 'the service map is written');
  assert.ok(!/10\.0\.0\.4/.test(svcMap), 'the lost backend gets no bucket');
  const none = renderServices(planServices([svc({ group: 'none' })], []), undefined, []);
  assert.deepEqual(none.maps[0]!.elements, [], 'no backends, no buckets: the VIP refuses connections');
});

test('netprofiles: DSCP for every member, shaping only for this host\'s members', () => {
  const groups: Group[] = [{ ...meta, tenant: 't', name: 'db', network: 'n', policies: [], labels: {}, netprofile: 'gold' }];
  const netprofiles: Netprofile[] = [{ ...meta, tenant: 't', name: 'gold', bandwidth: '10mbps', dscp: 10 }];
  const all = [ep('aaaaaaaaaaaaaaaa', '10.0.0.2', 'h1', {}, 'db'), ep('bbbbbbbbbbbbbbbb', '10.0.0.3', 'h2', {}, 'db'), ep('cccccccccccccccc', '10.0.0.4', 'h1', {})];
  const p = planProfiles('t', all, all.filter((e) => e.host === 'h1'), { groups, netprofiles });
  assert.deepEqual(p.dscp, [{ dscp: 10, ips: ['10.0.0.2', '10.0.0.3'] }]);
  assert.deepEqual(p.qos, [{ endpoint: 'aaaaaaaaaaaaaaaa', veth: 'weaaaaaaaaaaaa', ifb: 'wiaaaaaaaaaaaa', rate: 10e6, burst: 16 * 1024 }]);
  assert.equal(burstBytes(1e9, undefined), 1250000, '10 ms of a 1 Gbit/s rate');
  assert.equal(burstBytes(10e6, 500), 512000);
});

test('a changed set in a small table changes by element commands; one that changes more than it keeps is rewritten whole; one left empty is only flushed', () => {
  const t = (ips: string[]) => ({ family: 'inet', name: 'weft', chains: [], maps: [{ name: 'dscp_10', type: 'ipv4_addr', set: true, interval: false, elements: ips }] });
  assert.equal(diffTables(t(['10.0.0.2', '10.0.0.3']), t(['10.0.0.3', '10.0.0.4']))?.script,
    'delete element inet weft dscp_10 { 10.0.0.2 }\nadd element inet weft dscp_10 { 10.0.0.4 }\n');
  assert.equal(diffTables(t(['10.0.0.2', '10.0.0.3']), t(['10.0.0.4', '10.0.0.5']))?.script,
    'flush set inet weft dscp_10\nadd set inet weft dscp_10 {\n\t\ttype ipv4_addr\n\t\telements = { 10.0.0.4,\n\t\t\t10.0.0.5 }\n}\n');
  assert.equal(diffTables(t(['10.0.0.2']), t([]))?.script, 'flush set inet weft dscp_10\n');
});
