import { withOverrides } from '../exec/argv.js';
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ProcessRunner } from '../exec/index.js';
import { startLab, type Lab } from '../testkit/lab.js';
import { runWeft, WEFT_BIN } from '../testkit/server.js';

/**
 * `weft bench` across two hosts of a lab, as a user runs it: unshaped, then with a netprofile on the
 * sending group (the QoS story: the throughput sits at the limit, and the chart draws the limit), the
 * runs kept and served with their charts; nothing it made is left behind.
 */
const root = process.getuid?.() === 0;
let lab: Lab;
let results = '';
let server: ChildProcess | undefined;

const env = () => ({ WEFT_SERVER: lab.server.url, WEFT_TOKEN: lab.server.token });
async function weft(...args: string[]): Promise<string> {
  const r = await runWeft(args, env(), undefined, 120_000);
  assert.equal(r.code, 0, `weft ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}
const bench = (...extra: string[]) => runWeft(withOverrides(['bench', '-t', 'shop', '--from', 'app', '--to', 'db', '--port', '8888', '--duration', '4s', '--connects', '50',
  '--run-dir', join(lab.hosts[0]!.dir, 'run'), '--to-run-dir', join(lab.hosts[1]!.dir, 'run'), '--results', results, '-o', 'json'], extra), env(), undefined, 120_000);

before(async () => {
  if (!root) return;
  lab = await startLab('bn', 2);
  results = mkdtempSync(join(tmpdir(), 'weft-bench-results-'));
  await weft('tenant', 'create', 'shop');
  await weft('net', 'create', '-t', 'shop', '-s', '10.61.0.0/24', 'appnet');
  await weft('group', 'create', '-t', 'shop', 'appnet', 'app');
  await weft('group', 'create', '-t', 'shop', 'appnet', 'db');
});
after(async () => {
  if (server?.pid && server.exitCode === null) {
    const gone = new Promise((r) => server!.once('exit', r));
    process.kill(server.pid, 'SIGTERM');
    await gone;
  }
  await lab?.cleanup();
  if (results) rmSync(results, { recursive: true, force: true });
});

const benchNamespaces = async () => (await new ProcessRunner().run(['ip', 'netns', 'list'])).stdout.split('\n').filter((l) => l.startsWith('wbench-'));

test('weft bench across hosts: unshaped, then at its netprofile\'s limit; stored, served with the limit drawn, nothing left', { skip: !root && 'needs root' }, async (t) => {
  const free = await bench();
  assert.equal(free.code, 0, free.stderr);
  const r1 = JSON.parse(free.stdout);
  assert.match(free.stderr, /bench: iperf3 10\.61\.0\.\d+ -> 10\.61\.0\.\d+:8888 for 4 s/, 'progress is shown');
  assert.ok(r1.throughput.length >= 6, `samples every 0.5 s: ${r1.throughput.length}`);
  assert.ok(r1.summary.throughputBitsPerSecond.median > 300e6, `unshaped across the overlay: ${r1.summary.throughputBitsPerSecond.median / 1e6} Mbit/s`);
  assert.equal(r1.latenciesMs.length, 50);
  assert.equal(r1.netprofile, null);

  await weft('netprofile', 'create', '-t', 'shop', '-b', '50mbps', 'slow');
  await weft('group', 'update', '-t', 'shop', '-n', 'slow', 'app');
  const shaped = await bench();
  assert.equal(shaped.code, 0, shaped.stderr);
  const r2 = JSON.parse(shaped.stdout);
  assert.deepEqual(r2.netprofile, { name: 'slow', bandwidthBitsPerSecond: 50e6 });
  const median = r2.summary.throughputBitsPerSecond.median;
  t.diagnostic(`unshaped median ${(r1.summary.throughputBitsPerSecond.median / 1e6).toFixed(0)} Mbit/s, connect p99 ${r1.summary.latencyMs.p99.toFixed(2)} ms; 50mbps profile: median ${(median / 1e6).toFixed(1)} Mbit/s`);
  assert.ok(median > 40e6 && median < 55e6, `the line sits at the 50 Mbit/s limit: ${median / 1e6} Mbit/s`);
  assert.deepEqual(await benchNamespaces(), [], 'no bench namespace left');
  const eps = (await lab.api('GET', '/api/v1/endpoints?tenant=shop')).json.items;
  assert.deepEqual(eps, [], 'no bench endpoint left');
  assert.equal(readdirSync(results).filter((f) => f.endsWith('.json')).length, 2);

  // Served: both runs on the index, the shaped run's chart with its limit line, JSON and CSV beside.
  server = spawn(process.execPath, [WEFT_BIN, 'bench', '--no-run', '--results', results, '--serve', '127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    server!.stdout!.on('data', (d) => { out += d; const m = /at (http:\/\/127\.0\.0\.1:\d+)/.exec(out); if (m) resolve(m[1]!); });
    server!.once('exit', (c) => reject(new Error(`weft bench --serve ended (${c}): ${out}`)));
  });
  const index = await (await fetch(`${url}/`)).text();
  assert.ok(index.includes(r1.id) && index.includes(r2.id), 'both runs on the index');
  const svg = await (await fetch(`${url}/runs/${r2.id}/throughput.svg`)).text();
  assert.match(svg, /50 Mbit\/s/, 'the limit is labelled on the chart');
  const csv = await (await fetch(`${url}/runs/${r2.id}.csv`)).text();
  assert.ok(csv.split('\n').length > 50, 'samples and latencies as CSV');
  assert.equal((await fetch(`${url}/runs/${r2.id}.json`)).status, 200);
});

test('a policy that refuses the port, or a group that does not exist: a precise error, nothing left', { skip: !root && 'needs root' }, async () => {
  const missing = await bench('--to', 'nosuch');
  assert.equal(missing.code, 3, missing.stderr);
  assert.match(missing.stderr, /--to nosuch/);
  // An end whose attach fails after its namespace was made (no agent there; in a CI run, an agent's error):
  // both ends are undone, the namespace of the one that failed too.
  const noAgent = await bench('--to-run-dir', join(results, 'no-agent-here'));
  assert.notEqual(noAgent.code, 0, noAgent.stderr);
  assert.deepEqual(await benchNamespaces(), [], `no bench namespace left after a failed attach: ${noAgent.stderr}`);
  assert.deepEqual((await lab.api('GET', '/api/v1/endpoints?tenant=shop')).json.items, [], 'no bench endpoint left after a failed attach');
  await weft('policy', 'create', '-t', 'shop', 'closed');
  await weft('policy', 'rule-add', '-t', 'shop', 'closed', '1', '-direction=in', '-protocol=tcp', '-port=8888', '-action=deny');
  await weft('group', 'update', '-t', 'shop', '-p', 'closed', 'db');
  const refused = await bench();
  assert.notEqual(refused.code, 0);
  assert.match(refused.stderr, /no connect from app to db:8888 succeeded .* does a policy refuse it\?/);
  assert.deepEqual(await benchNamespaces(), []);
  assert.deepEqual((await lab.api('GET', '/api/v1/endpoints?tenant=shop')).json.items, []);
});
