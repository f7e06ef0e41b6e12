import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ECHO_SERVER, PROBER, ProbePorts } from './echo.js';

// The truth tables' echo server and prober, on loopback (no root): what they answer, and that a client
// resetting its connection does not end the server (an unhandled ECONNRESET once did, mid-run).

const dir = mkdtempSync(join(tmpdir(), 'weft-echo-'));
const procs: ChildProcess[] = [];
after(() => {
  for (const p of procs) p.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});
writeFileSync(join(dir, 'server.js'), ECHO_SERVER);
writeFileSync(join(dir, 'prober.js'), PROBER);

/** A TCP port nobody listens on now (also free for UDP, checked by the prober's answers). */
async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((res) => s.listen(0, '127.0.0.1', res));
  const port = (s.address() as { port: number }).port;
  await new Promise((res) => s.close(res));
  return port;
}

const probe = async (targets: Array<[string, string, number]>, from = 0): Promise<boolean[]> => {
  const r = await promisify(execFile)(process.execPath, [join(dir, 'prober.js'), JSON.stringify(targets), '2000', String(from)]);
  return JSON.parse(r.stdout) as boolean[];
};

test('the echo server answers TCP and UDP in both families, and outlives clients that reset', async () => {
  const [port, closed] = [await freePort(), await freePort()];
  const server = spawn(process.execPath, [join(dir, 'server.js'), String(port)], { stdio: ['ignore', 'ignore', 'pipe'] });
  procs.push(server);
  let errors = '';
  server.stderr?.on('data', (d) => (errors += d));
  const all: Array<[string, string, number]> = [['127.0.0.1', 'tcp', port], ['127.0.0.1', 'udp', port], ['::1', 'tcp', port], ['::1', 'udp', port], ['127.0.0.1', 'tcp', closed], ['127.0.0.1', 'udp', closed]];
  let got: boolean[] = [];
  for (const t0 = Date.now(); Date.now() - t0 < 5000; await new Promise((res) => setTimeout(res, 50))) {
    got = await probe(all);
    if (got.slice(0, 4).every(Boolean)) break;
  }
  assert.deepEqual(got, [true, true, true, true, false, false], errors);
  // Clients that reset right after connecting, and right after sending: the server's sockets see ECONNRESET.
  for (let i = 0; i < 20; i++) {
    await new Promise<void>((res) => {
      const c = connect(port, '127.0.0.1', () => {
        if (i % 2 === 0) c.write('x');
        setImmediate(() => {
          c.resetAndDestroy();
          res();
        });
      });
      c.on('error', () => res());
    });
  }
  await new Promise((res) => setTimeout(res, 200));
  assert.equal(server.exitCode, null, `the server is still running: ${errors}`);
  assert.deepEqual(await probe(all.slice(0, 4)), [true, true, true, true], 'and still answers');
});

test('UDP probes leave from the ports given: each probe i from FIRST + i', async () => {
  const port = await freePort();
  // A UDP listener that reports the source ports it sees, and echoes.
  const seen: number[] = [];
  const { createSocket } = await import('node:dgram');
  const u = createSocket('udp4');
  u.on('message', (m, r) => {
    seen.push(r.port);
    u.send(m, r.port, r.address);
  });
  await new Promise<void>((res) => u.bind(port, '127.0.0.1', res));
  try {
    const from = 20_000 + (process.pid % 5_000);
    assert.deepEqual(await probe([['127.0.0.1', 'udp', port], ['127.0.0.1', 'udp', port], ['127.0.0.1', 'udp', port]], from), [true, true, true]);
    assert.deepEqual(seen.sort(), [from, from + 1, from + 2]);
  } finally {
    u.close();
  }
});

test('ProbePorts hands out blocks never handed out before, wrapping at the end of its range', () => {
  const p = new ProbePorts(100, 200);
  assert.deepEqual([p.take(40), p.take(40), p.take(40), p.take(10)], [100, 140, 100, 140]);
  assert.throws(() => p.take(101), /does not fit/);
});
