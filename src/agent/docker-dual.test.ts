import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { MemoryDatapath } from '../datapath/index.js';
import { endpointId } from '../model/index.js';
import { http as api, startServerProcess, type ServerProcess } from '../testkit/server.js';
import { inviteHost, within } from '../testkit/host.js';
import type { Agent } from './agent.js';
import { GATEWAY_REQUEST, callDocker, dockerId, dockerOk, dockerSocketIn, startDockerTestAgent } from './docker/testing.js';
import { PAIR_MS } from './docker/ipam.js';

/**
 * `docker network create --ipv6` on a dual-stack Weft network, call by call as dockerd makes them, against
 * a real server and agent (in-memory datapath): the IPv4 request reserves both addresses, the IPv6 request
 * that follows answers the reservation's (an IPv4 request waits while another's IPv6 request is awaited),
 * CreateEndpoint checks the pair, Join gives the IPv6 gateway; and every way it can go wrong is refused
 * with the field or flag named.
 */
const log = pino({ level: process.env['WEFT_TEST_LOG'] ?? 'silent' });
let server: ServerProcess;
let dir: string;
let agent: Agent;
let sock: string;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'weft-docker-dual-'));
  server = await startServerProcess();
  agent = await startDockerTestAgent({
    serverUrl: server.url, invite: () => inviteHost(server.url, server.token, 'node1'), dir, dp: new MemoryDatapath('d6-'), nsPrefix: 'd6-', host: 'node1', resyncMs: 60_000, repairGraceMs: 0, log,
  });
  sock = dockerSocketIn(dir);
  for (const n of [{ name: 'ds', subnet: '10.6.0.0/24', subnet6: 'fd00:6::/64' }, { name: 'v4', subnet: '10.7.0.0/24' }]) {
    assert.equal((await api(server.url, server.token, 'POST', '/api/v1/tenants/default/networks', n)).status, 201);
  }
  assert.ok(await within(5000, async () => agent.state.networks.has('default/ds') && agent.state.networks.has('default/v4')) >= 0);
});

after(async () => {
  await agent?.stop();
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const pool = (o: Record<string, unknown>) => ({ AddressSpace: 'weft', Pool: '', SubPool: '', Options: {}, V6: false, ...o });

/**
 * `docker network create --ipv6 --subnet S4 --subnet S6 -o network=NAME`: both pools, both gateways,
 * CreateNetwork. `as6`: how CreateNetwork spells the IPv6 pool (dockerd repeats it in Go's form).
 */
async function createDual(network: string, s4: string, s6: string, as6?: string) {
  const p4 = await dockerOk(sock, 'IpamDriver.RequestPool', pool({ Pool: s4 }));
  const p6 = await dockerOk(sock, 'IpamDriver.RequestPool', pool({ Pool: s6, V6: true }));
  const g4 = await dockerOk(sock, 'IpamDriver.RequestAddress', { PoolID: p4.PoolID, Address: '', Options: GATEWAY_REQUEST });
  const g6 = await dockerOk(sock, 'IpamDriver.RequestAddress', { PoolID: p6.PoolID, Address: '', Options: GATEWAY_REQUEST });
  const networkId = dockerId();
  const r = await callDocker(sock, 'NetworkDriver.CreateNetwork', {
    NetworkID: networkId, Options: { 'com.docker.network.generic': { network }, 'com.docker.network.enable_ipv6': true },
    IPv4Data: [{ AddressSpace: 'weft', Pool: p4.Pool, Gateway: g4.Address }], IPv6Data: [{ AddressSpace: 'weft', Pool: as6 ?? p6.Pool, Gateway: g6.Address }],
  });
  // As dockerd rolls back a failed create.
  if (r.status !== 200) for (const p of [p4, p6]) await dockerOk(sock, 'IpamDriver.ReleasePool', { PoolID: p.PoolID });
  return { r, networkId, pool4: p4.PoolID as string, pool6: p6.PoolID as string, g6: g6.Address as string };
}

const endpoints = async () => (await api(server.url, server.token, 'GET', '/api/v1/endpoints')).json.items as Array<{ id: string; ip: string; ip6?: string; mac: string; containerId: string }>;

test('--ipv6 on a dual-stack network: interleaved containers each get their own pair of addresses, and Join the IPv6 gateway', async () => {
  // Typed in another spelling, repeated by dockerd in its own: the pool is still this network's.
  const n = await createDual('ds', '10.6.0.0/24', 'FD00:6:0::/64', 'fd00:6::/64');
  assert.equal(n.r.status, 200, JSON.stringify(n.r.json));
  assert.equal(n.g6, 'fd00:6::1/64');
  const mapped = (await api(server.url, server.token, 'GET', '/api/v1/tenants/default/docker-networks')).json.items.find((x: { name: string }) => x.name === n.networkId.slice(0, 63));
  assert.equal(mapped.pool6, n.pool6, 'the IPv6 pool is recorded with the mapping (found again after a restart)');
  // Two containers start at once: A's and B's IPv4 requests together. B's waits until A's IPv6 request
  // came, so each IPv6 request is answered with its own endpoint's reservation.
  const req = (pool: string) => dockerOk(sock, 'IpamDriver.RequestAddress', { PoolID: pool, Address: '', Options: {} });
  const first = req(n.pool4);
  let bDone = false;
  const second = req(n.pool4).then((x) => ((bDone = true), x));
  const a4 = await first;
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(bDone, false, "B's IPv4 request waits while A's IPv6 one is awaited");
  const a6 = await req(n.pool6);
  const b4 = await second;
  const b6 = await req(n.pool6);
  const held = await endpoints();
  const pair = (v4: string) => held.find((e) => e.ip === v4.split('/')[0]);
  assert.equal(a6.Address, `${pair(a4.Address)?.ip6}/64`, "A's IPv6 address is the one reserved with A's IPv4 one");
  assert.equal(b6.Address, `${pair(b4.Address)?.ip6}/64`);
  assert.notEqual(a6.Address, b6.Address);
  assert.match(a6.Address, /^fd00:6::[0-9a-f]+\/64$/);
  const stray = await callDocker(sock, 'IpamDriver.RequestAddress', { PoolID: n.pool6, Address: '', Options: {} });
  assert.match(stray.json.Err, /no reservation on default\/ds awaits its IPv6 address/);
  // A CreateEndpoint whose IPv6 address is another reservation's is refused, and changes nothing.
  const before = JSON.stringify(await endpoints());
  const wrong = await callDocker(sock, 'NetworkDriver.CreateEndpoint', {
    NetworkID: n.networkId, EndpointID: dockerId(), Interface: { Address: a4.Address, AddressIPv6: b6.Address, MacAddress: '' }, Options: {},
  });
  assert.equal(wrong.status, 500);
  assert.match(wrong.json.Err, /ip6: .* differs from/);
  const missing = await callDocker(sock, 'NetworkDriver.CreateEndpoint', {
    NetworkID: n.networkId, EndpointID: dockerId(), Interface: { Address: a4.Address, AddressIPv6: '', MacAddress: '' }, Options: {},
  });
  assert.equal(missing.status, 400);
  assert.match(missing.json.Err, /Interface\.AddressIPv6: missing/);
  const bcast = await callDocker(sock, 'NetworkDriver.CreateEndpoint', {
    NetworkID: n.networkId, EndpointID: dockerId(), Interface: { Address: a4.Address, AddressIPv6: a6.Address, MacAddress: 'ff:ff:ff:ff:ff:ff' }, Options: {},
  });
  assert.match(bcast.json.Err, /mac: ff:ff:ff:ff:ff:ff is a multicast \(or broadcast\) address/);
  assert.equal(JSON.stringify(await endpoints()), before, 'refused calls change nothing');
  for (const [v4, v6] of [[a4, a6], [b4, b6]] as const) {
    const E = dockerId();
    const created = await dockerOk(sock, 'NetworkDriver.CreateEndpoint', { NetworkID: n.networkId, EndpointID: E, Interface: { Address: v4.Address, AddressIPv6: v6.Address, MacAddress: '' }, Options: {} });
    const m = created.Interface?.MacAddress;
    assert.match(m ?? '', /^02:57:0a:06:00:/, 'the MAC Weft derives from the IPv4 address, handed to Docker');
    const joined = await dockerOk(sock, 'NetworkDriver.Join', { NetworkID: n.networkId, EndpointID: E, SandboxKey: `/var/run/docker/netns/${E.slice(0, 12)}`, Options: {} });
    assert.equal(joined.Gateway, '10.6.0.1');
    assert.equal(joined.GatewayIPv6, 'fd00:6::1');
    const ep = (await endpoints()).find((e) => e.id === endpointId(E, 'eth0'));
    assert.deepEqual([ep?.ip, ep?.ip6, ep?.mac], [v4.Address.split('/')[0], v6.Address.split('/')[0], m]);
  }
  assert.equal((await endpoints()).filter((e) => e.containerId.startsWith('ipam-')).length, 0, 'no reservation left behind');
});

test('a reservation released by its IPv4 address gives back both; the IPv6 release alone keeps it', async () => {
  const n = await createDual('ds', '10.6.0.0/24', 'fd00:6::/64');
  assert.equal(n.r.status, 200, JSON.stringify(n.r.json));
  const req = (pool: string) => dockerOk(sock, 'IpamDriver.RequestAddress', { PoolID: pool, Address: '', Options: {} });
  const v4 = await req(n.pool4);
  const v6 = await req(n.pool6);
  const mine = (e: { ip: string }) => e.ip === v4.Address.split('/')[0];
  await dockerOk(sock, 'IpamDriver.ReleaseAddress', { PoolID: n.pool6, Address: v6.Address.split('/')[0] });
  assert.ok((await endpoints()).some(mine), 'still reserved: its IPv4 address is in use');
  await dockerOk(sock, 'IpamDriver.ReleaseAddress', { PoolID: n.pool4, Address: v4.Address.split('/')[0] });
  assert.ok(await within(5000, async () => !(await endpoints()).some(mine)) >= 0, 'the reservation is gone');
  // The same IPv6 address can be handed out again (it went back with the reservation).
  const again4 = await req(n.pool4);
  const again6 = await req(n.pool6);
  assert.equal(again6.Address, v6.Address);
  // A reservation given back before its IPv6 request came lets the next IPv4 request go at once.
  const lone = await req(n.pool4);
  await dockerOk(sock, 'IpamDriver.ReleaseAddress', { PoolID: n.pool4, Address: lone.Address.split('/')[0] });
  const t0 = Date.now();
  const next4 = await req(n.pool4);
  assert.ok(Date.now() - t0 < 2000, 'not held for the IPv6 request that will never come');
  await req(n.pool6);
  for (const a of [again4, next4]) await dockerOk(sock, 'IpamDriver.ReleaseAddress', { PoolID: n.pool4, Address: a.Address.split('/')[0] });
});

test('an IPv6 request that comes late (past the wait for it) still finds its reservation', async () => {
  const n = await createDual('ds', '10.6.0.0/24', 'fd00:6::/64');
  assert.equal(n.r.status, 200, JSON.stringify(n.r.json));
  const v4 = await dockerOk(sock, 'IpamDriver.RequestAddress', { PoolID: n.pool4, Address: '', Options: {} });
  await new Promise((r) => setTimeout(r, PAIR_MS + 300));
  const v6 = await dockerOk(sock, 'IpamDriver.RequestAddress', { PoolID: n.pool6, Address: '', Options: {} });
  const ph = (await endpoints()).find((e) => e.ip === v4.Address.split('/')[0]);
  assert.equal(v6.Address, `${ph?.ip6}/64`);
  await dockerOk(sock, 'IpamDriver.ReleaseAddress', { PoolID: n.pool4, Address: v4.Address.split('/')[0] });
});

test('what cannot work is refused naming the flag or field: no --ipv6 on a dual-stack network, --ipv6 on an IPv4-only one, an --ip6 taken, a wrong subnet; --ip6 moves the reservation', async () => {
  const before = JSON.stringify([await endpoints(), (await api(server.url, server.token, 'GET', '/api/v1/tenants/default/docker-networks')).json.items.length]);
  const p4 = await dockerOk(sock, 'IpamDriver.RequestPool', pool({ Pool: '10.6.0.0/24' }));
  const plain = await callDocker(sock, 'NetworkDriver.CreateNetwork', {
    NetworkID: dockerId(), Options: { 'com.docker.network.generic': { network: 'ds' } }, IPv4Data: [{ AddressSpace: 'weft', Pool: p4.Pool, Gateway: '10.6.0.1/24' }], IPv6Data: [],
  });
  assert.equal(plain.status, 500);
  assert.match(plain.json.Err, /dual-stack .* with --ipv6/);
  await dockerOk(sock, 'IpamDriver.ReleasePool', { PoolID: p4.PoolID });
  const named6 = await callDocker(sock, 'IpamDriver.RequestPool', pool({ V6: true, Options: { network: 'v4' } }));
  assert.match(named6.json.Err, /--ipv6: network default\/v4 has no IPv6 subnet/);
  const none6 = await callDocker(sock, 'IpamDriver.RequestPool', pool({ V6: true }));
  assert.match(none6.json.Err, /--ipv6: give the Weft network's IPv6 subnet/);
  const garbage6 = await callDocker(sock, 'IpamDriver.RequestPool', pool({ V6: true, Pool: 'fd00::zz/64' }));
  assert.match(garbage6.json.Err, /Pool/);
  const v4only = await createDual('v4', '10.7.0.0/24', 'fd00:7::/64');
  assert.equal(v4only.r.status, 500);
  assert.match(v4only.r.json.Err, /--ipv6: network default\/v4 has no IPv6 subnet/);
  const other = await createDual('ds', '10.6.0.0/24', 'fd00:99::/64');
  assert.equal(other.r.status, 500);
  assert.match(other.r.json.Err, /--subnet fd00:99::\/64 conflicts with network default\/ds \(subnet6 fd00:6::\/64\)/);
  const n = await createDual('ds', '10.6.0.0/24', 'fd00:6::/64');
  const v4 = await dockerOk(sock, 'IpamDriver.RequestAddress', { PoolID: n.pool4, Address: '', Options: {} });
  // --ip6: the reservation's IPv6 address moves to the one asked for.
  const ip6 = await dockerOk(sock, 'IpamDriver.RequestAddress', { PoolID: n.pool6, Address: 'fd00:6::99', Options: {} });
  assert.equal(ip6.Address, 'fd00:6::99/64');
  assert.ok((await endpoints()).some((e) => e.ip === v4.Address.split('/')[0] && e.ip6 === 'fd00:6::99'), 'the reservation holds it');
  // One taken already is refused naming the flag; dockerd gives back nothing of an endpoint whose IPv6
  // request failed, so the reservation went with the refusal.
  const v4b = await dockerOk(sock, 'IpamDriver.RequestAddress', { PoolID: n.pool4, Address: '', Options: {} });
  const taken = await callDocker(sock, 'IpamDriver.RequestAddress', { PoolID: n.pool6, Address: 'fd00:6::99', Options: {} });
  assert.match(taken.json.Err, /--ip6 fd00:6::99: .*already in use/);
  assert.ok(await within(5000, async () => !(await endpoints()).some((e) => e.ip === v4b.Address.split('/')[0])) >= 0, 'the refused --ip6 left no reservation');
  await dockerOk(sock, 'IpamDriver.ReleaseAddress', { PoolID: n.pool4, Address: v4.Address.split('/')[0] });
  // The IPv4 part of a network dockerd cannot make: --ipv4=false, an IPv6 --ip-range, another IPv6 gateway, a lost pool.
  const noV4 = await callDocker(sock, 'NetworkDriver.CreateNetwork', {
    NetworkID: dockerId(), Options: { 'com.docker.network.generic': { network: 'ds' } }, IPv4Data: [], IPv6Data: [{ AddressSpace: 'weft', Pool: 'fd00:6::/64', Gateway: 'fd00:6::1/64' }],
  });
  assert.equal(noV4.status, 400);
  assert.match(noV4.json.Err, /IPv4Data: empty/);
  const range6 = await callDocker(sock, 'IpamDriver.RequestPool', pool({ V6: true, Pool: 'fd00:6::/64', SubPool: 'fd00:6::/80' }));
  assert.match(range6.json.Err, /--ip-range fd00:6::\/80: an IPv6 range is set on the Weft network/);
  const lost = await callDocker(sock, 'NetworkDriver.CreateNetwork', {
    NetworkID: dockerId(), Options: { 'com.docker.network.generic': { network: 'ds' } }, IPv4Data: [{ AddressSpace: 'weft', Pool: '10.6.0.0/24', Gateway: '10.6.0.1/24' }],
    IPv6Data: [{ AddressSpace: 'weft', Pool: 'fd00:6::/64', Gateway: 'fd00:6::1/64' }],
  });
  assert.match(lost.json.Err, /the IPv6 pool Docker asked weft for \(fd00:6::\/64\) is not pending here/);
  const p4b = await dockerOk(sock, 'IpamDriver.RequestPool', pool({ Pool: '10.6.0.0/24' }));
  const p6b = await dockerOk(sock, 'IpamDriver.RequestPool', pool({ Pool: 'fd00:6::/64', V6: true }));
  const gw = await callDocker(sock, 'NetworkDriver.CreateNetwork', {
    NetworkID: dockerId(), Options: { 'com.docker.network.generic': { network: 'ds' } }, IPv4Data: [{ AddressSpace: 'weft', Pool: '10.6.0.0/24', Gateway: '10.6.0.1/24' }],
    IPv6Data: [{ AddressSpace: 'weft', Pool: 'fd00:6::/64', Gateway: 'fd00:6::fe/64' }],
  });
  assert.match(gw.json.Err, /--gateway fd00:6::fe conflicts with network default\/ds \(gateway6 fd00:6::1\)/);
  for (const p of [p4b, p6b]) await dockerOk(sock, 'IpamDriver.ReleasePool', { PoolID: p.PoolID });
  await dockerOk(sock, 'NetworkDriver.DeleteNetwork', { NetworkID: n.networkId });
  assert.ok(await within(5000, async () => JSON.stringify([await endpoints(), (await api(server.url, server.token, 'GET', '/api/v1/tenants/default/docker-networks')).json.items.length]) === before) >= 0,
    'nothing is left of the refused and released calls');
});

test('a network whose gateways are not the first addresses is bound without --gateway: the IPAM driver\'s own first-address answers pass (both families)', async () => {
  const made = await api(server.url, server.token, 'POST', '/api/v1/tenants/default/networks', { name: 'gw', subnet: '10.8.0.0/24', gateway: '10.8.0.254', subnet6: 'fd00:8::/64', gateway6: 'fd00:8::fe' });
  assert.equal(made.status, 201, JSON.stringify(made.json));
  assert.ok(await within(5000, async () => agent.state.networks.has('default/gw')) >= 0);
  const n = await createDual('gw', '10.8.0.0/24', 'fd00:8::/64');
  assert.equal(n.r.status, 200, JSON.stringify(n.r.json));
  assert.equal(n.g6, 'fd00:8::1/64', 'what the driver answered for a pool not yet bound');
  await dockerOk(sock, 'NetworkDriver.DeleteNetwork', { NetworkID: n.networkId });
  for (const p of [n.pool4, n.pool6]) await dockerOk(sock, 'IpamDriver.ReleasePool', { PoolID: p });
});
