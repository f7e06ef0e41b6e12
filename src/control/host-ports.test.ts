import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryStore } from '../store/index.js';
import { rejectsWith } from './testing.js';
import { Control } from './control.js';

const req = { tenant: 'default', network: 'net', ifname: 'eth0' };
const web = (hostPort: number, protocol: 'tcp' | 'udp' = 'tcp') => ({ hostPort, containerPort: 80, protocol });

async function fresh(store = new MemoryStore()): Promise<Control> {
  const c = new Control(store);
  await c.bootstrap();
  await c.networks.create('u', 'default', { name: 'net', subnet: '10.0.0.0/24' });
  return c;
}

test('a host port is published by one endpoint per host and protocol: refused naming the publisher, free again once it goes', async () => {
  const c = await fresh();
  const a = await c.endpoints.create('a', { ...req, host: 'h1', containerId: 'a', portMappings: [web(8080), web(53, 'udp')] });
  await rejectsWith(c.endpoints.create('a', { ...req, host: 'h1', containerId: 'b', portMappings: [web(9000), web(8080)] }), 'WEFT_ADDRESS_IN_USE', new RegExp(`host port 8080/tcp on h1 is published by endpoint ${a.id}`), 'portMappings.1');
  // Another protocol, another host: not the same port.
  await c.endpoints.create('a', { ...req, host: 'h1', containerId: 'c', portMappings: [web(8080, 'udp')] });
  await c.endpoints.create('a', { ...req, host: 'h2', containerId: 'd', portMappings: [web(8080)] });
  const b = await c.endpoints.create('a', { ...req, host: 'h1', containerId: 'b' });
  await rejectsWith(c.endpoints.update('a', b.id, { portMappings: [web(53, 'udp')] }), 'WEFT_ADDRESS_IN_USE', /host port 53\/udp on h1/, 'portMappings.0');
  // An endpoint publishing the port again itself is no conflict.
  await c.endpoints.update('a', a.id, { portMappings: [web(8080), web(53, 'udp'), web(8443)] });

  // Unpublished by an update: free for another.
  await c.endpoints.update('a', a.id, { portMappings: [web(8443)] });
  await c.endpoints.update('a', b.id, { portMappings: [web(8080), web(53, 'udp')] });
  await rejectsWith(c.endpoints.update('a', a.id, { portMappings: [web(8080)] }), 'WEFT_ADDRESS_IN_USE', new RegExp(`published by endpoint ${b.id}`), 'portMappings.0');
  // Removed: free for another.
  await c.endpoints.remove('a', b.id);
  assert.equal(await c.store.get('hostports/h1/udp/53'), undefined, 'its claims went with it (none left behind)');
  await c.endpoints.update('a', a.id, { portMappings: [web(8080)] });
  await rejectsWith(c.endpoints.create('a', { ...req, host: 'h1', containerId: 'e', portMappings: [web(8080)] }), 'WEFT_ADDRESS_IN_USE', /8080\/tcp on h1/, 'portMappings.0');
  // Replaced (Docker's reservation taken over): the old endpoint's ports go with it.
  const hold = await c.endpoints.create('a', { ...req, host: 'h1', containerId: 'hold', portMappings: [web(7000)] });
  await c.endpoints.create('a', { ...req, host: 'h1', containerId: 'real', replaces: hold.id });
  await c.endpoints.create('a', { ...req, host: 'h1', containerId: 'f', portMappings: [web(7000)] });
  // Replaced by an endpoint publishing what it did and more: its own ports are no conflict, and every
  // claim names the new endpoint; a port given up by an update leaves no claim behind.
  const old = await c.endpoints.create('a', { ...req, host: 'h1', containerId: 'old', portMappings: [web(7100), web(7101)] });
  const young = await c.endpoints.create('a', { ...req, host: 'h1', containerId: 'young', replaces: old.id, portMappings: [web(7101), web(7102)] });
  const claim = async (port: number) => ((await c.store.get(`hostports/h1/tcp/${port}`))?.value as { endpoint: string } | undefined)?.endpoint;
  assert.deepEqual([await claim(7100), await claim(7101), await claim(7102)], [undefined, young.id, young.id]);
  await c.endpoints.update('a', young.id, { portMappings: [web(7102)] });
  assert.deepEqual([await claim(7101), await claim(7102)], [undefined, young.id]);
  // The overlay's own ports, as before.
  await rejectsWith(c.endpoints.create('a', { ...req, host: 'h1', containerId: 'g', portMappings: [web(4789, 'udp')] }), 'WEFT_INVALID_VALUE', /the overlay's port/, 'portMappings.0.hostPort');
});

test('a claim naming an endpoint that is gone, moved or no longer publishes the port is no conflict', async () => {
  const c = await fresh();
  const a = await c.endpoints.create('a', { ...req, host: 'h1', containerId: 'a', portMappings: [web(8080)] });
  const put = (key: string, value: unknown) => c.store.transact('test', async (tx) => tx.put(key, value));
  await put('hostports/h1/tcp/9000', { endpoint: 'ffffffffffffffff' });
  await put('hostports/h1/tcp/9001', { endpoint: a.id });
  await put('hostports/h2/tcp/8080', { endpoint: a.id });
  await put('hostports/h1/tcp/9002', 'garbage');
  // A claim naming a record whose port list is garbage (written outside the API): no conflict, no throw.
  await put('endpoints/eeeeeeeeeeeeeeee', { id: 'eeeeeeeeeeeeeeee', host: 'h1', portMappings: 'garbage' });
  await put('hostports/h1/tcp/9003', { endpoint: 'eeeeeeeeeeeeeeee' });
  await put('endpoints/dddddddddddddddd', { id: 'dddddddddddddddd', host: 'h1', portMappings: [null, 7] });
  await put('hostports/h1/udp/9003', { endpoint: 'dddddddddddddddd' });
  await c.endpoints.create('a', { ...req, host: 'h1', containerId: 'g', portMappings: [web(9003), web(9003, 'udp')] });
  const b = await c.endpoints.create('a', { ...req, host: 'h1', containerId: 'b', portMappings: [web(9000), web(9001), web(9002)] });
  await c.endpoints.create('a', { ...req, host: 'h2', containerId: 'c', portMappings: [web(8080)] });
  // And the claims now name their real publishers.
  await rejectsWith(c.endpoints.create('a', { ...req, host: 'h1', containerId: 'd', portMappings: [web(9002)] }), 'WEFT_ADDRESS_IN_USE', new RegExp(`published by endpoint ${b.id}`), 'portMappings.0');
});

test('every start claims what is published and unclaimed (a data dir from before the claims, an older server), in transactions of a bounded size, and names ports published twice', async () => {
  const store = new MemoryStore();
  const c = await fresh(store);
  const a = await c.endpoints.create('a', { ...req, host: 'h1', containerId: 'a', portMappings: [web(8080), web(53, 'udp')] });
  // 60 hosts with a port each: more claims than one etcd transaction takes (128 operations, a put and up to three guards each).
  for (let h = 0; h < 60; h++) await c.endpoints.create('a', { ...req, host: `n${h}`, containerId: `d${h}`, portMappings: [web(9100)] });
  // As an older server leaves it: the endpoints, no claims; and one port it let two endpoints publish.
  await store.transact('test', async (tx) => { for (const e of await tx.list('hostports/')) tx.delete(e.key); });
  const twice = await c.endpoints.create('a', { ...req, host: 'h2', containerId: 'b1', portMappings: [web(7000)] });
  const again = await c.endpoints.create('a', { ...req, host: 'h2', containerId: 'b2' });
  await store.transact('test', async (tx) => {
    tx.put(`endpoints/${again.id}`, { ...(await tx.get(`endpoints/${again.id}`))?.value as object, portMappings: [web(7000)] });
    tx.delete('hostports/h2/tcp/7000');
  });
  let largest = 0;
  const transact = store.transact.bind(store);
  store.transact = (async (actor: string, fn: Parameters<typeof store.transact>[1]) => transact(actor, async (tx) => {
    const r = await fn(tx);
    largest = Math.max(largest, (await tx.list('hostports/')).length - (await store.list('hostports/')).entries.length);
    return r;
  })) as typeof store.transact;
  const boot = await new Control(store).bootstrap();
  store.transact = transact;
  assert.ok(largest > 0 && largest <= 24, `claims written at most 24 a transaction (${largest})`);
  assert.equal((await store.list('hostports/')).entries.length, 63, 'every published port claimed');
  const first = [twice.id, again.id].sort()[0];
  assert.equal(((await store.get('hostports/h2/tcp/7000'))?.value as { endpoint: string }).endpoint, first, 'a port published twice goes to the first by id');
  assert.deepEqual(boot.warnings, [`published twice (a server of an older version let it happen; remove one): host port 7000/tcp on h2: endpoints ${[twice.id, again.id].sort().join(' and ')}`]);
  await rejectsWith(new Control(store).endpoints.create('a', { ...req, host: 'h1', containerId: 'x', portMappings: [web(53, 'udp')] }), 'WEFT_ADDRESS_IN_USE', new RegExp(`published by endpoint ${a.id}`), 'portMappings.0');
  // A claim lost later (or never written by an older server) is made again at the next start, and only it.
  await store.transact('test', async (tx) => tx.delete('hostports/n7/tcp/9100'));
  const revision = (await store.get('hostports/n8/tcp/9100'))?.modRevision;
  await new Control(store).bootstrap();
  assert.ok(await store.get('hostports/n7/tcp/9100'), 'claimed again');
  assert.equal((await store.get('hostports/n8/tcp/9100'))?.modRevision, revision, 'a claim that holds is not written again');
});

test('a port given up and published again before the claims given up are forgotten keeps its claim (a hostile review: two updates at once, an endpoint of a replaced one\'s id)', async () => {
  const c = await fresh();
  const claim = async (port: number) => ((await c.store.get(`hostports/h1/tcp/${port}`))?.value as { endpoint: string } | undefined)?.endpoint ?? 'none';
  const x = await c.endpoints.create('a', { ...req, host: 'h1', containerId: 'x', portMappings: [web(8080)] });
  // Two updates of x in flight (an agent's retry, two servers): 8080 dropped, then published again.
  await Promise.all([c.endpoints.update('a', x.id, { portMappings: [] }), c.endpoints.update('a', x.id, { portMappings: [web(8080)] })]);
  assert.deepEqual([(await c.endpoints.get(x.id)).portMappings?.map((p) => p.hostPort), await claim(8080)], [[8080], x.id]);
  await rejectsWith(c.endpoints.create('a', { ...req, host: 'h1', containerId: 'y', portMappings: [web(8080)] }), 'WEFT_ADDRESS_IN_USE', new RegExp(`published by endpoint ${x.id}`), 'portMappings.0');
  // o replaced by n, while an endpoint of o's container (its id again) publishes 9090.
  const o = await c.endpoints.create('a', { ...req, host: 'h1', containerId: 'o', portMappings: [web(9090)] });
  await Promise.all([
    c.endpoints.create('a', { ...req, host: 'h1', containerId: 'n', replaces: o.id }),
    c.endpoints.create('a', { ...req, host: 'h1', containerId: 'o', portMappings: [web(9090)] }).catch(() => undefined),
  ]);
  const publishers = (await c.endpoints.list({ host: 'h1' })).items.filter((e) => e.portMappings?.some((p) => p.hostPort === 9090)).map((e) => e.id);
  assert.deepEqual(publishers.length ? [await claim(9090)] : [], publishers, 'whoever publishes 9090 holds its claim');
  if (publishers.length) await rejectsWith(c.endpoints.create('a', { ...req, host: 'h1', containerId: 'z', portMappings: [web(9090)] }), 'WEFT_ADDRESS_IN_USE', /9090\/tcp on h1/, 'portMappings.0');
});

test('a host port twice in one request is refused naming both places, and nothing is made or changed', async () => {
  const c = await fresh();
  await rejectsWith(c.endpoints.create('a', { ...req, host: 'h1', containerId: 'd', portMappings: [web(8080), web(53, 'udp'), { ...web(8080), containerPort: 81 }] }), 'WEFT_INVALID_VALUE', /portMappings\.2: host port 8080\/tcp is published by portMappings\.0 already/, 'portMappings.2');
  assert.deepEqual((await c.endpoints.list({})).items, []);
  const a = await c.endpoints.create('a', { ...req, host: 'h1', containerId: 'a', portMappings: [web(8080), web(8080, 'udp')] });
  await rejectsWith(c.endpoints.update('a', a.id, { portMappings: [web(9000), web(9000)] }), 'WEFT_INVALID_VALUE', /portMappings\.1: host port 9000\/tcp/, 'portMappings.1');
  assert.deepEqual((await c.endpoints.get(a.id)).portMappings, [web(8080), web(8080, 'udp')]);
  assert.equal(await c.store.get('hostports/h1/tcp/9000'), undefined);
});
