import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { ProcessRunner } from '../../exec/index.js';
import { NETWATCH, NetWatch } from './netwatch.js';
import { DENY_CHAIN, FLOW_HELD, FLOW_LIMITS_DEFAULT, renderFlows } from '../flows-nft.js';
import { tableText } from '../table.js';
import type { FlowRecord } from '../datapath.js';

// Flow records from a real kernel: a router namespace whose table holds the flow chains (flows-nft.ts)
// and a forward chain that sends one port to the deny chain, two client namespaces on either side, and
// weft-netwatch reading the router's NFLOG group.

const root = process.getuid?.() === 0;
const real = new ProcessRunner();
const tag = `fl${process.pid % 100000}`;
const made: string[] = [];
let watch: NetWatch | undefined;
after(async () => {
  watch?.stop();
  for (const n of made) await real.run(['ip', 'netns', 'del', n], { allowFailure: true });
});

const skip = !root ? 'needs root' : !existsSync(NETWATCH) ? 'weft-netwatch not built' : false;
const inNs = (ns: string, argv: string[]) => real.run(['ip', 'netns', 'exec', ns, ...argv], { allowFailure: true });

/** a (10.77.1.2) — router — b (10.77.2.2); the router's table denies tcp/9 and icmp to b, allows the rest. */
async function lab(): Promise<{ a: string; b: string; r: string }> {
  const [a, b, r] = ['a', 'b', 'r'].map((x) => `${tag}-${x}`) as [string, string, string];
  for (const n of [a, b, r]) {
    await real.run(['ip', 'netns', 'add', n]);
    made.push(n);
    await real.run(['ip', '-n', n, 'link', 'set', 'lo', 'up']);
  }
  for (const [n, i] of [[a, 1], [b, 2]] as const) {
    await real.run(['ip', 'link', 'add', `${tag}x${i}`, 'netns', r, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', n]);
    await real.run(['ip', '-n', r, 'addr', 'add', `10.77.${i}.1/24`, 'dev', `${tag}x${i}`]);
    await real.run(['ip', '-n', r, 'link', 'set', `${tag}x${i}`, 'up']);
    await real.run(['ip', '-n', n, 'addr', 'add', `10.77.${i}.2/24`, 'dev', 'eth0']);
    await real.run(['ip', '-n', n, 'link', 'set', 'eth0', 'up']);
    await real.run(['ip', '-n', n, 'route', 'add', 'default', 'via', `10.77.${i}.1`]);
  }
  await inNs(r, ['sysctl', '-qw', 'net.ipv4.ip_forward=1']);
  const table = {
    family: 'inet', name: 'weft', maps: [], chains: [
      ...renderFlows(FLOW_LIMITS_DEFAULT),
      '\tchain forward {',
      '\t\ttype filter hook forward priority filter; policy accept;',
      '\t\tct state established,related accept',
      `\t\tip daddr 10.77.2.2 tcp dport 9 goto ${DENY_CHAIN}`,
      `\t\tip daddr 10.77.2.2 meta l4proto icmp goto ${DENY_CHAIN}`,
      '\t\taccept',
      '\t}',
    ],
  };
  const loaded = await real.run(['ip', 'netns', 'exec', r, 'nft', '-f', '-'], { input: tableText(table), allowFailure: true });
  assert.equal(loaded.code, 0, loaded.stderr);
  return { a, b, r };
}

async function until(pred: () => boolean, what: string, ms = 3000): Promise<void> {
  const t0 = performance.now();
  while (!pred() && performance.now() - t0 < ms) await new Promise((r) => setTimeout(r, 20));
  assert.ok(pred(), what);
}

test('flow records: the kernel\'s verdict on each new connection reaches the agent, a flood only up to its limit, the rest counted', { skip }, async () => {
  const { a, r } = await lab();
  const records: FlowRecord[] = [];
  let lost = 0;
  let held = 0;
  watch = NetWatch.start(real, {
    generation: () => {}, links: () => {}, gone: () => {}, ended: () => {},
    flow: (ns, rec) => {
      if (ns === r) records.push(rec);
    },
    flowLost: (_, n) => (lost += n),
    flowHeld: (ns, n) => {
      if (ns === r) held += n;
    },
  });
  assert.ok(watch);
  watch.watch(r);
  await new Promise((res) => setTimeout(res, 600)); // the helper opens the namespace at its next tick
  // Allowed: b refuses tcp/8 (nothing listens), but the SYN passed the router; denied: tcp/9 is dropped.
  await inNs(a, ['busybox', 'nc', '-w', '1', '10.77.2.2', '8']);
  await inNs(a, ['busybox', 'nc', '-w', '1', '10.77.2.2', '9']);
  const key = (x: FlowRecord) => `${x.verdict} ${x.proto} ${x.src} ${x.dst}:${x.dport}`;
  await until(() => records.some((x) => key(x) === 'allow 6 10.77.1.2 10.77.2.2:8') && records.some((x) => key(x) === 'deny 6 10.77.1.2 10.77.2.2:9'),
    `an allowed and a denied connection; got ${records.map(key).join(', ')}`);
  const syn = records.find((x) => x.dport === 8) as FlowRecord;
  assert.ok(syn.sport >= 1024 && syn.sport <= 65535, `the source port is read from the packet: ${syn.sport}`);
  assert.ok(!records.some((x) => x.dport === 8 && x.verdict !== 'allow'), 'one verdict per connection');
  // A flood of denied pings from one source: each is a new connection (none is confirmed), and the
  // per-source limit (20/s, burst 40) passes few of them on; the deny chain's counter counts the rest.
  records.length = 0;
  const t0 = performance.now();
  await inNs(a, ['ping', '-f', '-l', '50', '-c', '500', '-W', '1', '10.77.2.2']);
  const seconds = (performance.now() - t0) / 1000;
  await new Promise((res) => setTimeout(res, 400));
  const pings = records.filter((x) => x.proto === 1 && x.verdict === 'deny').length;
  const bound = 2 * FLOW_LIMITS_DEFAULT.perSource + FLOW_LIMITS_DEFAULT.perSource * (seconds + 0.5);
  assert.ok(pings >= 1 && pings <= bound, `the flood's records are bounded by the per-source limit: ${pings} of 500 in ${seconds.toFixed(1)} s (at most ${bound.toFixed(0)})`);
  const counter = JSON.parse((await inNs(r, ['nft', '-j', 'list', 'counter', 'inet', 'weft', FLOW_HELD])).stdout || '{}');
  const kernel = Number(counter.nftables?.find((x: { counter?: unknown }) => x.counter)?.counter.packets);
  assert.ok(kernel >= 500 - pings, `what the limit held back is counted: ${kernel}`);
  await until(() => held === kernel, `the helper reports what the counter counted: ${held} of ${kernel}`);
  assert.equal(lost, 0, 'nothing lost on the way to the agent');
});
