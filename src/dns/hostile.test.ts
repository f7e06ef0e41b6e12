import { test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import net from 'node:net';
import { pino } from 'pino';
import { DnsServer, type DnsClient, type Upstream } from './server.js';
import { nameTable, type NameTable } from './answer.js';
import { RCODE } from './codec.js';

/** What a hostile tenant container can do to the agent's resolver (loopback only). */

function query(name: string, type = 1, id = 0x1234): Buffer {
  const labels = name.split('.').flatMap((l) => [Buffer.from([l.length]), Buffer.from(l)]);
  const head = Buffer.alloc(12);
  head.writeUInt16BE(id, 0);
  head.writeUInt16BE(0x0100, 2);
  head.writeUInt16BE(1, 4);
  const tail = Buffer.alloc(5);
  tail.writeUInt16BE(type, 1);
  tail.writeUInt16BE(1, 3);
  return Buffer.concat([head, ...labels, tail]);
}

const framed = (q: Buffer) => Buffer.concat([Buffer.from([q.length >> 8, q.length & 0xff]), q]);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function start(o: { names?: NameTable; upstreams?: Upstream[]; timeout?: number; map?: Map<string, DnsClient> }): Promise<{ dns: DnsServer; port: number }> {
  const map = o.map ?? new Map([['127.0.0.1', { tenant: 'default', peer: '127.0.0.2' }]]);
  for (let i = 0; i < 20; i++) {
    const port = 20_000 + ((process.pid * 7 + i * 997) % 12_000);
    const names = o.names ?? new Map();
    const d = new DnsServer({ port, upstreams: o.upstreams ?? [], upstreamTimeoutMs: o.timeout ?? 2000, ttl: 5, names: () => names, log: pino({ level: 'silent' }) });
    await d.sync(map);
    if (d.listening().length === map.size) return { dns: d, port };
    await d.stop();
  }
  throw new Error('no free port');
}

/** An upstream on loopback that answers `example.org` at once and never anything else (a slow zone). */
async function upstream(): Promise<{ sock: dgram.Socket; up: Upstream; got: () => number }> {
  const sock = dgram.createSocket('udp4');
  let got = 0;
  sock.on('message', (m, from) => {
    got++;
    // Names are matched as a server does, whatever their case (the agent sends them in random case).
    const text = m.toString('latin1').toLowerCase();
    if (!text.includes('example') || text.includes('attacker')) return;
    const r = Buffer.from(m);
    r[2] = (r[2] ?? 0) | 0x80;
    sock.send(r, from.port, from.address);
  });
  await new Promise<void>((r) => sock.bind({ address: '127.0.0.1', port: 0 }, () => r()));
  return { sock, up: { address: '127.0.0.1', port: sock.address().port }, got: () => got };
}

test('a forwarded query still pending when its tenant\'s listener closes does not crash the agent', async () => {
  const u = await upstream();
  const { dns, port } = await start({ upstreams: [u.up], timeout: 200 });
  const c = dgram.createSocket('udp4');
  try {
    await new Promise<void>((r) => c.bind({ address: '127.0.0.2', port: 0 }, () => r()));
    c.send(query('slow.attacker.example'), port, '127.0.0.1');
    for (let i = 0; i < 50 && u.got() === 0; i++) await sleep(20);
    assert.equal(u.got(), 1, 'the query went upstream');
    await dns.sync(new Map()); // the tenant left this host (its last network removed)
    await sleep(500); // the SERVFAIL is due after 200 ms: it was sent on the closed socket and threw
  } finally {
    c.close();
    u.sock.close();
    await dns.stop();
  }
});

test('closing a listener (resync, stop) does not wait for a client that drips a byte at a time', async () => {
  const { dns, port } = await start({});
  const c = net.connect({ host: '127.0.0.1', port, localAddress: '127.0.0.2' });
  c.on('error', () => undefined);
  await new Promise((r) => c.once('connect', r));
  c.write(Buffer.from([0xff, 0xff]));
  const drip = setInterval(() => c.writable && c.write(Buffer.from([0])), 200);
  try {
    await sleep(300);
    const closed = await Promise.race([dns.sync(new Map()).then(() => true), sleep(3000).then(() => false)]);
    assert.ok(closed, 'the listener closed within 3 s (it waited for the client, for ever while it drips)');
  } finally {
    clearInterval(drip);
    c.destroy();
    await dns.stop();
  }
});

test('a TCP client that pipelines queries and never reads cannot make the agent buffer without bound', async () => {
  const { dns, port } = await start({ names: nameTable([], [{ containerName: 'web', ip: '10.1.2.3' }]) });
  const batch = Buffer.concat(Array<Buffer>(2000).fill(framed(query('web.default.weft'))));
  const c = net.connect({ host: '127.0.0.1', port, localAddress: '127.0.0.2' });
  c.on('error', () => undefined);
  c.pause();
  let sent = 0;
  try {
    await new Promise((r) => c.once('connect', r));
    const t0 = Date.now();
    while (!c.destroyed && Date.now() - t0 < 6000 && sent < 60e6) {
      const ok = c.write(batch);
      sent += batch.length;
      if (!ok) await Promise.race([new Promise((r) => c.once('drain', r)), new Promise((r) => c.once('close', r)), sleep(500)]);
    }
    // Unbounded, the server read 84 MB of queries in 20 s and grew to 720 MB; bounded, it stops reading
    // (or hangs up) once its unsent answers pass a limit, and only the kernel's socket buffers fill.
    assert.ok(c.destroyed || sent < 30e6, `the server kept reading: ${(sent / 1e6).toFixed(0)} MB of queries it answers into memory`);
  } finally {
    c.destroy();
    await dns.stop();
  }
});

test('an answer too long for its transport is truncated (TC), not thrown from the socket handler', async () => {
  // 1500 same-named dual-stack containers (one name across K8s namespaces, hosts or networks), asked ANY.
  const eps = Array.from({ length: 1500 }, (_, i) => ({ containerName: 'web', ip: `10.1.${i >> 8}.${i & 255}`, ip6: `fd00::${i.toString(16)}` }));
  const { dns, port } = await start({ names: nameTable([], eps) });
  try {
    const q = query('web.default.weft', 255);
    const got = await new Promise<Buffer>((resolve) => {
      const c = net.connect({ host: '127.0.0.1', port, localAddress: '127.0.0.2' });
      let b = Buffer.alloc(0);
      c.on('connect', () => c.write(framed(q)));
      c.on('data', (d) => { b = Buffer.concat([b, d]); if (b.length >= 2 && b.length >= 2 + b.readUInt16BE(0)) c.end(); });
      c.on('error', () => undefined);
      c.on('close', () => resolve(b));
    });
    assert.ok(got.length > 14, 'an answer came over TCP');
    assert.ok(got.readUInt16BE(4) & 0x0200, 'TC set');
    const udp = await new Promise<Buffer | undefined>((resolve) => {
      const s = dgram.createSocket('udp4');
      const t = setTimeout(() => { s.close(); resolve(undefined); }, 3000);
      s.on('message', (m) => { clearTimeout(t); s.close(); resolve(m); });
      s.bind({ address: '127.0.0.2', port: 0 }, () => s.send(q, port, '127.0.0.1'));
    });
    assert.ok(udp, 'an answer came over UDP');
    assert.ok(udp.length <= 512, `a UDP answer without EDNS is at most 512 bytes (was ${udp.length})`);
    assert.ok(udp.readUInt16BE(2) & 0x0200, 'TC set: ask again over TCP');
  } finally {
    await dns.stop();
  }
});

test("one tenant's flood of slow forwarded queries does not deny another tenant's", async () => {
  const u = await upstream();
  const map = new Map([['127.0.0.1', { tenant: 'a', peer: '127.0.0.2' }], ['127.0.0.3', { tenant: 'b', peer: '127.0.0.4' }]]);
  const { dns, port } = await start({ upstreams: [u.up], timeout: 2000, map });
  const a = net.connect({ host: '127.0.0.1', port, localAddress: '127.0.0.2' });
  a.on('error', () => undefined);
  const b = dgram.createSocket('udp4');
  try {
    await new Promise((r) => a.once('connect', r));
    const frames: Buffer[] = [];
    for (let i = 0; i < 70_000; i++) frames.push(framed(query(`x${i}.attacker.example`, 1, i & 0xffff)));
    a.write(Buffer.concat(frames));
    await sleep(1500);
    await new Promise<void>((r) => b.bind({ address: '127.0.0.4', port: 0 }, () => r()));
    const answer = await new Promise<Buffer | undefined>((resolve) => {
      const t = setTimeout(() => resolve(undefined), 5000);
      b.on('message', (m) => { clearTimeout(t); resolve(m); });
      b.send(query('example.org', 1, 7), port, '127.0.0.3');
    });
    assert.ok(answer, 'tenant b got an answer');
    assert.equal((answer[3] ?? 0) & 0xf, 0, "tenant b's outside name resolved (SERVFAIL: the shared ids were all taken by tenant a)");
  } finally {
    a.destroy();
    b.close();
    u.sock.close();
    await dns.stop();
  }
});

/** A client socket of tenant default (127.0.0.2) asking `name` once; the answer, or undefined after `ms`. */
async function ask(port: number, name: string, id: number, ms = 1500): Promise<Buffer | undefined> {
  const c = dgram.createSocket('udp4');
  await new Promise<void>((r) => c.bind({ address: '127.0.0.2', port: 0 }, () => r()));
  try {
    return await new Promise<Buffer | undefined>((resolve) => {
      const t = setTimeout(() => resolve(undefined), ms);
      c.on('message', (m) => { clearTimeout(t); resolve(m); });
      c.send(query(name, 1, id), port, '127.0.0.1');
    });
  } finally {
    c.close();
  }
}

/**
 * An upstream on loopback: `fold` answers with the question's letters in lower case (as some forwarders
 * do), `wrong` with another name under the right id (a forgery), else it echoes the question exactly. It
 * notes the names it was asked (as sent) and the ports queries came from.
 */
async function echoing(mode: { fold?: boolean; wrong?: boolean }) {
  const sock = dgram.createSocket('udp4');
  const ports = new Set<number>();
  const names: string[] = [];
  const ids: number[] = [];
  sock.on('message', (m, from) => {
    ports.add(from.port);
    ids.push(m.readUInt16BE(0));
    const r = Buffer.from(m);
    r[2] = (r[2] ?? 0) | 0x80;
    names.push(r.toString('latin1', 13, 13 + (r[12] ?? 0)));
    if (mode.fold) for (let i = 12; i < r.length - 4; i++) if ((r[i] as number) >= 0x41 && (r[i] as number) <= 0x5a) r[i] = (r[i] as number) | 0x20;
    if (mode.wrong) r[13] = 0x7a - ((r[13] as number) & 1);
    sock.send(r, from.port, from.address);
  });
  await new Promise<void>((r) => sock.bind({ address: '127.0.0.1', port: 0 }, () => r()));
  return { sock, ports, names, ids, up: { address: '127.0.0.1', port: sock.address().port } };
}

const NAME = 'abcdefghijklmnopqrstuvwxyz.example';

test('forwarded queries go with their letters in random case (0x20), the client gets its own case back, and a new port every 1,000 queries', async () => {
  const u = await echoing({});
  const { dns, port } = await start({ upstreams: [u.up], timeout: 300 });
  try {
    const good = await ask(port, NAME, 12);
    assert.ok(good);
    assert.equal((good[3] ?? 0) & 0xf, 0, 'an answer echoing the question exactly is taken');
    assert.equal(good.readUInt16BE(0), 12, "under the client's id");
    assert.equal(good.toString('latin1', 13, 13 + 26), 'abcdefghijklmnopqrstuvwxyz', "with the client's own case");
    assert.notEqual(u.names[0], 'abcdefghijklmnopqrstuvwxyz', `the name went upstream in mixed case: ${u.names[0]}`);
    for (let i = 0; i < 1000; i++) await ask(port, `n${i}.example`, i);
    assert.ok(u.ports.size >= 2, `the queries came from ${u.ports.size} port(s)`);
  } finally {
    u.sock.close();
    await dns.stop();
  }
});

test('an answer to another question under the right id is not taken; an upstream that folds case is asked again in lower case under a new id, and in lower case alone after 8 such answers', async () => {
  const forger = await echoing({ wrong: true });
  const a = await start({ upstreams: [forger.up], timeout: 300 });
  try {
    const forged = await ask(a.port, NAME, 11);
    assert.ok(forged, 'an answer came');
    assert.equal((forged[3] ?? 0) & 0xf, RCODE.SERVFAIL, 'the forged answer was not taken: SERVFAIL when the time was up');
  } finally {
    forger.sock.close();
    await a.dns.stop();
  }
  const folding = await echoing({ fold: true });
  const b = await start({ upstreams: [folding.up], timeout: 300 });
  try {
    const first = await ask(b.port, 'AbcDef.example', 13);
    assert.equal((first?.[3] ?? 1) & 0xf, 0, 'resolved');
    assert.equal(first?.toString('latin1', 13, 19), 'AbcDef', "with the client's own case");
    assert.equal(folding.names.length, 2, `asked twice: ${folding.names.join(', ')}`);
    assert.equal(folding.names[1], 'abcdef', 'the second time in lower case');
    assert.notEqual(folding.ids[0], folding.ids[1], 'under a new id: an answer that matched only the id and port lets nothing in');
    // One such answer (a forgery could make it) does not turn random case off: only eight do, for a while.
    for (let i = 0; i < 7; i++) assert.equal(((await ask(b.port, `q${i}x.example`, 20 + i))?.[3] ?? 1) & 0xf, 0);
    assert.equal(folding.names.length, 2 + 14);
    assert.equal(((await ask(b.port, 'ZYX.example', 14))?.[3] ?? 1) & 0xf, 0, 'resolved');
    assert.deepEqual(folding.names.slice(16), ['zyx'], 'after eight, once, in lower case');
  } finally {
    folding.sock.close();
    await b.dns.stop();
  }
});

test('a name forwarded in random case always has a letter in upper case: one drawn all in lower case would let an upstream that folds case pass unnoticed', async () => {
  const u = await echoing({});
  const { dns, port } = await start({ upstreams: [u.up], timeout: 300 });
  try {
    // Two letters: with a fair coin each, a quarter of the draws would be all lower case.
    for (let i = 0; i < 100; i++) assert.equal(((await ask(port, 'ab.123', 100 + i))?.[3] ?? 1) & 0xf, 0, 'resolved');
    assert.equal(u.names.length, 100);
    const lower = u.names.filter((n) => n === 'ab');
    assert.deepEqual(lower, [], `sent in lower case ${lower.length} times of 100`);
    assert.ok(new Set(u.names).size >= 2, `still in random case: ${[...new Set(u.names)].join(', ')}`);
  } finally {
    u.sock.close();
    await dns.stop();
  }
});
