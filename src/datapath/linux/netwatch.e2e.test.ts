import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { ProcessRunner } from '../../exec/index.js';
import { advance, Generations } from './generation.js';
import { NETWATCH, NetWatch } from './netwatch.js';
import { NftTables } from './nft.js';

const root = process.getuid?.() === 0;
const real = new ProcessRunner();
const tag = `nw${process.pid % 100000}`;
const made: string[] = [];
const watches: NetWatch[] = [];
after(async () => {
  for (const w of watches) w.stop();
  for (const n of made) await real.run(['ip', 'netns', 'del', n], { allowFailure: true });
});

async function netns(n: string): Promise<string> {
  const name = `${tag}-${n}`;
  await real.run(['ip', 'netns', 'add', name]);
  made.push(name);
  return name;
}

/** Resolves when `pred` holds over what was heard, or fails naming what was heard. */
async function heard(log: string[], pred: (l: string[]) => boolean, what: string, ms = 3000): Promise<void> {
  const t0 = performance.now();
  while (!pred(log) && performance.now() - t0 < ms) await new Promise((r) => setTimeout(r, 20));
  assert.ok(pred(log), `${what}; heard: ${log.join(', ')}`);
}

function start(onForeign?: NftTables) {
  const log: string[] = [];
  const w = NetWatch.start(real, {
    generation: (ns, g) => {
      log.push(`gen ${ns} ${g}`);
      onForeign?.observe(ns, g);
    },
    links: (ns) => log.push(`links ${ns}`), gone: (ns) => log.push(`gone ${ns}`), ended: (c) => log.push(`ended ${c}`),
  });
  assert.ok(w, 'the helper runs');
  watches.push(w);
  return { w, log };
}

const skip = !root ? 'needs root' : !existsSync(NETWATCH) ? 'weft-netwatch not built' : false;

test('the watcher reports links, permanent neighbours and tables changed by hand, and not traffic', { skip }, async () => {
  const ns = await netns('a');
  const { w, log } = start();
  w.watch(ns);
  await heard(log, (l) => l.includes(`links ${ns}`) && l.some((x) => x.startsWith(`gen ${ns} `)), 'a namespace is reported once opened');
  log.length = 0;
  await real.run(['ip', '-n', ns, 'link', 'add', 'wb9', 'type', 'bridge']);
  await heard(log, (l) => l.includes(`links ${ns}`), 'a new bridge');
  await real.run(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
  await real.run(['ip', '-n', ns, 'addr', 'add', '10.9.0.1/24', 'dev', 'wb9']);
  await real.run(['ip', '-n', ns, 'link', 'set', 'wb9', 'up']);
  await new Promise((r) => setTimeout(r, 600));
  log.length = 0;
  // Traffic's own bookkeeping (a dynamic neighbour, here a failed ARP for an absent host) is not drift.
  await real.run(['ip', 'netns', 'exec', ns, 'ping', '-c', '2', '-i', '0.2', '-W', '1', '10.9.0.7'], { allowFailure: true });
  await new Promise((r) => setTimeout(r, 600));
  assert.deepEqual(log, [], 'pings and ARP made no event');
  await real.run(['ip', '-n', ns, 'neigh', 'replace', '10.9.0.8', 'lladdr', '02:00:00:00:00:08', 'dev', 'wb9', 'nud', 'permanent']);
  await heard(log, (l) => l.includes(`links ${ns}`), 'a permanent neighbour');
  log.length = 0;
  await real.run(['ip', 'netns', 'exec', ns, 'nft', 'add', 'table', 'inet', 'x']);
  await heard(log, (l) => l.some((x) => x.startsWith(`gen ${ns} `)), 'an nft commit moves the generation');
});

test('our own nft commits are not someone else\'s; a hand-made one is', { skip }, async () => {
  const ns = await netns('b');
  const nft = new NftTables(real, new Generations(real));
  const foreign: Array<string | undefined> = [];
  nft.onForeign = (n) => foreign.push(n);
  const { w, log } = start(nft);
  nft.useGenerations(w.generations);
  w.watch(ns);
  await heard(log, (l) => l.some((x) => x.startsWith(`gen ${ns} `)), 'opened');
  const table = { family: 'inet', name: 'weft', maps: [{ name: 'ok', type: 'ipv4_addr', set: true, interval: false, elements: ['10.0.0.1'] }], chains: [] };
  await nft.ensureAll(ns, [table], true);
  await new Promise((r) => setTimeout(r, 600));
  const before = w.generations.get(ns);
  assert.ok(before, 'the watcher reported the table\'s generation');
  foreign.length = 0;
  for (let i = 2; i < 6; i++) await nft.ensureAll(ns, [{ ...table, maps: [{ ...table.maps[0]!, elements: [`10.0.0.${i}`] }] }], true, { trust: true });
  await heard([], () => w.generations.get(ns) === advance(before, 4), 'the watcher saw our four commits');
  assert.deepEqual(foreign, [], 'four deltas of ours: no drift');
  await real.run(['ip', 'netns', 'exec', ns, 'nft', 'flush', 'set', 'inet', 'weft', 'ok']);
  await heard(foreign, (f) => f.includes(ns), 'a set flushed by hand is drift');
});

test('a watched namespace is let go: deleted by hand it is reported gone and freed; unwatched it is released', { skip }, async () => {
  const a = await netns('c');
  const b = await netns('d');
  const { w, log } = start();
  w.watch(a);
  w.watch(b);
  await heard(log, (l) => l.includes(`links ${a}`) && l.includes(`links ${b}`), 'both opened');
  const held = () => readdirSync(`/proc/${w.pid}/fd`).length;
  const before = held();
  await real.run(['ip', 'netns', 'del', a]);
  await heard(log, (l) => l.includes(`gone ${a}`), 'a namespace deleted by hand is gone');
  await w.unwatch(b);
  assert.ok(held() <= before - 4, `the helper closed both namespaces' sockets (${before} fds before, ${held()} after)`);
  assert.equal(w.epoch(b), undefined);
});
