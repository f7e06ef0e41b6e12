import assert from 'node:assert/strict';
import { test } from 'node:test';
import { dualStackRefusal } from '../model/plain.js';
import type { DockerApi } from './docker-api.js';
import { dockerNetworkName, targetOf, weftPreHook } from './weft-adapter.js';

test('WEFT_* variables and weft.* labels name the target; disagreement and bad names are refused', () => {
  assert.deepEqual(targetOf({ Env: ['A=1', 'WEFT_TENANT=shop', 'WEFT_GROUP=db'] }), { tenant: 'shop', group: 'db' });
  assert.deepEqual(targetOf({ Labels: { 'weft.network': 'appnet' } }), { tenant: 'default', network: 'appnet' });
  assert.deepEqual(targetOf({ Env: ['WEFT_GROUP=db'], Labels: { 'weft.group': 'db' } }), { tenant: 'default', group: 'db' });
  assert.equal(targetOf({ Env: ['PATH=/bin'] }), undefined);
  assert.equal(targetOf({}), undefined);
  assert.throws(() => targetOf({ Env: ['WEFT_GROUP=db'], Labels: { 'weft.group': 'web' } }), /WEFT_GROUP=db and label weft.group=web disagree/);
  assert.throws(() => targetOf({ Env: ['WEFT_TENANT=shop'] }), /WEFT_TENANT alone/);
  assert.throws(() => targetOf({ Env: ['WEFT_GROUP=../x'] }), /WEFT_GROUP: '\.\.\/x' is not a Weft name/);
  assert.throws(() => targetOf({ Env: ['WEFT_NETWORK=a.b'] }), /WEFT_NETWORK/);
  assert.throws(() => targetOf({ Labels: { 'weft.group': 5 } }), /label weft.group: must be a string/);
});

test('Docker network names are distinct for distinct targets', () => {
  assert.equal(dockerNetworkName({ tenant: 'shop', network: 'appnet', group: 'db' }), 'weft.shop.appnet.db');
  assert.equal(dockerNetworkName({ tenant: 'default', network: 'appnet' }), 'weft.default.appnet');
  assert.equal(dockerNetworkName({ tenant: 'default', group: 'db' }), 'weft.default._.db');
  assert.notEqual(dockerNetworkName({ tenant: 'a-b', network: 'c' }), dockerNetworkName({ tenant: 'a', network: 'b-c' }));
});

/** Docker's network calls as data (this is a unit test of the hook's logic; the e2e test runs dockerd). */
function fakeDocker(networks: Map<string, { Driver: string; Options: Record<string, string>; IPAM?: { Driver: string } }>, calls: string[]): DockerApi {
  return {
    async call(method, path, body) {
      calls.push(`${method} ${path}`);
      if (method === 'GET') {
        const n = networks.get(decodeURIComponent(path.slice('/networks/'.length)));
        return n ? { status: 200, json: n, text: '' } : { status: 404, json: { message: 'not found' }, text: '' };
      }
      const b = body as { Name: string; Driver: string; Options: Record<string, string> };
      networks.set(b.Name, { Driver: b.Driver, Options: b.Options, IPAM: { Driver: b.Driver } });
      return { status: 201, json: { Id: 'x' }, text: '' };
    },
  };
}

test('the pre-hook puts a WEFT_* container on its network (made once) and leaves others alone', async () => {
  const nets = new Map();
  const calls: string[] = [];
  const docker = fakeDocker(nets, calls);
  const body = { Image: 'bb', Env: ['WEFT_GROUP=db'], HostConfig: { NetworkMode: 'default' }, NetworkingConfig: { EndpointsConfig: { default: { Aliases: ['x'] } } } };
  const out = await weftPreHook({ Method: 'POST', Request: '/v1.47/containers/create?name=a', Body: JSON.stringify(body) }, docker, 'weft');
  const got = JSON.parse(out.Body!);
  assert.equal(got.HostConfig.NetworkMode, 'weft.default._.db');
  assert.deepEqual(got.NetworkingConfig.EndpointsConfig, { 'weft.default._.db': { Aliases: ['x'] } }, 'what was said of the default network moves with it');
  assert.deepEqual(nets.get('weft.default._.db'), { Driver: 'weft', Options: { tenant: 'default', group: 'db' }, IPAM: { Driver: 'weft' } });
  await weftPreHook({ Method: 'POST', Request: '/containers/create', Body: JSON.stringify(body) }, docker, 'weft');
  assert.deepEqual(calls, ['GET /networks/weft.default._.db', 'POST /networks/create', 'GET /networks/weft.default._.db'], 'made once, then found');

  const plain = { Method: 'POST', Request: '/v1.47/containers/create', Body: JSON.stringify({ Image: 'bb' }) };
  assert.equal(await weftPreHook(plain, docker, 'weft'), plain, 'no WEFT_*: unchanged');
  const start = { Method: 'POST', Request: '/v1.47/containers/abc/start', Body: JSON.stringify(body) };
  assert.equal(await weftPreHook(start, docker, 'weft'), start, 'only creates are changed');
  await assert.rejects(weftPreHook({ ...plain, Body: JSON.stringify({ ...body, HostConfig: { NetworkMode: 'host' } }) }, docker, 'weft'), /--network host was given too/);
  nets.set('weft.default.other', { Driver: 'bridge', Options: {} });
  await assert.rejects(weftPreHook({ ...plain, Body: JSON.stringify({ Env: ['WEFT_NETWORK=other'] }) }, docker, 'weft'), /exists but is not Weft's/);
});

test('keys Docker reads case-insensitively are refused in any other case; an own network\'s settings are kept', async () => {
  const docker = fakeDocker(new Map(), []);
  const create = (b: unknown) => ({ Method: 'POST', Request: '/v1.41/containers/create', Body: JSON.stringify(b) });
  await assert.rejects(weftPreHook(create({ Env: ['WEFT_GROUP=db'], HostConfig: {}, hostconfig: { NetworkMode: 'host' } }), docker, 'weft'), /hostconfig: write it HostConfig/);
  await assert.rejects(weftPreHook(create({ Env: ['WEFT_GROUP=db'], HostConfig: { NetworkMode: 'default', networkmode: 'host' } }), docker, 'weft'), /HostConfig\.networkmode/);
  const own = await weftPreHook(create({ Env: ['WEFT_GROUP=db'], HostConfig: { NetworkMode: 'weft.default._.db' }, NetworkingConfig: { EndpointsConfig: { 'weft.default._.db': { IPAMConfig: { IPv4Address: '10.1.2.9' } } } } }), docker, 'weft');
  assert.deepEqual(JSON.parse(own.Body!).NetworkingConfig.EndpointsConfig, { 'weft.default._.db': { IPAMConfig: { IPv4Address: '10.1.2.9' } } }, '--network weft.T.N.G --ip keeps its address');
});

test('a dual-stack Weft network: the driver refuses the Docker network without IPv6, naming it, and the proxy makes it with IPv6 and the network named for its IPAM', async () => {
  const made: unknown[] = [];
  const docker: DockerApi = {
    async call(method, _path, body) {
      if (method === 'GET') return { status: 404, json: { message: 'not found' }, text: '' };
      made.push(body);
      const b = body as { EnableIPv6?: boolean };
      return b.EnableIPv6
        ? { status: 201, json: { Id: 'x' }, text: '' }
        : { status: 500, json: { message: `NetworkDriver.CreateNetwork: ${dualStackRefusal('shop', 'dual', 'fd00:1:4::/64')}` }, text: '' };
    },
  };
  const create = (env: string[]) => weftPreHook({ Method: 'POST', Request: '/containers/create', Body: JSON.stringify({ Image: 'bb', Env: env }) }, docker, 'weft');
  const out = await create(['WEFT_TENANT=shop', 'WEFT_GROUP=web']);
  assert.equal(JSON.parse(out.Body!).HostConfig.NetworkMode, 'weft.shop._.web');
  assert.deepEqual(made.map((b) => [(b as { EnableIPv6?: boolean }).EnableIPv6, (b as { IPAM: unknown }).IPAM]), [
    [undefined, { Driver: 'weft' }],
    [true, { Driver: 'weft', Options: { tenant: 'shop', network: 'dual' } }],
  ], 'once without IPv6, then with it and the network the refusal named');
  // A refusal naming another tenant's network is no answer to this target: passed on, never retried.
  made.length = 0;
  await assert.rejects(create(['WEFT_TENANT=other', 'WEFT_GROUP=web']), /dual-stack/);
  assert.equal(made.length, 1);
});
