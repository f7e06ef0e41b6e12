import { test } from 'node:test';
import assert from 'node:assert/strict';
import { testApi, type TestApi } from './testkit.js';

/** Dual-stack macvlan networks (issue 19): a subnet6 on the segment beside the IPv4 one. */

async function ok(api: TestApi, method: string, url: string, body?: unknown): Promise<any> {
  const r = await api.call(method, url, body);
  assert.ok(r.status < 300, `${method} ${url}: ${r.status} ${JSON.stringify(r.json)}`);
  return r.json;
}

let seq = 0;
const endpoint = (api: TestApi, extra: Record<string, unknown> = {}) =>
  api.call('POST', '/api/v1/endpoints', { tenant: 'default', network: 'lan', containerId: `c${seq++}`, host: 'h1', ifname: 'eth0', netns: '/run/netns/x', ...extra });

test('a dual-stack macvlan network: addresses of both families from its ranges only; overlaps on the same segment or with a routed subnet6 refused in any tenant', async () => {
  const api = await testApi();
  await ok(api, 'POST', '/api/v1/tenants', { name: 'blue' });
  const net = await ok(api, 'POST', '/api/v1/tenants/default/networks', {
    name: 'lan', subnet: '192.168.50.0/24', gateway: '192.168.50.1', ipRange: '192.168.50.100-192.168.50.199',
    subnet6: 'fd00:50::/64', gateway6: 'fd00:50::1', ipRange6: 'fd00:50::100-fd00:50::1ff', encap: 'macvlan', parent: 'eth1',
  });
  assert.deepEqual([net.subnet6, net.gateway6, net.ipRange6], ['fd00:50::/64', 'fd00:50::1', 'fd00:50::100-fd00:50::1ff']);
  const e = (await endpoint(api)).json;
  assert.deepEqual([e.ip, e.ip6, e.prefixLength6, e.gateway6], ['192.168.50.100', 'fd00:50::100', 64, 'fd00:50::1']);
  const outside = await endpoint(api, { ip6: 'fd00:50::77' });
  assert.deepEqual([outside.status, outside.json.field], [422, 'ip6'], 'a requested address outside ipRange6 (the segment\'s share Weft may use)');
  assert.equal((await endpoint(api, { ip6: 'fd00:50::1fe' })).json.ip6, 'fd00:50::1fe');
  const bad: Array<[string, Record<string, unknown>, string, RegExp]> = [
    ['blue', { subnet: '192.168.60.0/24', subnet6: 'fd00:50:0:0:8000::/65', ipRange6: 'fd00:50:0:0:8000::100-fd00:50:0:0:8000::1ff', encap: 'macvlan', parent: 'eth1' }, 'subnet6', /overlaps macvlan network default\/lan \(fd00:50::\/64\), on the same parent eth1/],
    ['blue', { subnet: '10.99.0.0/16', subnet6: 'fd00:50::/64', encap: 'routed' }, 'subnet6', /overlaps macvlan network default\/lan \(fd00:50::\/64\): its addresses are machines on a real segment/],
    ['blue', { subnet6: 'fd00:51::/64', encap: 'macvlan', parent: 'eth1' }, 'ipRange6', /a real segment's prefix; give the share of it Weft may hand out/],
    ['blue', { subnet6: 'fd00:50::/64', ipRange6: 'fd00:50::1000-fd00:50::10ff', encap: 'macvlan', parent: 'eth1' }, 'subnet6', /overlaps macvlan network default\/lan \(fd00:50::\/64\), on the same parent eth1/],
    ['blue', { subnet: '192.168.61.0/24', subnet6: 'fd00:51::/64', encap: 'macvlan', parent: 'eth1' }, 'ipRange6', /a real segment's prefix; give the share of it Weft may hand out/],
  ];
  for (const [tenant, body, field, why] of bad) {
    const r = await api.call('POST', `/api/v1/tenants/${tenant}/networks`, { name: 'bad', ...body });
    assert.ok(r.status >= 400 && r.status < 500, `${JSON.stringify(body)}: ${r.status}`);
    assert.equal(r.json.field, field, JSON.stringify(r.json));
    assert.match(r.json.detail, why);
  }
  assert.deepEqual((await ok(api, 'GET', '/api/v1/tenants/blue/networks')).items, []);
  // On another parent (another segment) the same subnet6 may be used.
  await ok(api, 'POST', '/api/v1/tenants/blue/networks', { name: 'lan2', subnet: '192.168.60.0/24', subnet6: 'fd00:50::/64', ipRange6: 'fd00:50::100-fd00:50::1ff', encap: 'macvlan', parent: 'eth2' });
  // And a routed subnet6 made first keeps a macvlan one out.
  await ok(api, 'POST', '/api/v1/tenants/blue/networks', { name: 'fab', subnet: '10.98.0.0/16', subnet6: 'fd00:98::/64', encap: 'routed' });
  const r = await api.call('POST', '/api/v1/tenants/default/networks', { name: 'lan3', subnet: '192.168.70.0/24', subnet6: 'fd00:98::/64', ipRange6: 'fd00:98::100-fd00:98::1ff', encap: 'macvlan', parent: 'eth3' });
  assert.deepEqual([r.status, r.json.field], [409, 'subnet6'], JSON.stringify(r.json));
  assert.match(r.json.detail, /overlaps routed network blue\/fab/);
});

test("on a macvlan network a requested IPv6 address is never a host's own, and a replace without ipRange6 is refused rather than widening it", async () => {
  const api = await testApi();
  await ok(api, 'PUT', '/api/v1/hosts/node1', { name: 'node1', vtepIp: '192.0.2.10', vtepIp6: 'fd00:50::150' });
  const body = { name: 'lan', subnet: '192.168.50.0/24', subnet6: 'fd00:50::/64', ipRange6: 'fd00:50::100-fd00:50::1ff', encap: 'macvlan', parent: 'eth1' };
  await ok(api, 'POST', '/api/v1/tenants/default/networks', body);
  const r = await endpoint(api, { ip6: 'fd00:50::150' });
  assert.deepEqual([r.status, r.json.field], [422, 'ip6'], JSON.stringify(r.json));
  assert.match(r.json.detail, /is host node1's own IPv6 address/);
  const { ipRange6: _r, ...without } = body;
  const put = await api.call('PUT', '/api/v1/tenants/default/networks/lan', without);
  assert.deepEqual([put.status, put.json.field], [422, 'ipRange6'], JSON.stringify(put.json));
  assert.equal((await ok(api, 'PATCH', '/api/v1/tenants/default/networks/lan', { mtu: 1400 })).ipRange6, 'fd00:50::100-fd00:50::1ff', 'a PATCH keeps it');
});

test('an IPv6-only macvlan network: addresses from ipRange6, MACs from their offsets, which no two such networks on one segment share', async () => {
  const api = await testApi();
  await ok(api, 'POST', '/api/v1/tenants', { name: 'blue' });
  const net = await ok(api, 'POST', '/api/v1/tenants/default/networks', { name: 'lan', subnet6: 'fd00:52::/64', gateway6: 'fd00:52::1', ipRange6: 'fd00:52::100-fd00:52::1ff', encap: 'macvlan', parent: 'eth1' });
  assert.deepEqual([net.subnet, net.subnet6, net.ipRange6], [undefined, 'fd00:52::/64', 'fd00:52::100-fd00:52::1ff']);
  const e = (await endpoint(api)).json;
  assert.deepEqual([e.ip, e.ip6, e.gateway6, e.mac], [undefined, 'fd00:52::100', 'fd00:52::1', '02:58:00:00:01:00']);
  const asked = await endpoint(api, { ip: '192.168.52.5' });
  assert.deepEqual([asked.status, asked.json.field], [422, 'ip'], JSON.stringify(asked.json));
  assert.deepEqual([(await endpoint(api, { ip6: 'fd00:52::99' })).json.field], ['ip6'], 'outside ipRange6');
  // Another prefix on the same segment, another tenant: its range may not sit at the same offsets (the MACs would repeat).
  const clash = await api.call('POST', '/api/v1/tenants/blue/networks', { name: 'lan', subnet6: 'fd00:53::/64', ipRange6: 'fd00:53::1f0-fd00:53::2ff', encap: 'macvlan', parent: 'eth1' });
  assert.deepEqual([clash.status, clash.json.field], [409, 'ipRange6'], JSON.stringify(clash.json));
  assert.match(clash.json.detail, /IPv6-only macvlan network default\/lan \(parent eth1\) has its range fd00:52::100-fd00:52::1ff at the same offsets.*e\.g\. from fd00:53::200/);
  const b = await ok(api, 'POST', '/api/v1/tenants/blue/networks', { name: 'lan', subnet6: 'fd00:53::/64', ipRange6: 'fd00:53::200-fd00:53::2ff', encap: 'macvlan', parent: 'eth1' });
  const be = (await endpoint(api, { tenant: 'blue' })).json;
  assert.deepEqual([b.ipRange6, be.ip6, be.mac], ['fd00:53::200-fd00:53::2ff', 'fd00:53::200', '02:58:00:00:02:00']);
  // A replace may not move a range onto the other's offsets either, nor may a network on another parent
  // take them (the server cannot know which parent names share a segment).
  const moved = await api.call('PUT', '/api/v1/tenants/blue/networks/lan', { name: 'lan', subnet6: 'fd00:53::/64', ipRange6: 'fd00:53::180-fd00:53::2ff', encap: 'macvlan', parent: 'eth1' });
  assert.deepEqual([moved.status, moved.json.field], [409, 'ipRange6'], JSON.stringify(moved.json));
  assert.equal((await ok(api, 'GET', '/api/v1/tenants/blue/networks/lan')).ipRange6, 'fd00:53::200-fd00:53::2ff', 'unchanged');
  const elsewhere = await api.call('POST', '/api/v1/tenants/blue/networks', { name: 'lan2', subnet6: 'fd00:54::/64', ipRange6: 'fd00:54::100-fd00:54::1ff', encap: 'macvlan', parent: 'eth2' });
  assert.deepEqual([elsewhere.status, elsewhere.json.field], [409, 'ipRange6'], JSON.stringify(elsewhere.json));
  await ok(api, 'POST', '/api/v1/tenants/blue/networks', { name: 'lan2', subnet6: 'fd00:54::/64', ipRange6: 'fd00:54::300-fd00:54::3ff', encap: 'macvlan', parent: 'eth2' });
  // A range narrowed past its endpoints keeps their offsets taken.
  await ok(api, 'PUT', '/api/v1/tenants/default/networks/lan', { name: 'lan', subnet6: 'fd00:52::/64', gateway6: 'fd00:52::1', ipRange6: 'fd00:52::180-fd00:52::1ff', encap: 'macvlan', parent: 'eth1' });
  const onEndpoint = await api.call('POST', '/api/v1/tenants/blue/networks', { name: 'lan4', subnet6: 'fd00:56::/64', ipRange6: 'fd00:56::100-fd00:56::17f', encap: 'macvlan', parent: 'eth1' });
  assert.deepEqual([onEndpoint.status, onEndpoint.json.field], [409, 'ipRange6'], JSON.stringify(onEndpoint.json));
  assert.match(onEndpoint.json.detail, /has endpoint \S+ \(fd00:52::100\) at the same offsets/);
  // A replace that keeps its range is not refused for what came later (a PATCH of the MTU, say).
  await ok(api, 'PATCH', '/api/v1/tenants/blue/networks/lan', { mtu: 1400 });
  // A dual-stack network on the same segment takes 02:57 MACs from IPv4: its range6 may sit anywhere.
  await ok(api, 'POST', '/api/v1/tenants/blue/networks', { name: 'lan3', subnet: '192.168.55.0/24', subnet6: 'fd00:55::/64', ipRange6: 'fd00:55::100-fd00:55::1ff', encap: 'macvlan', parent: 'eth1' });
});
