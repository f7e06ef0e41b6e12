import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ExecError, ProcessRunner } from '../../exec/index.js';
import type { NftTable } from '../table.js';
import { diffTables } from '../table-delta.js';
import { NftTables } from './nft.js';
import { Generations, NFTGEN } from './generation.js';
import { NFTD, NftSessions } from './nftd.js';
import { TenantDatapath } from './tenant.js';
import { TestNamespaces } from '../../testkit/netns.js';

const root = process.getuid?.() === 0;
const built = existsSync(NFTD);
const real = new ProcessRunner();
const spaces = new TestNamespaces(real, `nfd${process.pid % 100000}`);
const netns = (n: string) => spaces.add(n);
const dir = mkdtempSync(join(tmpdir(), 'weft-nftd-'));
const sessions: NftSessions[] = [];
after(async () => {
  for (const s of sessions) await s.releaseAll();
  await spaces.removeAll();
  rmSync(dir, { recursive: true, force: true });
});

const nft = (ns: string, ...args: string[]) => real.run(['ip', 'netns', 'exec', ns, 'nft', ...args], { allowFailure: true });
const alive = (pid: number) => existsSync(`/proc/${pid}`);

function sessionsOf(): NftSessions {
  const s = NftSessions.create(real);
  assert.ok(s, 'the helper is built and the runner can start it');
  sessions.push(s);
  return s;
}

/** A commit the sessions take (not refused for want of a free helper). */
function commit(s: NftSessions, ns: string | undefined, script: string, timeoutMs = 10_000) {
  const r = s.commit(ns, script, timeoutMs);
  assert.ok(r, 'a helper took the commit');
  return r;
}

const portTable = (ports: string[]): NftTable => ({
  family: 'inet', name: 'weft',
  maps: [{ name: 'tcp_in', type: 'inet_service : verdict', interval: true, elements: ports }],
  chains: ['\tchain forward {', '\t\ttype filter hook forward priority filter; policy accept;', '\t\ttcp dport vmap @tcp_in', '\t}'],
});

test('commits through weft-nftd: a replace, then deltas, leave what `nft -f` of the same tables leaves', { skip: (!root && 'needs root') || (!built && 'dist/weft-nftd was not built') }, async () => {
  const a = await netns('a');
  const b = await netns('b');
  const s = sessionsOf();
  assert.equal(await s.usable(), true, 'the helper starts here (libnftables.so.1 links)');
  const viaHelper = new NftTables(real, undefined, s);
  const viaNft = new NftTables(real);
  const steps = [portTable(['80 : accept']), portTable(['80 : accept', '443 : drop']), portTable(['1000-2000 : drop']), portTable([])];
  for (const [i, t] of steps.entries()) {
    assert.equal(await viaHelper.ensure(a, t, { trustLast: true, owned: true }), i === 0 ? 'replace' : 'delta', `step ${i}`);
    await viaNft.ensure(b, t, { trustLast: true, owned: true });
    assert.equal((await nft(a, 'list', 'table', 'inet', 'weft')).stdout, (await nft(b, 'list', 'table', 'inet', 'weft')).stdout, `after step ${i}`);
  }
  assert.deepEqual(s.running, [a], 'one helper, in the namespace it commits to');
});

/** A policy-like table, version `v`: content-named exact-match maps (elements the helper writes) whose jumps go to a chain of that version. */
const policyTable = (v: number): NftTable => ({
  family: 'inet', name: 'weft',
  maps: [
    { name: `prof_${v}`, type: 'mark . mark : mark', interval: false, elements: [`1 . 2 : 0x${(0x40000000 + v).toString(16)}`, '3 . 2 : 0x40000001', `${512 + v} . 7 : 0x40000002`] },
    { name: `rest_${v}`, type: 'mark : verdict', interval: false, elements: [`0x40000001 : jump pp_${v}`, '0x40000002 : goto deny', `0x${(0x40000100 + v).toString(16)} : accept`] },
    { name: `singles_${v}`, type: 'mark . inet_service : verdict', interval: false, elements: [`0x40000001 . ${8000 + v} : accept`, '0x40000002 . 22 : drop'] },
    { name: `cls6_${v}`, type: 'ipv6_addr : mark', interval: false, elements: [`fd00::${v + 1} : 5`, 'fd00::abcd:1 : 6'] },
    { name: `peers_${v}`, type: 'ipv4_addr . inet_service : verdict', interval: false, elements: [`10.0.${v}.1 . 80 : accept`, '192.168.255.254 . 65535 : drop'] },
    { name: 'tcp_in', type: 'inet_service : verdict', interval: true, elements: [`${1000 + v}-2000 : drop`] },
  ],
  chains: [
    `\tchain pp_${v} {`, '\t\tcounter accept', '\t}',
    '\tchain deny {', '\t\tdrop', '\t}',
    '\tchain forward {', '\t\ttype filter hook forward priority filter; policy accept;',
    `\t\tmeta mark set ip6 daddr map @cls6_${v}`, `\t\tmeta mark set meta mark . ct mark map @prof_${v}`,
    `\t\tmeta mark . tcp dport vmap @singles_${v}`, `\t\tmeta mark vmap @rest_${v}`, `\t\tip daddr . tcp dport vmap @peers_${v}`, '\t\ttcp dport vmap @tcp_in', '\t}',
  ],
});

test('map elements the helper writes itself, in the transaction of the script that declares their maps: the same tables as `nft -f` of the whole text, change after change', { skip: (!root && 'needs root') || (!built && 'dist/weft-nftd was not built') }, async () => {
  const a = await netns('ea');
  const b = await netns('eb');
  const s = sessionsOf();
  // Sweeps at the first full pass after a change (no quiet time asked for).
  const viaHelper = new NftTables(real, undefined, s, 0);
  const viaNft = new NftTables(real, undefined, undefined, 0);
  for (let v = 0; v < 4; v++) {
    const t = policyTable(v);
    if (v > 0) assert.notEqual(diffTables(policyTable(v - 1), t, { elements: true, keepGone: true })?.elements, '', `step ${v} has elements for the helper to write`);
    // The first as a full pass (its generation read: the last pass below trusts the table by it), then changes.
    assert.deepEqual(await viaHelper.ensureAll(a, [t], true, { trust: v > 0 }), [v === 0 ? 'replace' : 'delta'], `step ${v}`);
    await viaNft.ensureAll(b, [t], true, { trust: v > 0 });
    assert.equal((await nft(a, 'list', 'table', 'inet', 'weft')).stdout, (await nft(b, 'list', 'table', 'inet', 'weft')).stdout, `after step ${v}`);
  }
  assert.match((await nft(a, 'list', 'table', 'inet', 'weft')).stdout, /map rest_0 /, 'what the changes left is there');
  // And a full pass that sweeps what the changes left (no keepGone): for the helper, its lines alone, no script.
  let held = policyTable(0);
  for (let v = 1; v < 4; v++) held = (diffTables(held, policyTable(v), { keepGone: true, elements: true }) as { table: NftTable }).table;
  const sweep = diffTables(held, policyTable(3), { elements: true });
  assert.equal(sweep?.script, '', 'nothing for nft');
  assert.match(sweep?.elements ?? '', /^delete map inet weft rest_0$/m);
  assert.deepEqual(await viaHelper.ensureAll(a, [policyTable(3)], true), ['delta']);
  assert.deepEqual(await viaNft.ensureAll(b, [policyTable(3)], true), ['delta']);
  const [left, right] = [(await nft(a, 'list', 'table', 'inet', 'weft')).stdout, (await nft(b, 'list', 'table', 'inet', 'weft')).stdout];
  assert.doesNotMatch(left, /map rest_0 /, 'swept');
  assert.equal(left, right, 'after the sweep');
});

test('elements the kernel refuses undo the whole transaction, script included; malformed element lines are refused before anything is sent; elements alone are a transaction of their own', { skip: (!root && 'needs root') || (!built && 'dist/weft-nftd was not built') }, async () => {
  const ns = await netns('er');
  const s = sessionsOf();
  const withElements = (script: string, elements: string) => {
    const r = s.commit(ns, script, 10_000, elements);
    assert.ok(r, 'a helper took the commit');
    return r;
  };
  assert.equal((await commit(s, ns, 'table inet weft {\n\tchain ok {\n\t}\n\tmap v {\n\t\ttype mark : verdict\n\t}\n}\n')).code, 0);
  const refused = await withElements('add chain inet weft made\nadd map inet weft w { type mark : verdict; }\n', 'map inet weft w\n01000000 jump ok\n02000000 jump nosuch\n');
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /refused what was sent for w: No such file or directory/, 'the error names the map');
  const chains = (await nft(ns, 'list', 'chains', 'inet')).stdout;
  assert.doesNotMatch(chains, /chain made/, 'the script\'s chain was not committed either');
  assert.doesNotMatch((await nft(ns, 'list', 'table', 'inet', 'weft')).stdout, /map w /, 'nor its map');
  const bad = await withElements('add chain inet weft made\n', 'map inet weft v\nzz jump ok\n');
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /element line 2: a key is hex/);
  assert.doesNotMatch((await nft(ns, 'list', 'chains', 'inet')).stdout, /chain made/, 'nothing of a request with a malformed line is committed');
  assert.equal((await withElements('', 'map inet weft v\n05000000 jump ok\n06000000 drop\n')).code, 0, 'elements alone');
  assert.match((await nft(ns, 'list', 'map', 'inet', 'weft', 'v')).stdout, /0x00000005 : jump ok, 0x00000006 : drop|0x00000005 : jump ok,\s+0x00000006 : drop/);
  // What goes, by the helper's lines: a chain still jumped to is refused (and nothing else of it happens).
  const busy = await withElements('add chain inet weft made\n', 'delete map inet weft nosuchmap\ndelete chain inet weft ok\n');
  assert.equal(busy.code, 1);
  assert.match(busy.stderr, /refused what was sent for nosuchmap: No such file or directory/);
  assert.equal((await withElements('', 'flush map inet weft v\ndelete chain inet weft ok\n')).code, 0, 'flushed, the map no longer holds the chain, which goes');
  assert.doesNotMatch((await nft(ns, 'list', 'chains', 'inet')).stdout, /chain ok|chain made/);
  // Elements alone that the kernel refuses, many and large (~60 KB a message): refused, and what they
  // left unread is not blamed on the next request.
  const key = (i: number) => Buffer.from([i & 255, (i >> 8) & 255, 0, 0, 1, 0, 0, 0]).toString('hex');
  const many = Array.from({ length: 6 }, (_, k) => [`map inet weft missing${k}`, ...Array.from({ length: 3_000 }, (_, i) => `${key(i)} drop`)].join('\n')).join('\n');
  const lost = await withElements('', `${many}\n`);
  assert.equal(lost.code, 1, 'refused');
  assert.match(lost.stderr, /refused what was sent for (missing0|\(the kernel's replies\))/);
  assert.equal((await withElements('', 'map inet weft v\n07000000 drop\n')).code, 0, 'the next request alone is fine');
  assert.equal((await commit(s, ns, 'add chain inet weft after\n')).code, 0, 'the helper goes on');
});

test('a script nft refuses is one transaction: nothing of it is committed, the error names the line, and the helper goes on', { skip: (!root && 'needs root') || (!built && 'dist/weft-nftd was not built') }, async () => {
  const ns = await netns('bad');
  const s = sessionsOf();
  assert.equal((await commit(s, ns, 'table inet weft {\n\tchain c {\n\t}\n}\n')).code, 0);
  const r = await commit(s, ns, 'add rule inet weft c tcp dport 1 accept\nadd rule inet weft nosuch tcp dport 2 accept\n');
  assert.equal(r.code, 1);
  assert.match(r.stderr, /No such file or directory/);
  assert.match(r.stderr, /add rule inet weft nosuch tcp dport 2 accept/, 'the refused line is quoted');
  assert.doesNotMatch((await nft(ns, 'list', 'chain', 'inet', 'weft', 'c')).stdout, /dport 1/, 'the valid first line was not committed either');
  assert.equal((await commit(s, ns, 'add rule inet weft c tcp dport 3 accept\n')).code, 0, 'the next script commits');
  assert.match((await nft(ns, 'list', 'chain', 'inet', 'weft', 'c')).stdout, /dport 3 accept/);
  // Through NftTables, a refused script without allowFailure is an ExecError with nft's words, as `nft -f`'s is.
  await assert.rejects(new NftTables(real, undefined, s).ensure(ns, { family: 'inet', name: 'weft', maps: [], chains: ['\tchain c {', '\t\tjump nowhere', '\t}'] }), (e: unknown) => e instanceof ExecError && /nowhere/.test(e.stderr));
});

test('released, the helper has ended before the namespace is deleted (it would hold it alive)', { skip: (!root && 'needs root') || (!built && 'dist/weft-nftd was not built') }, async () => {
  const ns = await netns('rel');
  const s = sessionsOf();
  await commit(s, ns, 'table inet weft {\n}\n');
  const pids = (await real.run(['ip', 'netns', 'pids', ns])).stdout.trim().split('\n').filter(Boolean).map(Number);
  assert.equal(pids.length, 1, `one process in the namespace: the helper (${pids.join(', ')})`);
  await s.release(ns);
  assert.ok(!alive(pids[0] as number), 'the helper ended');
  assert.equal((await real.run(['ip', 'netns', 'pids', ns])).stdout.trim(), '', 'nothing holds the namespace');
  assert.deepEqual(s.running, []);
  // A later commit starts a new helper.
  assert.equal((await commit(s, ns, 'add table inet weft2\n')).code, 0);
  assert.match((await nft(ns, 'list', 'tables')).stdout, /weft2/);
});

/** A stand-in helper (node) that answers the usability check and then misbehaves as told. */
function fakeHelper(name: string, body: string): string {
  const file = join(dir, name);
  writeFileSync(file, `#!${process.execPath}\nlet got = '';\nprocess.stdin.on('data', (d) => { got += d; ${body} });\nprocess.stdin.on('end', () => process.exit(0));\n`);
  chmodSync(file, 0o755);
  return file;
}

test('a helper that does not answer is stopped at the timeout; one that dies mid-commit fails the commit as unknown', async () => {
  const hang = NftSessions.create(real, fakeHelper('hang.mjs', ''));
  assert.ok(hang);
  sessions.push(hang);
  assert.equal(await hang.usable(), true);
  const t0 = performance.now();
  await assert.rejects(commit(hang, undefined, 'add table inet x\n', 300), (e: unknown) => e instanceof ExecError && /no answer within 300 ms/.test(e.stderr));
  assert.ok(performance.now() - t0 < 5_000);
  const die = NftSessions.create(real, fakeHelper('die.mjs', "if (got.includes('\\n')) process.exit(3);"));
  assert.ok(die);
  sessions.push(die);
  await assert.rejects(commit(die, undefined, 'add table inet x\n'), (e: unknown) => e instanceof ExecError && /whether it was committed is unknown/.test(e.stderr));
  assert.deepEqual(die.running, [], 'the dead helper is not used again');
});

test('at most `max` helpers: the least recently used idle one is let go for a new namespace; when all are busy the commit is left to `nft -f`', { skip: !root && 'needs root' }, async () => {
  const [a, b, c] = [await netns('ma'), await netns('mb'), await netns('mc')];
  const ok = NftSessions.create(real, fakeHelper('ok.mjs', "if (got.includes('\\n', got.indexOf('\\n') + 1)) { got = ''; process.stdout.write('ok\\n'); }"), 2);
  assert.ok(ok);
  sessions.push(ok);
  await commit(ok, a, 'x');
  await commit(ok, b, 'x');
  await commit(ok, a, 'x');
  await commit(ok, c, 'x');
  assert.deepEqual(ok.running.sort(), [a, c].sort(), 'b, used least recently, was let go');
  const hang = NftSessions.create(real, fakeHelper('hang2.mjs', ''), 2);
  assert.ok(hang);
  sessions.push(hang);
  const pending = [hang.commit(a, 'x', 60_000), hang.commit(b, 'x', 60_000)];
  assert.equal(hang.commit(c, 'x', 60_000), undefined, 'both helpers busy: no third');
  for (const p of pending) p?.catch(() => undefined);
  await hang.releaseAll();
  assert.deepEqual(hang.running, []);
});

test('an answer that comes after its commit timed out goes to no other commit: the ones queued behind fail as unknown', async () => {
  // A helper that answers each script after 300 ms and, told to stop, still answers before it ends.
  const file = join(dir, 'late.mjs');
  writeFileSync(file, `#!${process.execPath}\nlet got = '';\nprocess.on('SIGTERM', () => undefined);\nprocess.stdin.on('end', () => setTimeout(() => process.exit(0), 1000));\nprocess.stdin.on('data', (d) => { got += d; if (got.includes('\\n', got.indexOf('\\n') + 1)) { got = ''; setTimeout(() => process.stdout.write('ok\\n'), 300); } });\n`);
  chmodSync(file, 0o755);
  const late = NftSessions.create(real, file);
  assert.ok(late);
  sessions.push(late);
  const a = commit(late, undefined, 'a', 200);
  const b = commit(late, undefined, 'b', 5_000);
  await assert.rejects(a, /no answer within 200 ms/);
  await assert.rejects(b, (e: unknown) => e instanceof ExecError, 'the next commit is not answered by the first one\'s late "ok"');
  // A commit after that goes to a new helper, and gets its own answer.
  assert.equal((await commit(late, undefined, 'c', 5_000)).code, 0);
});

test('a tenant namespace deleted by someone else and made again: commits go to the new one, not through a helper left in the old', { skip: (!root && 'needs root') || (!built && 'dist/weft-nftd was not built') }, async () => {
  const s = sessionsOf();
  const tables = new NftTables(real, undefined, s);
  const td = new TenantDatapath(real, tables);
  const ns = `${spaces.tag}-again`;
  spaces.adopt(ns);
  assert.equal(await td.ensureNamespace(ns), true);
  await tables.ensure(ns, portTable(['80 : accept']), { trustLast: true, owned: true });
  await real.run(['ip', 'netns', 'del', ns]);
  assert.equal(await td.ensureNamespace(ns), true, 'made again');
  await tables.ensure(ns, portTable(['81 : accept']), { owned: true });
  assert.match((await nft(ns, 'list', 'table', 'inet', 'weft')).stdout, /81 : accept/, 'the table is in the namespace that exists');
});

test('after a replace the helper is sent a no-op to fetch its cache: it moves no generation, so one foreign change is still foreign', { skip: (!root && 'needs root') || (!built && 'dist/weft-nftd was not built') }, async (t) => {
  const gens = new Generations(real, NFTGEN, 0);
  if (!gens.available) return t.skip('dist/weft-netwatch was not built (no C compiler)');
  const ns = await netns('w');
  const s = sessionsOf();
  const tables = new NftTables(real, gens, s);
  const want = portTable(['80 : accept', '443 : drop']);
  assert.deepEqual(await tables.ensureAll(ns, [want], true), ['replace']);
  const before = await gens.read(ns);
  // Queued behind the no-op: once this answers, the no-op has been committed.
  assert.equal((await commit(s, ns, 'add table inet weft\n')).code, 0);
  assert.equal(await gens.read(ns), before, 'the no-op is not a transaction: the generation stands');
  assert.deepEqual(await tables.ensureAll(ns, [want], true), ['unchanged'], 'our replace and its no-op are ours: nothing to do');
  await nft(ns, 'delete', 'element', 'inet', 'weft', 'tcp_in', '{ 80 }');
  assert.deepEqual(await tables.ensureAll(ns, [want], true), ['replace'], 'one element deleted by someone else: seen, replaced');
  assert.match((await nft(ns, 'list', 'map', 'inet', 'weft', 'tcp_in')).stdout, /80 : accept/);
});
