import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startTestHost, within, type TestHost } from '../testkit/host.js';

const root = process.getuid?.() === 0;
let h: TestHost;
const TNS = () => `${h.tag}-t1`;

before(async () => {
  if (!root) return;
  h = await startTestHost('rl', { agentArgs: ['--repair-grace', '1000'] });
  assert.equal((await h.api('POST', '/api/v1/tenants/default/networks', { name: 'net', subnet: '10.7.0.0/24' })).status, 201);
  assert.ok(await within(5000, async () => existsSync(join(h.cniConfDir, 'weft-default-net.conflist'))) >= 0);
});
after(async () => h?.cleanup());

const wiredVeths = async () => JSON.parse((await h.exec(h.hostNs, ['ip', '-n', TNS(), '-j', 'link', 'show', 'type', 'veth'])).stdout || '[]')
  .map((l: any) => l.ifname as string).filter((n: string) => n.startsWith('we'));
/** The agent's warnings and errors so far (its log is JSON lines in DIR/agent.log). */
const warnings = () => (existsSync(join(h.dir, 'agent.log')) ? readFileSync(join(h.dir, 'agent.log'), 'utf8').split('\n').filter((l) => /"level":(40|50)/.test(l)).slice(-10).join('\n') : '');
const endpoints = async () => (await h.api('GET', '/api/v1/endpoints')).json.items as any[];

test('50 concurrent ADDs: 50 distinct reachable addresses; 50 DELs leave no veth, address, conntrack or nft rule', { skip: !root && 'needs root' }, async () => {
  const n = 50;
  const paths = await Promise.all(Array.from({ length: n }, (_, i) => h.container(`p${i}`)));
  let deleted = false;
  try {
    const adds = await Promise.all(paths.map((netns, i) => h.cni('ADD', {
      conflist: 'weft-default-net', containerId: `burst-${i}`, netns,
      ...(i % 10 === 0 ? { patch: { runtimeConfig: { portMappings: [{ hostPort: 20000 + i, containerPort: 80 }] } } } : {}),
    })));
    adds.forEach((r, i) => assert.equal(r.code, 0, `ADD ${i}: ${r.stdout}`));
    const ips = adds.map((r) => r.json.ips[0].address.split('/')[0] as string);
    assert.equal(new Set(ips).size, n, 'distinct addresses');
    const unreachable: string[] = [];
    for (const ip of ips.slice(1)) {
      if ((await h.exec(`${h.tag}-p0`, ['ping', '-c', '1', '-W', '1', ip])).code !== 0) unreachable.push(ip);
    }
    if (unreachable.length > 0) {
      // Seen in CI about one run in four (5 of 50, twice): say what the kernel holds for them before
      // failing, so the cause can be told apart (a veth gone, an address the guard does not admit, a
      // late convergence that a second try after 2 s would show).
      const table = (await h.exec(TNS(), ['nft', 'list', 'table', 'inet', 'weft'])).stdout;
      const links = (await h.exec(TNS(), ['ip', '-o', 'link', 'show', 'type', 'veth'])).stdout;
      const neigh = (await h.exec(TNS(), ['ip', 'neigh', 'show'])).stdout;
      await new Promise((r) => setTimeout(r, 2000));
      const later: string[] = [];
      for (const ip of unreachable) if ((await h.exec(`${h.tag}-p0`, ['ping', '-c', '1', '-W', '1', ip])).code !== 0) later.push(ip);
      const mine = (ip: string) => `${ip}: in the table ${table.split(ip).length - 1}×, neighbour ${JSON.stringify(neigh.split('\n').find((l) => l.startsWith(`${ip} `)) ?? null)}`;
      assert.deepEqual(unreachable, [], `every container reaches every other; ${(await wiredVeths()).length} veths (${links.split('\n').length - 1} links); still unreachable 2 s later: ${JSON.stringify(later)}; ${unreachable.map(mine).join('; ')}; agent warnings: ${warnings()}`);
    }
    assert.equal((await wiredVeths()).length, n, 'a veth per container');
    const nftBefore = (await h.exec(TNS(), ['nft', 'list', 'table', 'inet', 'weft'])).stdout;
    // The tenant's published ports: protocol . host port : container address . container port.
    const published = /(tcp|udp) \. \d+ : \d+\.\d+\.\d+\.\d+ \. \d+/g;
    assert.equal((nftBefore.match(published) ?? []).length, 5, 'five published ports');
    const ct = await h.exec(TNS(), ['conntrack', '-L']);
    assert.match(ct.stdout + ct.stderr, /10\.7\.0\./, 'the pings left conntrack entries to clean');

    const dels = await Promise.all(paths.map((_, i) => h.cni('DEL', { conflist: 'weft-default-net', containerId: `burst-${i}`, netns: '' })));
    dels.forEach((r, i) => assert.equal(r.code, 0, `DEL ${i}: ${r.stdout}`));
    assert.deepEqual(await wiredVeths(), [], 'no veth left');
    assert.deepEqual(await endpoints(), [], 'no endpoint (and so no address) left');
    // The bridge's own traffic (from the gateway, e.g. IGMP reports) may stay; no endpoint address may.
    const ctAfter = (await h.exec(TNS(), ['conntrack', '-L'])).stdout;
    const leftovers = ips.filter((ip) => new RegExp(`(src|dst)=${ip.replace(/\./g, '\\.')} `).test(ctAfter));
    assert.deepEqual(leftovers, [], `no conntrack entry of a deleted endpoint is left:\n${ctAfter}`);
    const nftAfter = (await h.exec(TNS(), ['nft', 'list', 'table', 'inet', 'weft'])).stdout;
    assert.doesNotMatch(nftAfter, published, 'no published port left in the tenant');
    assert.match(nftAfter, /comment "dns"/, 'DNS interception stays with the tenant');
    const hostAfter = (await h.exec(h.hostNs, ['nft', 'list', 'table', 'inet', 'weft'])).stdout;
    assert.match(hostAfter, /masquerade/, 'the host table is there');
    assert.doesNotMatch(hostAfter, /(tcp|udp) \. \d+ : 169\.254\./, 'no published port left on the host');
    deleted = true;
  } finally {
    // Also when an assertion failed: the next test counts veths and endpoints, and must not see these.
    if (!deleted) await Promise.all(paths.map((_, i) => h.cni('DEL', { conflist: 'weft-default-net', containerId: `burst-${i}`, netns: '' })));
    for (let i = 0; i < n; i++) await h.exec(h.hostNs, ['ip', 'netns', 'del', `${h.tag}-p${i}`]);
  }
});

test('killing and restarting the agent during a TCP stream: the stream survives, no address changes', { skip: !root && 'needs root' }, async () => {
  const a = await h.container('sa');
  const b = await h.container('sb');
  const ra = await h.cni('ADD', { conflist: 'weft-default-net', containerId: 'stream-a', netns: a });
  const rb = await h.cni('ADD', { conflist: 'weft-default-net', containerId: 'stream-b', netns: b });
  const ipA = ra.json.ips[0].address.split('/')[0];
  const server = spawn('ip', ['netns', 'exec', `${h.tag}-sa`, 'iperf3', '-s', '-1', '-p', '5299'], { stdio: 'ignore' });
  try {
    await new Promise((r) => setTimeout(r, 400));
    const client = h.exec(`${h.tag}-sb`, ['iperf3', '-c', ipA, '-p', '5299', '-t', '6', '-i', '1', '-J'], { timeoutMs: 20_000 });
    await new Promise((r) => setTimeout(r, 1500));
    await h.stopAgent('SIGKILL');
    await new Promise((r) => setTimeout(r, 500));
    await h.startAgent();
    const result = await client;
    assert.equal(result.code, 0, result.stderr);
    const report = JSON.parse(result.stdout);
    const intervals = report.intervals.map((x: any) => x.sum.bits_per_second as number);
    assert.ok(intervals.length >= 6 && intervals.every((bps: number) => bps > 0), `every second carried data: ${intervals.map((x: number) => (x / 1e9).toFixed(1)).join(', ')} Gbit/s`);
    const after = await endpoints();
    assert.equal(after.find((e) => e.containerId === 'stream-a')?.ip, ipA, 'address unchanged');
    assert.equal(after.find((e) => e.containerId === 'stream-b')?.ip, rb.json.ips[0].address.split('/')[0]);
  } finally {
    server.kill('SIGKILL');
  }
  for (const id of ['stream-a', 'stream-b']) await h.cni('DEL', { conflist: 'weft-default-net', containerId: id, netns: '' });
});

test('killing the agent in the middle of ADDs leaves no address allocated for an endpoint that does not exist', { skip: !root && 'needs root' }, async () => {
  const n = 12;
  const paths = await Promise.all(Array.from({ length: n }, (_, i) => h.container(`k${i}`)));
  // Staggered ADDs; the kill lands once the server holds some of their endpoints, so some ADDs have
  // their address allocated but their wiring cut off — the case this test is about.
  const answered = new Set<number>();
  const adds = Promise.all(paths.map(async (netns, i) => {
    await new Promise((r) => setTimeout(r, i * 15));
    const r = await h.cni('ADD', { conflist: 'weft-default-net', containerId: `kill-${i}`, netns });
    answered.add(i);
    return r;
  }));
  const killIds = async () => (await endpoints()).map((e) => e.containerId as string).filter((c) => c.startsWith('kill-'));
  // The kill lands once some ADDs have answered and the server holds an endpoint whose ADD has not:
  // polling for a count alone let every allocated ADD answer first on a busy machine.
  assert.ok(await within(5000, async () => {
    if (answered.size < 2) return false;
    return (await killIds()).some((c) => !answered.has(Number(c.slice('kill-'.length))));
  }, 2) >= 0);
  await h.stopAgent('SIGKILL');
  const allocatedAtKill = await killIds();
  const results = await adds;
  const ok = results.map((r, i) => (r.code === 0 ? i : -1)).filter((i) => i >= 0);
  const failed = results.map((r, i) => (r.code !== 0 ? i : -1)).filter((i) => i >= 0);
  const orphaned = failed.filter((i) => allocatedAtKill.includes(`kill-${i}`));
  console.log(`# of ${n} ADDs, ${ok.length} answered before the kill, ${failed.length} failed, ${orphaned.length} of those with an address already allocated`);
  assert.ok(orphaned.length > 0, 'the kill cut at least one ADD after its address was allocated');
  // What a runtime does with a failed ADD: tear the sandbox down (its DEL fails while the agent is down).
  for (const i of failed) {
    await h.cni('DEL', { conflist: 'weft-default-net', containerId: `kill-${i}`, netns: paths[i]! });
    await h.exec(h.hostNs, ['ip', 'netns', 'del', `${h.tag}-k${i}`]);
  }
  await h.startAgent();
  const want = ok.map((i) => `kill-${i}`).sort();
  const settled = await within(8000, async () => {
    const have = (await endpoints()).map((e) => e.containerId).filter((c: string) => c.startsWith('kill-')).sort();
    return JSON.stringify(have) === JSON.stringify(want);
  }, 250);
  const have = (await endpoints()).map((e) => e.containerId).filter((c: string) => c.startsWith('kill-')).sort();
  assert.ok(settled >= 0, `endpoints left: ${have.join(', ')}; expected only ${want.join(', ')}`);
  for (const i of ok) {
    const check = await h.cni('CHECK', { conflist: 'weft-default-net', containerId: `kill-${i}`, netns: paths[i]! });
    assert.equal(check.code, 0, `container ${i}, which got its answer, is wired: ${check.stdout}`);
  }
  assert.equal((await wiredVeths()).length, ok.length, 'no veth without an endpoint');
});
