import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { ProcessRunner, type RunOptions, type RunResult, type Runner } from '../../exec/index.js';
import type { NftMap, NftTable } from '../table.js';
import { Generations, NFTGEN } from './generation.js';
import { NftTables, SWEEP_SHARE } from './nft.js';
import { diffTables } from '../table-delta.js';
import { TestNamespaces } from '../../testkit/netns.js';
import type { Endpoint, Rule } from '../../model/index.js';
import { compilePolicy, type CompiledPolicy, type PolicyState } from '../../policy/index.js';
import { renderPolicy } from '../policy-nft.js';
import { policyTableOf } from '../flows-nft.js';

const root = process.getuid?.() === 0;
const real = new ProcessRunner();
const spaces = new TestNamespaces(real, `nd${process.pid % 100000}`);
const netns = (n: string) => spaces.add(n);
after(async () => {
  await spaces.removeAll();
});

class RecordingRunner implements Runner {
  readonly calls: string[] = [];
  run(argv: readonly string[], opts?: RunOptions): Promise<RunResult> {
    this.calls.push(argv.filter((a) => !a.startsWith('--net=')).join(' '));
    return real.run(argv, opts);
  }
}

const nft = (ns: string, ...args: string[]) => real.run(['ip', 'netns', 'exec', ns, 'nft', ...args], { allowFailure: true });

/** A policy-shaped table: a pair map jumping to a chain per pair, each with its port map. */
function table(pairs: Record<string, string[]>, extra: NftMap[] = []): NftTable {
  const keys = Object.keys(pairs).sort();
  return {
    family: 'inet', name: 'weft',
    maps: [
      { name: 'pairs', type: 'mark . mark : verdict', interval: false, elements: keys.map((k) => `${k.replace('_', ' . ')} : jump p_${k}`) },
      ...keys.map((k) => ({ name: `tcp_${k}`, type: 'inet_service : verdict', interval: true, elements: pairs[k] as string[] })),
      ...extra,
    ],
    chains: [
      ...keys.flatMap((k) => [`\tchain p_${k} {`, `\t\ttcp dport vmap @tcp_${k}`, '\t}']),
      '\tchain forward {', '\t\ttype filter hook forward priority filter; policy accept;', '\t\tmeta mark . ct mark vmap @pairs', '\t}',
    ],
  };
}

/** `nft list table` with blocks and elements in a canonical order (hash sets list in hash order). */
async function listing(ns: string): Promise<string> {
  const text = (await nft(ns, 'list', 'table', 'inet', 'weft')).stdout.replace(/\n\t\t\t/g, ' ').replace(/\n\n/g, '\n');
  const blocks = text.split(/\n(?=\t\S)/).map((b) => b.replace(/elements = \{ ([^}]*) \}/, (_, e: string) => `elements = { ${e.split(', ').map((x) => x.trim()).sort().join(', ')} }`));
  return blocks.sort().join('\n');
}

test('a sequence of changes applied as deltas leaves what a replace of the last table leaves', { skip: !root && 'needs root' }, async () => {
  const a = await netns('a');
  const b = await netns('b');
  const tables = new NftTables(real);
  const steps = [
    table({ '1_2': ['80 : accept'] }),
    table({ '1_2': ['80 : accept', '443 : drop'], '3_2': ['22 : accept'] }),
    table({ '3_2': ['22 : accept', '1000-2000 : drop'] }, [{ name: 'extra', type: 'ipv4_addr', set: true, interval: false, elements: ['10.0.0.1', '10.0.0.2'] }]),
    table({ '3_2': [], '4_2': ['53 : accept'] }, [{ name: 'extra', type: 'ipv4_addr', set: true, interval: false, elements: ['10.0.0.2'] }]),
    table({}),
  ];
  assert.equal((await tables.ensureAll(a, [steps[0]!], true))[0], 'replace');
  for (const [i, t] of steps.slice(1).entries()) {
    assert.deepEqual(await tables.ensureAll(a, [t], true), ['delta'], `step ${i + 1} is a delta`);
    assert.equal(await new NftTables(real).ensure(b, t), 'replace');
    assert.equal(await listing(a), await listing(b), `after step ${i + 1}, deltas and a replace agree`);
  }
});

test('a change (trusted) leaves the maps and chains it no longer uses in the kernel, unreferenced; the next full pass deletes them', { skip: !root && 'needs root' }, async () => {
  const a = await netns('k');
  const b = await netns('kr');
  // Full passes delete what changes left once no change came for 400 ms (in the agent, 5 s).
  const tables = new NftTables(real, undefined, undefined, 400);
  const one = table({ '1_2': ['80 : accept'] });
  const two = table({ '3_2': ['22 : accept'] });
  assert.equal((await tables.ensureAll(a, [one], true))[0], 'replace');
  assert.deepEqual(await tables.ensureAll(a, [two], true, { trust: true }), ['delta']);
  const kept = await listing(a);
  assert.match(kept, /map tcp_1_2 \{/, 'the map no longer used is still there');
  assert.match(kept, /chain p_1_2 \{/, 'and the chain');
  await new NftTables(real).ensure(b, two);
  // Nothing live reaches what was kept: the forward chain and the pair map are those of `two`.
  const section = (text: string, head: string) => text.split('\n\t').find((x) => x.startsWith(head)) ?? '';
  for (const head of ['chain forward', 'map pairs']) assert.equal(section(kept, `\t${head}`) || section(kept, head), section(await listing(b), `\t${head}`) || section(await listing(b), head), head);
  // Back to `one`: what was kept is used again as it is.
  assert.deepEqual(await tables.ensureAll(a, [one], true, { trust: true }), ['delta']);
  assert.deepEqual(await tables.ensureAll(a, [two], true, { trust: true }), ['delta']);
  // A full pass (untrusted: the generation read) right after the changes keeps it (a delete makes nft
  // list every chain: a change arriving meanwhile would wait); once changes have paused, one deletes it:
  // the same as a replace of `two`.
  assert.deepEqual(await tables.ensureAll(a, [two], true), ['unchanged']);
  assert.match(await listing(a), /chain p_1_2 \{/, 'kept by a full pass while changes come');
  await new Promise((r) => setTimeout(r, 450));
  assert.deepEqual(await tables.ensureAll(a, [two], true), ['delta']);
  assert.equal(await listing(a), await listing(b), 'after the full pass, nothing is left over');
  assert.deepEqual(await tables.ensureAll(a, [two], true), ['unchanged']);
});

test('what many changes left is swept in shares, oldest first, each full pass asking for the next until none is left', { skip: !root && 'needs root' }, async () => {
  const a = await netns('ks');
  const b = await netns('ksr');
  const tables = new NftTables(real, undefined, undefined, 0);
  const unswept: Array<string | undefined> = [];
  tables.onUnswept = (ns) => unswept.push(ns);
  // Each change leaves its pair's map and chain (two objects): 100 changes leave 200, past one share.
  const at = (i: number) => table({ [`${i}_2`]: [`${1000 + i} : accept`] });
  assert.equal((await tables.ensureAll(a, [at(0)], true))[0], 'replace');
  const changes = 100;
  for (let i = 1; i <= changes; i++) assert.deepEqual(await tables.ensureAll(a, [at(i)], true, { trust: true }), ['delta']);
  assert.ok(2 * changes > SWEEP_SHARE.objects, 'more is left than one share');
  const left = async () => (await listing(a)).match(/\tchain p_\d+_2 \{/g)?.length ?? 0;
  assert.equal(await left(), changes + 1);
  assert.deepEqual(unswept, [], 'changes ask for no sweep');
  // A share is this many changes' leftovers (two objects each).
  const share = SWEEP_SHARE.objects / 2;
  const counts: number[] = [];
  const names: number[][] = [];
  for (let pass = 0; pass < 5 && (counts.at(-1) ?? 2) > 1; pass++) {
    assert.deepEqual(await tables.ensureAll(a, [at(changes)], true), ['delta'], `full pass ${pass} sweeps`);
    counts.push(await left());
    names.push([...(await listing(a)).matchAll(/\tchain p_(\d+)_2 \{/g)].map((m) => Number(m[1])).sort((x, y) => x - y));
  }
  assert.deepEqual(names[0], Array.from({ length: changes + 1 - share }, (_, k) => share + k), 'the newest changes\' chains are those left');
  // The oldest first: the first pass leaves the chains changes 65-100 left (p_64_2 .. p_99_2) beside the
  // live p_100_2, and the second the live one alone.
  assert.equal(counts.length, Math.ceil((2 * changes) / SWEEP_SHARE.objects), `passes: ${counts}`);
  assert.deepEqual(counts, [changes + 1 - share, 1], 'the first pass swept one share, the second the rest');
  assert.deepEqual(unswept, counts.slice(0, -1).map(() => a), 'each pass that left some asked for another, the last did not');
  assert.equal(await new NftTables(real).ensure(b, at(changes)), 'replace');
  assert.equal(await listing(a), await listing(b), 'after the last sweep, what a replace leaves');
  assert.deepEqual(await tables.ensureAll(a, [at(changes)], true), ['unchanged']);
});

test('while changes keep coming, what is older than the age bound costs one share per age and asks for no pass', { skip: !root && 'needs root' }, async () => {
  const a = await netns('ka');
  // Changes never pause here (60 s), and leftovers are "old" after `age`. Each wait below is counted
  // from a moment the test took, not from how long its changes took (a loaded machine is slower).
  const age = 3000;
  const tables = new NftTables(real, undefined, undefined, 60_000, age);
  const unswept: Array<string | undefined> = [];
  tables.onUnswept = (ns) => unswept.push(ns);
  const at = (i: number) => table({ [`${i}_2`]: [`${1000 + i} : accept`] });
  const sleepUntil = (t: number) => new Promise((r) => setTimeout(r, Math.max(0, t - performance.now())));
  assert.equal((await tables.ensureAll(a, [at(0)], true))[0], 'replace');
  assert.deepEqual(await tables.ensureAll(a, [at(1)], true, { trust: true }), ['delta']);
  // The first leftover's age counts from before this moment.
  const first = performance.now();
  assert.deepEqual(await tables.ensureAll(a, [at(1)], true), ['unchanged'], 'young leftovers stay while changes come');
  const changes = 70;
  for (let i = 2; i <= changes; i++) assert.deepEqual(await tables.ensureAll(a, [at(i)], true, { trust: true }), ['delta']);
  const left = async () => (await listing(a)).match(/\tchain p_\d+_2 \{/g)?.length ?? 0;
  await sleepUntil(first + age + 100);
  // A change keeps the stream going; then a full pass past the age sweeps one share.
  assert.deepEqual(await tables.ensureAll(a, [at(changes + 1)], true, { trust: true }), ['delta']);
  assert.deepEqual(await tables.ensureAll(a, [at(changes + 1)], true), ['delta'], 'past the age, a share goes');
  const swept = performance.now();
  const afterOne = await left();
  assert.equal(afterOne, changes + 2 - SWEEP_SHARE.objects / 2, 'one share');
  assert.deepEqual(unswept, [], 'and no pass is asked for while changes come');
  // The age starts again: the next full pass keeps the rest.
  assert.deepEqual(await tables.ensureAll(a, [at(changes + 1)], true), ['unchanged']);
  assert.equal(await left(), afterOne);
  await sleepUntil(swept + age + 100);
  assert.deepEqual(await tables.ensureAll(a, [at(changes + 1)], true), ['delta'], 'an age later, the next share');
  assert.equal(await left(), 1, 'the rest (fewer than a share)');
  assert.deepEqual(unswept, []);
});

test('a rendered policy changed rule by rule: its port chains (a set patched from the last render) go as deltas, what goes stays until a full pass, which leaves what a replace leaves', { skip: !root && 'needs root' }, async () => {
  const a = await netns('cs');
  const b = await netns('csr');
  // A full pass deletes at once what changes left (in the agent, once changes have paused 5 s).
  const tables = new NftTables(real, undefined, undefined, 0);
  const meta = { revision: 1, createdAt: '', updatedAt: '' };
  const ep = (ip: string, group: string): Endpoint => ({ ...meta, id: ip, tenant: 't', network: 'a', group, ip, prefixLength: 16, gateway: '', mac: '', mtu: 1450, vni: 1, host: 'h1', ifname: 'eth0', containerId: ip, labels: {}, state: 'created' });
  // Sources with port ranges (chains of rules), broad prefixes with many ranges (a chain with its interval
  // map), and a policy in audit mode (the audit chain) that comes and goes.
  const base: Rule[] = [
    ...Array.from({ length: 120 }, (_, i): Rule => ({ id: `s${i}`, priority: 5, direction: 'in', action: i % 4 ? 'allow' : 'deny', protocol: 'tcp', ports: `${1000 + 10 * i}-${1004 + 10 * i}`, fromCidr: `10.9.0.${i}/32` })),
    ...Array.from({ length: 20 }, (_, i): Rule => ({ id: `w${i}`, priority: 6, direction: 'in', action: 'allow', protocol: 'tcp', ports: `${3000 + 7 * i}-${3002 + 7 * i}`, fromCidr: '10.9.0.0/16' })),
  ];
  const state = (live: Rule[], audit: boolean, previous?: CompiledPolicy): PolicyState => ({
    tenant: { ...meta, name: 't', id: 1, defaultAction: 'allow' }, networks: [{ ...meta, tenant: 't', name: 'a', subnet: '10.1.0.0/16', gateway: '', encap: 'vxlan', vni: 1, mtu: 1450 }],
    groups: [{ ...meta, tenant: 't', name: 'db', network: 'a', labels: {}, policies: ['base', 'live', ...(audit ? ['audited'] : [])] }],
    policies: [{ ...meta, tenant: 't', name: 'base', rules: base }, { ...meta, tenant: 't', name: 'live', rules: live },
      { ...meta, tenant: 't', name: 'audited', mode: 'audit', rules: [{ id: 'x', priority: 1, direction: 'in', action: 'deny', protocol: 'tcp', ports: '7000-7010', fromCidr: '10.9.0.5/32' }] }],
    endpoints: [ep('10.1.0.2', 'db')], host: 'h1', ...(previous ? { previous } : {}),
  });
  const tableOf = (c: CompiledPolicy): NftTable => policyTableOf(renderPolicy(c));
  const range = (i: number): Rule => ({ id: `l${i}`, priority: 4, direction: 'in', action: 'deny', protocol: 'tcp', ports: `${1001 + 10 * i}-${1003 + 10 * i}`, fromCidr: `10.9.0.${i}/32` });
  let c = compilePolicy(state([], false));
  assert.equal((await tables.ensureAll(a, [tableOf(c)], true))[0], 'replace');
  const chains = async (ns: string) => (await listing(ns)).match(/\tchain pp_/g)?.length ?? 0;
  let patched = 0;
  let kept = 0;
  for (let step = 1; step <= 9; step++) {
    const live = Array.from({ length: step % 5 }, (_, k) => range(k * 7 + step));
    c = compilePolicy(state(live, step % 2 === 1, c));
    const t = tableOf(c);
    if (t.shared?.patch) patched++;
    const trust = step % 3 !== 0;
    assert.deepEqual(await tables.ensureAll(a, [t], true, trust ? { trust: true } : {}), ['delta'], `step ${step} is a delta`);
    if (trust) {
      if (await chains(a) > (t.shared?.chains.filter((x) => x.name.startsWith('pp_')).length ?? 0)) kept++;
      continue;
    }
    assert.equal(await new NftTables(real).ensure(b, t), 'replace');
    assert.equal(await listing(a), await listing(b), `after step ${step} (a full pass), deltas and a replace agree`);
  }
  assert.ok(patched >= 8, `${patched} of 9 renders patched their chain set`);
  assert.ok(kept >= 1, 'some change passes left chains for the full pass');
});

test('a chain rewritten beside a typeof map it names: the map is declared again by its header and the delta commits', { skip: !root && 'needs root' }, async () => {
  const ns = await netns('ty');
  const tables = new NftTables(real);
  const svc = { name: 'svc', type: 'typeof ip daddr . meta l4proto . th dport . numgen random mod 64 : ip daddr . th dport', interval: false, elements: ['10.1.0.9 . tcp . 80 . 0 : 10.1.0.2 . 8080'] };
  const withRule = (extra: string[]) => ({ family: 'inet', name: 'weft', maps: [svc], chains: [
    '\tchain prerouting {', '\t\ttype nat hook prerouting priority dstnat; policy accept;', ...extra,
    '\t\tdnat ip to ip daddr . meta l4proto . th dport . numgen random mod 64 map @svc comment "services"', '\t}',
  ] });
  assert.equal(await tables.ensure(ns, withRule([])), 'replace');
  const next = withRule(['\t\tiifname "x" tcp dport 8443 dnat ip to 10.1.0.3:443']);
  assert.match(diffTables(withRule([]), next)?.script ?? '', /^add map inet weft svc \{\n\t\ttypeof /m, 'the script declares the map by its header');
  assert.equal(await tables.ensure(ns, next, { trustLast: true, owned: true }), 'delta', `committed as a delta (${tables.lastRefusal})`);
  const listed = (await nft(ns, 'list', 'map', 'inet', 'weft', 'svc')).stdout;
  assert.match(listed, /10\.1\.0\.9 \. tcp \. 80 \. 0 : 10\.1\.0\.2 \. 8080/, 'its elements are untouched');
});

test('an untouched namespace costs one generation read; anyone else\'s change, even one element, is replaced', { skip: !root && 'needs root' }, async (t) => {
  const gens = new Generations(real);
  if (!gens.available) return t.skip('dist/weft-netwatch was not built (no C compiler)');
  const ns = await netns('g');
  const rec = new RecordingRunner();
  // Every look reads afresh (no batching window), so each step sees what the one before it did.
  const tables = new NftTables(rec, new Generations(rec, NFTGEN, 0));
  const want = table({ '1_2': ['80 : accept', '443 : drop'] });
  await tables.ensureAll(ns, [want], true);
  rec.calls.length = 0;
  assert.deepEqual(await tables.ensureAll(ns, [want], true), ['unchanged']);
  assert.deepEqual(rec.calls, [`${NFTGEN} /run/netns/${ns}`], 'one exec: the generation, no nft');
  // Our own delta moves the generation by one: still ours, not drift.
  const next = table({ '1_2': ['80 : accept'] });
  assert.deepEqual(await tables.ensureAll(ns, [next], true), ['delta']);
  rec.calls.length = 0;
  assert.deepEqual(await tables.ensureAll(ns, [next], true), ['unchanged']);
  assert.equal(rec.calls.length, 1);

  await nft(ns, 'delete', 'element', 'inet', 'weft', 'tcp_1_2', '{ 80 }');
  assert.doesNotMatch((await nft(ns, 'list', 'map', 'inet', 'weft', 'tcp_1_2')).stdout, /80 : accept/);
  assert.deepEqual(await tables.ensureAll(ns, [next], true), ['replace'], 'someone else committed: the table is replaced');
  assert.match((await nft(ns, 'list', 'map', 'inet', 'weft', 'tcp_1_2')).stdout, /80 : accept/, 'the deleted element is back');
  await nft(ns, 'flush', 'table', 'inet', 'weft');
  assert.deepEqual(await tables.ensureAll(ns, [next], true), ['replace']);
  assert.match(await listing(ns), /meta mark \. ct mark vmap @pairs/, 'the flushed table is back');
});

test('in the host namespace another program\'s table does not make ours be rewritten', { skip: !root && 'needs root' }, async () => {
  const ns = await netns('h');
  const rec = new RecordingRunner();
  const tables = new NftTables(rec, new Generations(rec, NFTGEN, 0));
  const want = table({ '1_2': ['80 : accept'] });
  await tables.ensureAll(ns, [want], false);
  await nft(ns, 'add', 'table', 'ip', 'someone-else');
  rec.calls.length = 0;
  assert.deepEqual(await tables.ensureAll(ns, [want], false), ['unchanged']);
  assert.ok(rec.calls.some((c) => c.includes('nft -t list table inet weft')), 'the generation moved, so our table was compared');
  assert.ok(!rec.calls.some((c) => c.includes('nft -f')), 'and left alone');
});

test('a generation read shared by a pass may predate our own commits: that is not drift', { skip: !root && 'needs root' }, async (t) => {
  if (!new Generations(real).available) return t.skip('dist/weft-netwatch was not built (no C compiler)');
  const ns = await netns('lag');
  const rec = new RecordingRunner();
  const tables = new NftTables(rec);
  assert.deepEqual(await tables.ensureAll(ns, [table({ '1_2': ['80 : accept'] })], true), ['replace']);
  // Within one batch window: the cached generation is from before both commits below.
  assert.deepEqual(await tables.ensureAll(ns, [table({ '1_2': ['81 : accept'] })], true), ['delta']);
  assert.deepEqual(await tables.ensureAll(ns, [table({ '1_2': ['82 : accept'] })], true), ['delta']);
  await new Promise((r) => setTimeout(r, 1100));
  rec.calls.length = 0;
  assert.deepEqual(await tables.ensureAll(ns, [table({ '1_2': ['82 : accept'] })], true), ['unchanged'], 'a fresh read counts our three commits');
  assert.ok(!rec.calls.some((c) => /(^| )nft /.test(c)), `and reads no table: ${rec.calls.join('; ')}`);
});
