// npm run bench:docker — what Weft costs Docker. In one run, one dockerd of the bench's own in a simulated
// host: `docker run --rm bb true` on a Weft network versus on Docker's own bridge driver (a user-defined
// bridge network of the same daemon), interleaved, after warm-up runs; medians. Needs root; cleans up.
import { rmSync } from 'node:fs';
import { cpus } from 'node:os';
import { startTestHost } from '../testkit/host.js';
import { startDocker } from '../testkit/docker.js';
import { summarise, ms } from './stats.js';

const RUNS = Number(process.env['BENCH_DOCKER_RUNS'] ?? 20);
const DRIVER = `weft-b${process.pid}`;

const h = await startTestHost('bd', { agentArgs: ['--docker-plugin', `/run/docker/plugins/${DRIVER}.sock`] });
let dk: Awaited<ReturnType<typeof startDocker>> | undefined;
try {
  dk = await startDocker(h.hostNs);
  const d = dk;
  await h.stopAgent();
  await h.startAgent(['--docker-api', d.socket]);
  const must = async (args: string[]) => {
    const r = await d.run(args);
    if (r.code !== 0) throw new Error(`docker ${args.join(' ')}: ${r.stderr}`);
  };
  if ((await h.api('POST', '/api/v1/tenants/default/networks', { name: 'bench', subnet: '10.42.0.0/16' })).status !== 201) throw new Error('network');
  await must(['network', 'create', '-d', DRIVER, '--ipam-driver', DRIVER, '-o', 'network=bench', 'on-weft']);
  await must(['network', 'create', '-d', 'bridge', '--subnet', '10.43.0.0/16', 'on-bridge']);
  const once = async (net: string) => {
    const t0 = performance.now();
    await must(['run', '--rm', '--network', net, 'bb', 'true']);
    return performance.now() - t0;
  };
  for (let i = 0; i < 2; i++) { await once('on-weft'); await once('on-bridge'); }
  const weft: number[] = [];
  const bridge: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    weft.push(await once('on-weft'));
    bridge.push(await once('on-bridge'));
  }
  const w = summarise(weft);
  const b = summarise(bridge);
  const date = new Date().toISOString().slice(0, 10);
  console.log(`### bench:docker — ${date}, ${cpus().length} × ${cpus()[0]?.model.trim()}, Node ${process.version}, Docker Engine 20.10\n`);
  console.log(`| docker run --rm bb true (${RUNS} each, interleaved, after 2 warm-up runs) | p50 | p99 |`);
  console.log('| --- | --- | --- |');
  console.log(`| on a Weft network | ${ms(w.p50)} | ${ms(w.p99)} |`);
  console.log(`| on Docker's bridge driver | ${ms(b.p50)} | ${ms(b.p99)} |`);
  console.log(`\n| measure | result | target |\n| --- | --- | --- |`);
  console.log(`| Weft ÷ Docker's bridge, p50 | ${(w.p50 / b.p50).toFixed(2)}× | ≤ 1.1× |`);
} finally {
  await dk?.cleanup();
  await h.cleanup();
  rmSync(`/run/docker/plugins/${DRIVER}.sock`, { force: true });
}
