import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { startLineProcess, type LineProcess, type Runner, type RunOptions } from '../../exec/index.js';
import { Generations } from './generation.js';
import { NETWATCH, NetWatch, parseFlow, type NetEvents } from './netwatch.js';
import { NftTables } from './nft.js';

/** A runner whose helper is scripted: `say` is its standard output, `sent` its standard input. */
function scripted() {
  const sent: string[] = [];
  let say: (l: string) => void = () => undefined;
  let exit: (c: number) => void = () => undefined;
  const nft: Array<() => void> = [];
  const runner: Runner = {
    run: async (argv: readonly string[], _o?: RunOptions) => {
      // An `nft -f` finishes only when the test says so: the watcher may speak while it runs.
      if (argv.includes('-f')) await new Promise<void>((r) => nft.push(r));
      return { code: 0, stdout: argv[0] === process.execPath ? '7 10\n' : '', stderr: '' };
    },
    start: (_argv, onLine, onExit): LineProcess => {
      say = onLine;
      exit = onExit;
      return { pid: 1, send: (l) => sent.push(l), stop: () => undefined };
    },
  };
  return { runner, sent, say: (l: string) => say(l), exit: (c: number) => exit(c), finishNft: () => nft.shift()?.() };
}

function recorder() {
  const seen: string[] = [];
  const events: NetEvents = {
    generation: (ns, g) => seen.push(`gen ${ns ?? '.'} ${g}`), links: (ns) => seen.push(`links ${ns ?? '.'}`),
    gone: (ns) => seen.push(`gone ${ns ?? '.'}`), ended: (c) => seen.push(`ended ${c}`),
  };
  return { seen, events };
}

test('the helper\'s lines become events for watched namespaces only; malformed lines are ignored', async () => {
  const s = scripted();
  const r = recorder();
  const w = NetWatch.start(s.runner, r.events, process.execPath);
  assert.ok(w);
  w.watch('t1');
  w.watch(undefined);
  w.watch('t1');
  assert.deepEqual(s.sent, ['+t1', '+.'], 'asked once per namespace');
  assert.equal(w.epoch('t1'), undefined, 'nothing is believed about a namespace the helper does not hold yet');
  for (const l of ['gen t1 4026532244 3', 'link t1', 'gen . 1 9', 'link other', 'gen t1 x 4', 'gen ../x 1 1', 'bogus', '']) s.say(l);
  assert.deepEqual(r.seen, ['gen t1 4026532244:3', 'links t1', 'gen . 1:9']);
  assert.equal(w.generations.get('t1'), '4026532244:3');
  assert.equal(w.epoch('t1'), 1);
  s.say('gone t1');
  assert.equal(w.epoch('t1'), undefined, 'a namespace gone is not held');
  assert.equal(w.generations.get('t1'), undefined, 'nor is its generation kept');
  const unwatched = w.unwatch('t1');
  assert.deepEqual(s.sent.slice(-1), ['-t1']);
  s.say('unwatched t1');
  await unwatched;
  s.exit(0);
  assert.equal(w.running, false);
  assert.deepEqual(r.seen.slice(-2), ['gone t1', 'ended 0']);
  assert.equal(NetWatch.start({ run: s.runner.run }, r.events, process.execPath), undefined, 'a runner without start has no watcher');
  assert.equal(NetWatch.start(s.runner, r.events, '/nonexistent/weft-netwatch'), undefined, 'nor does a machine without the helper');
});

test('a reported generation is someone else\'s only past our own commits, also when it arrives during one', async () => {
  const s = scripted();
  // Generations looks for its helper by path: any existing file will do, its answers are scripted.
  const nft = new NftTables(s.runner, new Generations(s.runner, process.execPath));
  const foreign: Array<string | undefined> = [];
  nft.onForeign = (ns) => foreign.push(ns);
  const table = { family: 'inet', name: 'weft', maps: [], chains: [] };
  // The first look reads generation 7:10 and writes the table: one commit of ours, expected 7:11.
  const first = nft.ensureAll('t1', [table], true);
  await new Promise((r) => setImmediate(r));
  nft.observe('t1', '7:11');
  assert.deepEqual(foreign, [], 'a report during our own commit waits for it');
  s.finishNft();
  await first;
  assert.deepEqual(foreign, [], 'and is then ours');
  nft.observe('t1', '7:10');
  assert.deepEqual(foreign, [], 'an older report is behind our commits, not drift');
  nft.observe('t1', '7:12');
  assert.deepEqual(foreign, ['t1'], 'one past our commits is someone else\'s');
  nft.observe('t9', '3:1');
  assert.deepEqual(foreign, ['t1', 't9'], 'a namespace never verified is reported');
});

test('the helper drops a line too long for any command whole, not just its first part', { skip: !existsSync(NETWATCH) && 'weft-netwatch not built' }, async () => {
  const out: string[] = [];
  const ended = new Promise<number>((resolve) => {
    const p = startLineProcess([NETWATCH], (l) => out.push(l), resolve);
    // 255 bytes fill its line buffer; what follows up to the newline would read as the command "-abc".
    p.send(`${'0'.repeat(255)}-abc`);
    p.send('-def');
    setTimeout(() => p.stop(), 300);
  });
  await ended;
  assert.deepEqual(out, ['unwatched def']);
});

test('a container namespace is watched for its flow records by its path; only well-formed paths are sent', () => {
  const s = scripted();
  const { seen, events } = recorder();
  const flows: string[] = [];
  const w = NetWatch.start(s.runner, { ...events, flow: (ns, r) => flows.push(`${ns} ${r.verdict} ${r.src}:${r.sport} ${r.dst}:${r.dport}`) }, process.execPath) as NetWatch;
  for (const bad of ['relative/path', '/a/../b', '/x y', `/${'a'.repeat(200)}`]) w.watchFlows(bad);
  w.watchFlows('/run/netns/cni-1234');
  w.watchFlows('/run/netns/cni-1234');
  assert.deepEqual(s.sent, ['*/run/netns/cni-1234'], 'each path once, bad ones never');
  s.say('flow /run/netns/cni-1234 d 6 192.168.50.3 40000 192.168.50.2 8888');
  s.say('flow /run/netns/other a 6 192.168.50.3 40000 192.168.50.2 8888');
  assert.deepEqual(flows, ['/run/netns/cni-1234 deny 192.168.50.3:40000 192.168.50.2:8888'], 'only from a watched path');
  s.say('gone /run/netns/cni-1234');
  assert.deepEqual(seen, ['gone /run/netns/cni-1234']);
});

test('flowsOpen waits until the helper opened a container namespace (its flow socket bound), or it is gone, or the time is up', async () => {
  const s = scripted();
  const { events } = recorder();
  const w = NetWatch.start(s.runner, events, process.execPath) as NetWatch;
  w.watchFlows('/run/netns/cni-77');
  let opened = false;
  const p = w.flowsOpen('/run/netns/cni-77', 5000).then(() => (opened = true));
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(opened, false, 'not yet: the helper has not opened it');
  s.say('link /run/netns/cni-77');
  await p;
  assert.equal(opened, true);
  const t0 = Date.now();
  await w.flowsOpen('/run/netns/cni-77', 5000);
  assert.ok(Date.now() - t0 < 100, 'already open: at once');
  w.watchFlows('/run/netns/cni-78');
  const t1 = Date.now();
  await w.flowsOpen('/run/netns/cni-78', 200);
  assert.ok(Date.now() - t1 >= 190, 'never opened: the time is up');
});

test('flow lines: IPv4 and IPv6 addresses (the latter in RFC 5952 text, as endpoints hold them); anything else is refused', () => {
  assert.deepEqual(parseFlow(['a', '6', 'fd00:1:2::3', '40000', 'FD00:1:2:0::5', '5201'], 7), { at: 7, verdict: 'allow', proto: 6, src: 'fd00:1:2::3', sport: 40000, dst: 'fd00:1:2::5', dport: 5201 });
  assert.equal(parseFlow(['d', '58', 'fd00::3', '0', 'fd00::4', '0'], 7)?.proto, 58);
  for (const bad of [['a', '6', 'fd00::zz', '1', 'fd00::5', '2'], ['a', '6', 'fd00:1', '1', 'fd00::5', '2'], ['a', '6', '10.0.0.1', '1', 'fe80::1%eth0', '2'], ['a', '6', '10.0.0.256', '1', '10.0.0.2', '2']]) {
    assert.equal(parseFlow(bad, 7), undefined, bad.join(' '));
  }
});

test('the helper takes "*PATH" for a container\'s flow records and "-PATH" to let go; malformed paths are refused', { skip: !existsSync(NETWATCH) && 'weft-netwatch not built' }, async () => {
  const out: string[] = [];
  const ended = new Promise<number>((resolve) => {
    const p = startLineProcess([NETWATCH], (l) => out.push(l), resolve);
    p.send('*/nonexistent/ns-path');
    p.send('*/a/../b');
    p.send('+/run/netns/x');
    p.send('-/nonexistent/ns-path');
    setTimeout(() => p.stop(), 600);
  });
  await ended;
  assert.deepEqual(out, ['unwatched /nonexistent/ns-path'], 'a path not there yet is simply not opened; "+" takes names only, ".." never');
});
