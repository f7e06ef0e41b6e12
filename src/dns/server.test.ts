import { test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import net from 'node:net';
import { pino } from 'pino';
import { DnsServer } from './server.js';
import { nameTable } from './answer.js';

/** A query for `name`, type A, as a stub resolver writes it. */
function query(name: string): Buffer {
  const labels = name.split('.').flatMap((l) => [Buffer.from([l.length]), Buffer.from(l)]);
  const head = Buffer.from([0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
  return Buffer.concat([head, ...labels, Buffer.from([0, 0, 1, 0, 1])]);
}

/**
 * Resolves the answer, or undefined after `waitMs`. An answer expected gets seconds (CI ran this beside
 * other test files and a 400 ms wait for it failed once); one that must not come is waited for briefly.
 */
function askUdp(from: string, port: number, msg: Buffer, waitMs: number): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    const s = dgram.createSocket('udp4');
    const done = (b: Buffer | undefined) => { clearTimeout(timer); s.close(); resolve(b); };
    const timer = setTimeout(() => done(undefined), waitMs);
    s.on('message', (m) => done(m));
    s.bind({ address: from, port: 0 }, () => s.send(msg, port, '127.0.0.1'));
  });
}

function askTcp(from: string, port: number, msg: Buffer): Promise<Buffer> {
  return new Promise((resolve) => {
    const c = net.connect({ host: '127.0.0.1', port, localAddress: from });
    let got = Buffer.alloc(0);
    c.on('connect', () => c.write(Buffer.concat([Buffer.from([0, msg.length]), msg])));
    c.on('data', (d) => { got = Buffer.concat([got, d]); if (got.length >= 2 && got.length >= 2 + got.readUInt16BE(0)) c.end(); });
    c.on('error', () => undefined);
    c.on('close', () => resolve(got));
  });
}

test('a listener answers only its tenant\'s own uplink address, over UDP and TCP', async () => {
  const names = nameTable([{ name: 'dbsvc', vip: '10.1.2.200' }], []);
  // Test files run side by side and their sockets take ephemeral ports, so a port chosen here may be
  // taken (CI once saw no answer: the server had logged that it could not listen): try a few.
  let port = 0;
  let dns: DnsServer | undefined;
  for (let i = 0; i < 20 && !dns; i++) {
    port = 20_000 + ((process.pid + i * 997) % 12_000);
    const d = new DnsServer({ port, upstreams: [], upstreamTimeoutMs: 100, ttl: 5, names: () => names, log: pino({ level: 'silent' }) });
    await d.sync(new Map([['127.0.0.1', { tenant: 'default', peer: '127.0.0.2' }]]));
    if (d.listening().includes('127.0.0.1')) dns = d;
    else await d.stop();
  }
  assert.ok(dns, 'a free port was found');
  try {
    const q = query('dbsvc.default.weft');
    const answer = await askUdp('127.0.0.2', port, q, 5000);
    assert.deepEqual([...(answer ?? Buffer.alloc(4)).subarray(-4)], [10, 1, 2, 200], 'the tenant gets its answer');
    assert.equal(await askUdp('127.0.0.3', port, q, 400), undefined, 'any other source gets nothing');
    assert.deepEqual([...(await askTcp('127.0.0.2', port, q)).subarray(-4)], [10, 1, 2, 200], 'TCP: the tenant gets its answer');
    assert.equal((await askTcp('127.0.0.3', port, q)).length, 0, 'TCP: any other source is hung up on');
  } finally {
    await dns.stop();
  }
});
