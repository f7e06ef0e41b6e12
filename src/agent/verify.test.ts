import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createSocket, type Socket } from 'node:dgram';
import { test } from 'node:test';
import { PROBER } from './verify.js';

/** Runs verify's prober here (no namespace: loopback is the target), as the agent runs it in an endpoint's. */
function probe(timeoutMs: number, targets: Array<[string, string, number]>): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ['-e', PROBER, String(timeoutMs), '127.0.0.1'], { stdio: ['pipe', 'pipe', 'inherit'] });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.on('error', reject);
    p.on('close', () => {
      try {
        resolve(JSON.parse(out));
      } catch (e) {
        reject(e);
      }
    });
    p.stdin.end(JSON.stringify(targets));
  });
}

/** A UDP server on loopback that answers only the `answerFrom`-th datagram (1-based) of each source port. */
async function udpServer(answerFrom: number): Promise<{ port: number; seen: Map<number, number>; close: () => void }> {
  const s: Socket = createSocket('udp4');
  const seen = new Map<number, number>();
  s.on('message', (m, r) => {
    const n = (seen.get(r.port) ?? 0) + 1;
    seen.set(r.port, n);
    if (n >= answerFrom) s.send(m, r.port, r.address);
  });
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
  return { port: s.address().port, seen, close: () => s.close() };
}

test('verify prober: a UDP flow whose first datagram goes unanswered is sent again on the same flow, and passes', async () => {
  const srv = await udpServer(2);
  try {
    assert.deepEqual(await probe(400, [['127.0.0.1', 'udp', srv.port]]), [true]);
    // Confirmed from a second socket (two source ports), each of which needed its datagram sent again.
    assert.equal(srv.seen.size, 2);
    for (const n of srv.seen.values()) assert.ok(n >= 2, `each flow sent more than once: ${n}`);
  } finally {
    srv.close();
  }
});

test('verify prober: a silent UDP port is blocked, an answering one passes, a refused TCP port passes (a RST came back)', async () => {
  const silent = await udpServer(Infinity);
  const open = await udpServer(1);
  try {
    const closedTcp = await new Promise<number>((r) => {
      const s = createSocket('udp4');
      s.bind(0, '127.0.0.1', () => { const p = s.address().port; s.close(); r(p); });
    });
    assert.deepEqual(await probe(300, [['127.0.0.1', 'udp', silent.port], ['127.0.0.1', 'udp', open.port], ['127.0.0.1', 'tcp', closedTcp]]), [false, true, true]);
    // Silence is sent again until the timeout (every quarter of it), then judged: a few datagrams, not a flood.
    const sent = [...silent.seen.values()].reduce((a, b) => a + b, 0);
    assert.ok(sent >= 3 && sent <= 6, `datagrams to the silent port: ${sent}`);
  } finally {
    silent.close();
    open.close();
  }
});
