// What one nft commit costs the agent beside a large policy table, by what the commit carries (issue 13:
// rule change → enforced ≤ 100 ms with 50,000 rules). Root. `npm run bench:nft-commit -- [--shape nested]
// [--sizes 0,10000,50000] [--commits 30]`: for each size, the shape's table (bench:policy-compile's state,
// rendered as the agent renders it: datapath/policy-nft.ts, with flows off) is loaded through weft-nftd into a new
// namespace of its own, then small commits of each kind below are sent through weft-nftd (as the agent's
// changes are), kinds alternated, and their wall time and the helper's own CPU (user, and sys: the
// kernel's part, counted to the process that sent the batch) are reported per commit; then the agent's
// own deltas for three edits (bench:policy-compile's), each made and undone in turn, diffed as a change
// is (keepGone) and committed the same way. The 0-rule table is
// the anchor: what grows with the table is the difference. The namespace is deleted after each size.
//
// Why these kinds: Linux validates a whole table (every chain reachable from its base chains, every
// element of the verdict maps on the way: nft_table_validate) in any transaction that adds a rule with an
// expression that has a validate step (a verdict, meta, ct: nearly every rule) or a jump/goto element to
// a verdict map; a commit of anything else does not. The kinds separate the two.
import { readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { renderFlows } from '../datapath/flows-nft.js';
import { renderPolicy } from '../datapath/policy-nft.js';
import { allMaps, mapBody, tableText, type NftTable } from '../datapath/table.js';
import { diffTables } from '../datapath/table-delta.js';
import { NftSessions } from '../datapath/linux/nftd.js';
import { ProcessRunner } from '../exec/index.js';
import { compilePolicy, type CompiledPolicy } from '../policy/index.js';
import { edited, shapeState, type BenchShape, type Edit } from './policy-compile.js';
import { TestNamespaces } from '../testkit/netns.js';

/** A chain of the bench's own that nothing jumps to, and one that the jump elements name. */
const PROBE = 'wb_probe';
const TARGET = 'wb_target';

interface Kind { name: string; script(i: number): string; elements(i: number): string }

/**
 * The commit kinds, given a verdict map the table's rules look up (bound) with a mark key, and a bound
 * data map from two marks to a mark if the table has one.
 */
function kinds(vmap: string, marks: string | undefined, forward: string): Kind[] {
  // A mark as the kernel holds it (host order: little-endian here), one key per commit, outside the marks the table uses.
  const key = (i: number) => Buffer.from(Uint32Array.of(0x7ffe0000 + i).buffer).toString('hex');
  return [
    { name: 'nothing (an empty transaction)', script: () => 'add table inet weft\n', elements: () => '' },
    ...(marks ? [{ name: 'a mark element into a bound data map (mark . mark : mark)', script: () => '', elements: (i: number) => `map inet weft ${marks}\n${key(i)}${key(i)} =${key(i)}\n` }] : []),
    { name: 'an accept element into a bound verdict map', script: () => '', elements: (i) => `map inet weft ${vmap}\n${key(i)} accept\n` },
    { name: 'a jump element into a bound verdict map', script: () => '', elements: (i) => `map inet weft ${vmap}\n${key(10_000 + i)} jump ${TARGET}\n` },
    { name: 'a rule without a validate step (counter)', script: () => `add chain inet weft ${PROBE} { counter; }\n`, elements: () => '' },
    { name: 'a rule with a verdict (meta mark … accept)', script: (i) => `add chain inet weft ${PROBE} { meta mark ${0x7ffe0000 + i} accept; }\n`, elements: () => '' },
    // As a change whose stage maps are new writes it: its rules look up maps by name, and the multicast
    // rule's two inline sets are new anonymous sets each time.
    { name: 'the forward chain written again, unchanged (flush, add)', script: () => `flush chain inet weft forward\n${forward}`, elements: () => '' },
  ];
}

/** The agent's changes timed: bench:policy-compile's edits, each made and undone in turn. */
const EDITS: { kind: Edit; name: string }[] = [
  { kind: 'wide', name: "the agent's change: a rule without a peer (deny udp/7779) added, removed" },
  { kind: 'peer', name: "the agent's change: a rule from group app (tcp/7780) added, removed" },
  { kind: 'port', name: "the agent's change: a rule's port changed, changed back" },
];

/** The policy's table as the tenant's table has it (datapath/nft.ts), with the chain its denials go to (flows off). */
function tableOf(c: CompiledPolicy): NftTable {
  const nft = renderPolicy(c);
  return { family: 'inet', name: 'weft', maps: nft.maps, ...(nft.shared ? { shared: nft.shared } : {}), chains: [...renderFlows(undefined), ...nft.chains] };
}

/**
 * The forward chain as a delta adds it (table-delta.ts): `add chain` with its lines as a block, after the
 * headers of the maps it names (no-ops for the kernel, so that nft knows them).
 */
function forwardBlock(t: NftTable): string {
  const start = t.chains.indexOf('\tchain forward {');
  const end = t.chains.indexOf('\t}', start);
  if (start < 0 || end < 0) throw new Error('the table has no forward chain');
  const lines = t.chains.slice(start + 1, end);
  const named = new Set(lines.flatMap((l) => [...l.matchAll(/@(\w+)/g)].map((m) => m[1])));
  const headers = allMaps(t).filter((m) => named.has(m.name)).map((m) => `add map inet weft ${m.name} {\n${mapBody({ ...m, elements: [] }).join('\n')}\n}\n`);
  return `${headers.join('')}add chain inet weft forward {\n${lines.join('\n')}\n}\n`;
}

/** The helper process serving `ns` (its network namespace's inode matches). */
function helperPid(ns: string): number | undefined {
  const want = `net:[${statSync(`/run/netns/${ns}`).ino}]`;
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (readFileSync(`/proc/${d}/comm`, 'utf8').trim() === 'weft-nftd' && readlinkSync(`/proc/${d}/ns/net`) === want) return Number(d);
    } catch {
      // It ended meanwhile.
    }
  }
  return undefined;
}

/** User and system CPU of a process, in ms (clock ticks of 10 ms: meaningful over many commits). */
function cpuMs(pid: number): { user: number; sys: number } {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
  return { user: Number(f[11]) * 10, sys: Number(f[12]) * 10 };
}

const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))] ?? NaN;

async function measure(spaces: TestNamespaces, sessions: NftSessions, shape: BenchShape, n: number, commits: number) {
  const state = shapeState(shape, n);
  const compiled = compilePolicy(state);
  const table = tableOf(compiled);
  const text = tableText(table);
  const chains = (text.match(/^\s*chain /gm) ?? []).length;
  // A verdict map with a mark key that a rule looks up (`vmap @name`): elements added to it are bound.
  const vmap = allMaps(table).find((m) => /^mark : verdict$/.test(m.type) && text.includes(`vmap @${m.name}\n`))?.name;
  if (!vmap) throw new Error(`${shape} at ${n} rules: no bound verdict map with a mark key in the table`);
  const marks = allMaps(table).find((m) => m.type === 'mark . mark : mark' && text.includes(`map @${m.name}\n`))?.name;
  const ns = await spaces.add(`nc${n}`);
  const commit = async (script: string, elements = '') => {
    const r = await sessions.commit(ns, script, 600_000, elements);
    if (!r || r.code !== 0) throw new Error(`commit refused in ${ns}: ${r?.stderr ?? 'no helper'}\n${script.slice(0, 300)}`);
  };
  /** Wall time and the helper's CPU of commits, added up per row. */
  const row = () => ({ wall: [] as number[], user: 0, sys: 0 });
  let pid: number | undefined;
  const timed = async (acc: ReturnType<typeof row>, script: string, elements: string) => {
    const c0 = pid ? cpuMs(pid) : undefined;
    const t = performance.now();
    await commit(script, elements);
    acc.wall.push(performance.now() - t);
    const c1 = pid ? cpuMs(pid) : undefined;
    if (c0 && c1) {
      acc.user += c1.user - c0.user;
      acc.sys += c1.sys - c0.sys;
    }
  };
  const summary = (kind: string, acc: ReturnType<typeof row>) => ({ kind, p50: pct(acc.wall, 0.5), p90: pct(acc.wall, 0.9), user: acc.user / commits, sys: acc.sys / commits });
  try {
    const t0 = performance.now();
    await commit(`${text}\nadd chain inet weft ${PROBE}\nadd chain inet weft ${TARGET}\n`);
    const loadMs = performance.now() - t0;
    pid = helperPid(ns);
    const ks = kinds(vmap, marks, forwardBlock(table)).map((k) => ({ ...k, acc: row() }));
    // One untimed round first: the helper's CPU after the load (freeing the script) is not a commit's.
    for (const k of ks) await commit(k.script(commits), k.elements(commits));
    for (let i = 0; i < commits; i++) for (const k of ks) await timed(k.acc, k.script(i), k.elements(i));
    const rows = ks.map((k) => summary(k.name, k.acc));
    // The agent's own deltas: one edit of the middle policy made and undone in turn, each diffed against
    // what the last commit left (keepGone, as a change is written) and committed as the agent commits it.
    let last = { table, compiled };
    for (const edit of EDITS) {
      const acc = row();
      let bytes = 0;
      for (let i = 0; i < commits; i++) {
        const next = compilePolicy({ ...(i % 2 === 0 ? edited(state, edit.kind) : state), previous: last.compiled });
        const nextTable = tableOf(next);
        const delta = diffTables(last.table, nextTable, { keepGone: true, elements: true });
        if (!delta) throw new Error(`${edit.name}: no delta`);
        bytes += delta.script.length + delta.elements.length;
        await timed(acc, delta.script, delta.elements);
        last = { table: delta.table, compiled: next };
      }
      rows.push(summary(`${edit.name} (delta ${(bytes / commits / 1024).toFixed(1)} KiB)`, acc));
    }
    return { chains, loadMs, rows, cpuKnown: pid !== undefined };
  } finally {
    await sessions.release(ns);
    await spaces.removeAll();
  }
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('bench:nft-commit needs root (it makes network namespaces)');
  const args = process.argv.slice(2);
  const opt = (k: string) => { const i = args.indexOf(k); return i < 0 ? undefined : args[i + 1]; };
  const shape = (opt('--shape') ?? 'nested') as BenchShape;
  const sizes = (opt('--sizes') ?? '0,10000,50000').split(',').map(Number);
  const commits = Number(opt('--commits') ?? 30);
  if (!Number.isInteger(commits) || commits < 1 || commits > 1000) throw new Error('--commits: a whole number from 1 to 1000');
  if (sizes.some((s) => !Number.isInteger(s) || s < 0)) throw new Error('--sizes: whole numbers of rules, comma-separated');
  const runner = new ProcessRunner();
  const sessions = NftSessions.create(runner);
  if (!sessions || !(await sessions.usable())) throw new Error('weft-nftd is not built or does not run here (npm run build)');
  const spaces = new TestNamespaces(runner, `wbnc${process.pid % 100000}`);
  const stop = () => void spaces.removeAll().finally(() => process.exit(130));
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  console.log(`${commits} commits of each kind through weft-nftd, kinds alternated; ${shape} shape\n`);
  console.log('| rules | chains | table load | commit kind | wall p50 / p90 | helper CPU per commit: user + sys |');
  console.log('| --- | --- | --- | --- | --- | --- |');
  try {
    for (const n of sizes) {
      const r = await measure(spaces, sessions, shape, n, commits);
      for (const row of r.rows) {
        const cpu = r.cpuKnown ? `${row.user.toFixed(1)} + ${row.sys.toFixed(1)} ms` : '(helper not found)';
        console.log(`| ${n.toLocaleString('en')} | ${r.chains.toLocaleString('en')} | ${r.loadMs.toFixed(0)} ms | ${row.kind} | ${row.p50.toFixed(1)} / ${row.p90.toFixed(1)} ms | ${cpu} |`);
      }
    }
  } finally {
    await sessions.releaseAll();
    await spaces.removeAll();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
