import { test } from 'node:test';
import assert from 'node:assert/strict';
import { blocksOf, diffTables, ELEMENT_COMMANDS_MAX, KEEP_MAX_OBJECTS } from './table-delta.js';
import { applyScript, contentOf } from './script-model.js';
import type { NftMap, NftTable } from './table.js';

/** The change each leftover went at, every kind. */
const wentAt = (t: NftTable): number[] => {
  const s = t.leftover?.since;
  return s ? [...s.chains.values(), ...s.maps.values(), ...s.shared.values()] : [];
};

const map = (name: string, elements: string[]): NftMap => ({ name, type: 'inet_service : verdict', interval: true, elements });
const chain = (name: string, ...rules: string[]) => [`\tchain ${name} {`, ...rules.map((r) => `\t\t${r}`), '\t}'];
const forward = chain('forward', 'type filter hook forward priority filter; policy accept;', 'meta mark . ct mark vmap @pairs');
const table = (maps: NftMap[], chains: string[]): NftTable => ({ family: 'inet', name: 'weft', maps, chains });
const pairs = (...jumps: string[]) => ({ name: 'pairs', type: 'mark . mark : verdict', interval: false, elements: jumps.map((k) => `${k.replace('_', ' . ')} : jump p_${k}`) });

const one = table([pairs('1_2'), map('tcp_1_2', ['80 : accept'])], [...chain('p_1_2', 'tcp dport vmap @tcp_1_2'), ...forward]);

/** A delta as the tests compare it: its script and whether it is structural. */
const brief = (d: ReturnType<typeof diffTables>) => d && { structural: d.structural, script: d.script };

test('a new pair: its chain exists before the pair map jumps to it, its map before the chain uses it; nothing else is touched', () => {
  const two = table([pairs('1_2', '3_2'), map('tcp_1_2', ['80 : accept']), map('tcp_3_2', ['443 : drop'])],
    [...chain('p_1_2', 'tcp dport vmap @tcp_1_2'), ...chain('p_3_2', 'tcp dport vmap @tcp_3_2'), ...forward]);
  const d = diffTables(one, two);
  assert.equal(d?.structural, true);
  assert.equal(d?.script, [
    'add chain inet weft p_3_2',
    'flush map inet weft pairs',
    'add map inet weft pairs {', '\t\ttype mark . mark : verdict', '\t\telements = { 1 . 2 : jump p_1_2,\n\t\t\t3 . 2 : jump p_3_2 }', '}',
    'add map inet weft tcp_3_2 {', '\t\ttype inet_service : verdict', '\t\tflags interval', '\t\telements = { 443 : drop }', '}',
    'add chain inet weft p_3_2 {', '\t\ttcp dport vmap @tcp_3_2', '}',
    '',
  ].join('\n'));
  assert.doesNotMatch(d!.script, /tcp_1_2|forward/, 'the unchanged pair and chain are not written');
  assert.doesNotMatch(d!.script, /^table |^add rule /m, 'no table block and no add rule: nft would list every chain of the table for either');
  const r = applyScript(one, d!.script);
  assert.deepEqual([r.problems, r.inPlace], [[], ['pairs']]);
  assert.equal(contentOf(r.table), contentOf(two));
});

test('a pair that goes: the jump to it goes first, then its chain\'s rules, its map, and the chain', () => {
  const none = table([pairs()], forward);
  assert.deepEqual(brief(diffTables(one, none)), { structural: true, script: [
    'flush map inet weft pairs',
    'flush chain inet weft p_1_2', 'delete map inet weft tcp_1_2', 'delete chain inet weft p_1_2', '',
  ].join('\n') });
});

test('a map under a new name is written beside the old one, the chains are pointed at it, then the old one and the chains it jumped to go', () => {
  const next = table([{ ...pairs('3_2'), name: 'pairs_new' }, map('tcp_3_2', ['443 : drop'])],
    [...chain('p_3_2', 'tcp dport vmap @tcp_3_2'), ...chain('forward', 'type filter hook forward priority filter; policy accept;', 'meta mark . ct mark vmap @pairs_new')]);
  const d = diffTables(one, next);
  assert.ok(d);
  const lines = d.script.split('\n');
  const at = (line: string) => {
    const i = lines.indexOf(line);
    assert.ok(i >= 0, `the script has "${line}"`);
    return i;
  };
  assert.ok(at('add map inet weft pairs_new {') < at('add chain inet weft forward {'), 'the new map is filled before the chain refers to it');
  assert.ok(at('flush chain inet weft forward') < at('add chain inet weft forward {'), 'the chain is rewritten');
  assert.ok(at('add chain inet weft forward {') < at('flush map inet weft pairs'), 'the old map is emptied only after the chain left it');
  assert.ok(at('flush map inet weft pairs') < at('delete map inet weft pairs'), 'and emptied before it goes: its jumps are released on older kernels too');
  assert.ok(at('delete map inet weft pairs') < at('delete chain inet weft p_1_2'), 'then the chain its elements jumped to');
  assert.ok(at('flush chain inet weft p_1_2') < at('delete map inet weft tcp_1_2') && at('delete map inet weft tcp_1_2') < at('delete chain inet weft p_1_2'));
  // The same, as the kernel's checks see it (script-model.ts, with pre-6.4 reference counting).
  const r = applyScript(one, d.script);
  assert.deepEqual([r.problems, r.inPlace], [[], []], 'nothing refused, no map in use rewritten');
  assert.equal(contentOf(r.table), contentOf(next), 'the result is the next table');
});

test('the kernel model refuses what the kernel refuses: a chain deleted while an unflushed deleted map still jumps to it', () => {
  const r = applyScript(one, ['flush chain inet weft forward', 'delete map inet weft pairs', 'flush chain inet weft p_1_2', 'delete chain inet weft p_1_2', ''].join('\n'));
  assert.match(r.problems.join('; '), /delete of chain p_1_2, which a deleted map still jump to/);
  const flushed = applyScript(one, ['flush chain inet weft forward', 'flush map inet weft pairs', 'delete map inet weft pairs', 'flush chain inet weft p_1_2', 'delete chain inet weft p_1_2', ''].join('\n'));
  assert.deepEqual(flushed.problems, []);
  assert.deepEqual(applyScript(one, 'flush map inet weft pairs\n').inPlace, ['pairs'], 'a flush of a map the forward chain uses is in place');
});

test('a changed chain is flushed and written again, keeping its hook', () => {
  const next = table(one.maps, [...chain('p_1_2', 'tcp dport vmap @tcp_1_2'), ...chain('forward', 'type filter hook forward priority filter; policy accept;', 'ct state established,related accept', 'meta mark . ct mark vmap @pairs')]);
  const d = diffTables(one, next);
  assert.equal(d!.script, [
    'flush chain inet weft forward',
    // The map the chain looks up, declared again by its header: nft knows only the maps a script declares.
    'add map inet weft pairs {', '\t\ttype mark . mark : verdict', '}',
    'add chain inet weft forward {', '\t\ttype filter hook forward priority filter; policy accept;', '\t\tct state established,related accept', '\t\tmeta mark . ct mark vmap @pairs', '}', '',
  ].join('\n'));
  const r = applyScript(one, d!.script);
  assert.deepEqual(r.problems, []);
  assert.equal(contentOf(r.table), contentOf(next));
  assert.deepEqual(applyScript(one, d!.script.replace(/add map inet weft pairs \{\n.*\n\}\n/, '')).problems, ['a rule of forward looks up map pairs, which the script does not declare (nft: No such file or directory)'],
    'without the header nft would refuse the chain');
});

test('a new base chain is made with its hook; unchanged tables give an empty script', () => {
  const next = table(one.maps, [...one.chains, ...chain('prerouting', 'type nat hook prerouting priority dstnat; policy accept;', 'masquerade')]);
  assert.match(diffTables(one, next)!.script, /^add chain inet weft prerouting \{ type nat hook prerouting priority dstnat; policy accept; \}\n/);
  assert.deepEqual(brief(diffTables(one, { ...one, maps: one.maps.map((m) => ({ ...m, elements: [...m.elements] })) })), { structural: false, script: '' });
});

test('what cannot change in place needs a replace: a map type, a hook, a counter, another table', () => {
  assert.equal(diffTables(one, table([pairs('1_2'), { ...map('tcp_1_2', []), interval: false }], one.chains)), undefined);
  assert.equal(diffTables(one, table(one.maps, [...chain('p_1_2', 'tcp dport vmap @tcp_1_2'), ...chain('forward', 'type filter hook input priority filter; policy accept;')])), undefined);
  const counted = table(one.maps, [...one.chains, '\tcounter spoofed {', '\t}']);
  assert.equal(diffTables(one, counted), undefined, 'a new counter');
  assert.equal(diffTables(counted, one), undefined, 'a counter gone');
  assert.deepEqual(brief(diffTables(counted, counted)), { structural: false, script: '' }, 'an unchanged counter is fine');
  assert.equal(diffTables(one, { ...one, family: 'bridge' }), undefined);
});

test('malformed chain text is refused loudly, not half applied', () => {
  assert.throws(() => diffTables(one, table(one.maps, ['\t\tdrop'])), /start with/);
  assert.throws(() => diffTables(one, table(one.maps, ['\tchain x {', '\t\tdrop'])), /not closed/);
});

test('a set in a small table changes by element commands, not a rewrite of every element', () => {
  const guard = (eps: string[]): NftTable => ({ family: 'bridge', name: 'weft', maps: [{ name: 'endpoints', type: 'ifname . ipv4_addr . ether_addr', set: true, interval: false, elements: eps }], chains: [] });
  const ep = (i: number) => `"we${i}" . 10.1.${i >> 8}.${i & 255} . 02:00:00:00:${(i >> 8).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`;
  const many = Array.from({ length: 5000 }, (_, i) => ep(i));
  const one = diffTables(guard(many), guard([...many, ep(5000)]));
  assert.equal(one?.script, `add element bridge weft endpoints { ${ep(5000)} }\n`, 'an ADD writes its own tuple only');
  const gone = diffTables(guard(many), guard(many.filter((_, i) => i !== 7)));
  assert.equal(gone?.script, `delete element bridge weft endpoints { ${ep(7)} }\n`);
  const both = diffTables(guard(many), guard([...many.slice(1), ep(6000)]));
  assert.ok(both);
  const r = applyScript(guard(many), both.script);
  assert.deepEqual(r.problems, []);
  assert.equal(contentOf(r.table), contentOf(guard([...many.slice(1), ep(6000)])), 'the result is the next set');
  // A set that changes more than it keeps, and any set of a big table, is rewritten whole.
  assert.match(diffTables(guard(many.slice(0, 10)), guard(many.slice(10, 30)))?.script ?? '', /^flush set bridge weft endpoints$/m);
  const big = Array.from({ length: ELEMENT_COMMANDS_MAX + 1 }, (_, i) => ep(i));
  assert.match(diffTables(guard(big), guard([...big, ep(99_999)]))?.script ?? '', /^flush set bridge weft endpoints$/m);
  // Maps keep the flush and refill (a changed value would be the same key deleted and added at once).
  const m = (els: string[]): NftTable => ({ family: 'inet', name: 'weft', maps: [{ name: 'svc', type: 'ipv4_addr : verdict', interval: false, elements: els }], chains: [] });
  assert.match(diffTables(m(['10.0.0.1 : accept', '10.0.0.2 : drop']), m(['10.0.0.1 : accept', '10.0.0.2 : drop', '10.0.0.3 : drop']))?.script ?? '', /^flush map inet weft svc$/m);
});

test('keepGone: what a change no longer uses stays, unreferenced, and is used again when it comes back; a delta without it deletes it; past the bound it goes at once', () => {
  const next = table([{ ...pairs('3_2'), name: 'pairs_new' }, map('tcp_3_2', ['443 : drop'])],
    [...chain('p_3_2', 'tcp dport vmap @tcp_3_2'), ...chain('forward', 'type filter hook forward priority filter; policy accept;', 'meta mark . ct mark vmap @pairs_new')]);
  const d = diffTables(one, next, { keepGone: true });
  assert.ok(d);
  assert.doesNotMatch(d.script, /^delete /m, 'nothing deleted');
  assert.equal(d.kept, 3, 'the old pair map, its port map and its chain');
  const r = applyScript(one, d.script);
  assert.deepEqual(r.problems, []);
  assert.equal(contentOf(r.table), contentOf(d.table), 'the table it reports is what the kernel holds');
  // Back: the kept map and chain serve again; only the forward chain changes (and the new ones stay).
  const back = diffTables(d.table, one, { keepGone: true });
  assert.ok(back);
  assert.doesNotMatch(back.script, /elements/, 'no map is written again');
  assert.deepEqual(applyScript(d.table, back.script).problems, []);
  // Without keepGone (a full pass), everything no longer used goes, in an order the kernel accepts.
  const sweep = diffTables(d.table, next);
  assert.ok(sweep);
  assert.match(sweep.script, /^delete map inet weft pairs$/m);
  const swept = applyScript(d.table, sweep.script);
  assert.deepEqual(swept.problems, []);
  assert.equal(contentOf(swept.table), contentOf(next));
  // Up to the bound all that is gone stays; past it (KEEP_MAX_OBJECTS), all of it goes in the same change.
  const maps = (n: number) => table([pairs(), ...Array.from({ length: n }, (_, i) => map(`m${i}`, ['1 : accept']))], forward);
  const atBound = diffTables(maps(KEEP_MAX_OBJECTS), table([pairs()], forward), { keepGone: true });
  assert.equal(atBound?.kept, KEEP_MAX_OBJECTS);
  assert.doesNotMatch(atBound?.script ?? '', /^delete /m);
  const big = diffTables(maps(KEEP_MAX_OBJECTS + 1), table([pairs()], forward), { keepGone: true });
  assert.equal(big?.kept, 0);
  assert.equal(big?.script.match(/^delete map /gm)?.length, KEEP_MAX_OBJECTS + 1);
  // A base chain that goes is deleted at once, keepGone or not: on its hook it would go on filtering.
  const noForward = table([pairs()], []);
  const unhooked = diffTables(table([pairs()], forward), noForward, { keepGone: true });
  assert.equal(unhooked?.kept, 0);
  assert.match(unhooked?.script ?? '', /^delete chain inet weft forward$/m);
  assert.equal(unhooked?.table.leftover, undefined);
});

test('what an earlier change left counts toward the elements nft would fetch for element commands', () => {
  const set = (ips: string[]): NftMap => ({ name: 'dscp_10', type: 'ipv4_addr', set: true, interval: false, elements: ips });
  const big = map('old_rest', Array.from({ length: ELEMENT_COMMANDS_MAX }, (_, i) => `${i + 1} : accept`));
  const prev: NftTable = { ...table([set(['10.0.0.2', '10.0.0.3'])], []), leftover: { maps: [big], chains: [] } };
  const d = diffTables(prev, table([set(['10.0.0.3', '10.0.0.4'])], []), { keepGone: true });
  assert.match(d?.script ?? '', /^flush set inet weft dscp_10$/m, 'flushed and refilled, not patched beside 20,000 kept elements');
  assert.doesNotMatch(d?.script ?? '', /^(add|delete) element/m);
});

test('a delta writing hundreds of thousands of chain lines (a tenant going from a few rules to tens of thousands) is made, not a stack overflow', () => {
  const many = Array.from({ length: 20_000 }, (_, i) => chain(`c${i}`, ...Array.from({ length: 8 }, (_, k) => `tcp dport ${k + 1} accept`))).flat();
  const d = diffTables(table([], chain('forward', 'accept')), table([], [...many, ...chain('forward', 'accept')]));
  assert.ok(d && d.script.split('\n').length > 200_000, 'one delta with every chain');
});

test('with elements written by the helper: a map written whole is declared without them and they follow as its lines; an interval map stays whole in the script', () => {
  const shard = (name: string, els: string[]): NftMap => ({ name, type: 'mark . mark : mark', interval: false, elements: els });
  const prev = table([shard('prof_a', ['1 . 2 : 0x40000001']), map('tcp_in', ['80 : accept'])], [...chain('forward', 'type filter hook forward priority filter; policy accept;', 'meta mark set meta mark . ct mark map @prof_a', 'tcp dport vmap @tcp_in')]);
  const next = table([shard('prof_b', ['1 . 2 : 0x40000002', '3 . 2 : 0x40000001']), map('tcp_in', ['80 : accept', '443 : drop'])], [...chain('forward', 'type filter hook forward priority filter; policy accept;', 'meta mark set meta mark . ct mark map @prof_b', 'tcp dport vmap @tcp_in')]);
  const d = diffTables(prev, next, { elements: true });
  assert.ok(d);
  assert.match(d.script, /add map inet weft prof_b \{\n\t\ttype mark \. mark : mark\n\}/, 'the new shard is declared, empty');
  assert.doesNotMatch(d.script, /0x40000002/, 'its elements are not in the script');
  assert.match(d.script, /elements = \{ 80 : accept,\n\t\t\t443 : drop \}/, 'the interval map is written whole by nft');
  assert.equal(d.elements.split('\n')[0], 'map inet weft prof_b');
  assert.deepEqual(d.elements.trim().split('\n').slice(3), ['delete map inet weft prof_a'], 'the map line, its two elements, then what goes');
  assert.doesNotMatch(d.script, /^delete /m, 'nothing is deleted by the script: nft would list every chain of the table for it');
  // What nft makes of the script alone: the new shard, empty (the helper fills it in the same transaction).
  const r = applyScript(prev, d.script);
  assert.deepEqual(r.problems, []);
  assert.ok(r.table.maps.some((m) => m.name === 'prof_a'), 'the old shard goes by the helper\'s line');
  assert.deepEqual(r.table.maps.find((m) => m.name === 'prof_b')?.elements, []);
  const plain = diffTables(prev, next);
  assert.equal(plain?.elements, '', 'without the option nothing is left out of the script');
  assert.match(plain!.script, /0x40000002/);
});

test('keepGone past a bound: those that went longest ago go, what went since stays; what a kept map jumps to goes with it or after it', () => {
  // Change i points the forward chain at pairs_i, which jumps to p_i (looking up tcp_i) and to p_(i-1): each
  // change leaves three objects, and a kept pairs_i jumps to a chain that went one change after it.
  const at = (i: number) => table([{ ...pairs(`${i}_2`, `${i - 1}_2`), name: `pairs_${i}` }, map(`tcp_${i}`, [`${1000 + i} : accept`]), map(`tcp_${i - 1}`, [`${999 + i} : accept`])],
    [...chain(`p_${i}_2`, `tcp dport vmap @tcp_${i}`), ...chain(`p_${i - 1}_2`, `tcp dport vmap @tcp_${i - 1}`), ...chain('forward', 'type filter hook forward priority filter; policy accept;', `meta mark . ct mark vmap @pairs_${i}`)]);
  const keep = { objects: 7, elements: 1_000 };
  let held = at(0);
  let kernel = at(0);
  const kept: number[] = [];
  for (let i = 1; i <= 5; i++) {
    const d = diffTables(held, at(i), { keepGone: true, keep });
    assert.ok(d);
    const r = applyScript(kernel, d.script);
    assert.deepEqual(r.problems, [], `change ${i} is one the kernel takes`);
    assert.equal(contentOf(r.table), contentOf(d.table), `change ${i}: the table reported is the one the kernel holds`);
    kept.push(d.kept);
    held = d.table;
    kernel = r.table;
  }
  assert.deepEqual(kept, [3, 6, 6, 6, 6], 'two changes\' worth stay; the third oldest goes');
  const names = [...held.leftover?.maps ?? []].map((m) => m.name).sort();
  assert.deepEqual(names, ['pairs_3', 'pairs_4', 'tcp_2', 'tcp_3'], 'the newest leftovers are those kept');
  assert.deepEqual(wentAt(held).sort(), [4, 4, 4, 5, 5, 5], 'each with the change it went at');
  // Toggled back to one still kept: it serves again, and leaves the set of kept ones.
  const back = diffTables(held, at(4), { keepGone: true, keep });
  assert.doesNotMatch(back?.script ?? '', /elements/, 'no map written again');
  assert.ok(!(back?.table.leftover?.maps ?? []).some((m) => m.name === 'pairs_4'));
  // With the helper writing, what goes is its lines, not the script's.
  const viaHelper = diffTables(held, at(6), { keepGone: true, keep, elements: true });
  assert.doesNotMatch(viaHelper?.script ?? '', /^delete |^flush chain inet weft p_2_2$/m);
  assert.match(viaHelper?.elements ?? '', /^flush chain inet weft p_2_2\n[^]*^flush map inet weft pairs_3\ndelete map inet weft pairs_3\n[^]*^delete chain inet weft p_2_2$/m, 'the oldest change\'s: chains emptied, the map that jumps flushed and deleted, then the chains');
  assert.doesNotMatch(viaHelper?.elements ?? '', /p_3_2$/m, 'a chain that went later stays, though a map that went before it jumped to it');
});

test('blocksOf keeps the last table\'s block where a chain is written the same, and reads anew one that changed, grew or moved', () => {
  const chain = (name: string, rules: string[]) => [`\tchain ${name} {`, ...rules.map((r) => `\t\t${r}`), '\t}'];
  const before = [...chain('a', ['accept']), ...chain('b', ['drop', 'accept']), ...chain('c', ['counter'])];
  const was = blocksOf(before);
  // Equal strings made anew (as a render makes them), a changed chain, one grown, one added.
  const after = [...chain('a', ['accept']), ...chain('b', ['drop', 'reject']), ...chain('c', ['counter', 'accept']), ...chain('d', ['accept'])];
  const now = blocksOf(after, was);
  // Keyed by each block's first line.
  const at = (name: string) => `\tchain ${name} {`;
  assert.equal(now.get(at('a')), was.get(at('a')), 'the same lines: the same block');
  for (const k of ['b', 'c']) {
    assert.notEqual(now.get(at(k)), was.get(at(k)), `chain ${k} changed`);
    assert.deepEqual(now.get(at(k))?.lines, after.slice(after.indexOf(at(k)), after.indexOf(at(k)) + (now.get(at(k))?.lines.length ?? 0)));
  }
  assert.equal(now.get(at('c'))?.lines.length, 4);
  assert.deepEqual([...now.keys()], ['a', 'b', 'c', 'd'].map(at));
  // Read alone, the same blocks' contents.
  assert.deepEqual([...blocksOf([...after]).values()].map((b) => b.lines), [...now.values()].map((b) => b.lines));
});

test('a sweep in shares: the oldest changes\' leftovers first, whole changes within the share (the oldest one whatever its size), the rest for the next', () => {
  // As above: change i leaves three objects (the maps pairs_(i-1) and tcp_(i-2), the chain p_(i-2)_2).
  const at = (i: number) => table([{ ...pairs(`${i}_2`, `${i - 1}_2`), name: `pairs_${i}` }, map(`tcp_${i}`, [`${1000 + i} : accept`]), map(`tcp_${i - 1}`, [`${999 + i} : accept`])],
    [...chain(`p_${i}_2`, `tcp dport vmap @tcp_${i}`), ...chain(`p_${i - 1}_2`, `tcp dport vmap @tcp_${i - 1}`), ...chain('forward', 'type filter hook forward priority filter; policy accept;', `meta mark . ct mark vmap @pairs_${i}`)]);
  let held = at(0);
  let kernel = at(0);
  for (let i = 1; i <= 5; i++) {
    const d = diffTables(held, at(i), { keepGone: true });
    assert.ok(d);
    held = d.table;
    kernel = applyScript(kernel, d.script).table;
  }
  assert.equal(wentAt(held).length, 15, 'each change left three objects');
  const epochs = () => [...new Set(wentAt(held))].sort();
  const first = epochs();
  // A full pass to the same table, sweeping seven objects at most: two changes' worth (six), not three (nine).
  const sweeps: number[][] = [];
  for (let pass = 0; pass < 5 && held.leftover; pass++) {
    const d = diffTables(held, at(5), { sweep: { objects: 7, elements: 1_000 } });
    assert.ok(d);
    const r = applyScript(kernel, d.script);
    assert.deepEqual(r.problems, [], `sweep ${pass} is one the kernel takes`);
    assert.equal(contentOf(r.table), contentOf(d.table), `sweep ${pass}: the table reported is the one the kernel holds`);
    held = d.table;
    kernel = r.table;
    sweeps.push(epochs());
  }
  assert.deepEqual(sweeps, [first.slice(2), first.slice(4), []], 'the two oldest changes\' leftovers, the next two, then the last');
  assert.equal(contentOf(kernel), contentOf(at(5)), 'nothing unused is left');
  // A share smaller than the oldest change's leftovers still sweeps that change: a sweep always gets on.
  let small = at(4);
  const fromFour = diffTables(small, at(5), { keepGone: true })!;
  small = fromFour.table;
  const one = diffTables(small, at(5), { sweep: { objects: 1, elements: 1 } });
  assert.equal(one?.table.leftover, undefined, 'the one change\'s three objects go together');
  assert.match(one?.script ?? '', /^delete chain inet weft p_3_2$/m);
  // Without a share, a full pass sweeps everything, as before.
  assert.equal(diffTables(fromFour.table, at(5))?.table.leftover, undefined);
  // What the full pass itself leaves unused stays while an older leftover still refers to it: after
  // change 3, the kept pairs_2 jumps to p_2_2, which at(3) uses; a target without p_2_2 leaves it unused,
  // and a share that takes only the oldest change's leftovers keeps pairs_2, so p_2_2 must stay too.
  let three = at(0);
  let kernel3 = at(0);
  for (let i = 1; i <= 3; i++) {
    const d = diffTables(three, at(i), { keepGone: true })!;
    three = d.table;
    kernel3 = applyScript(kernel3, d.script).table;
  }
  const full = at(3);
  const target = table([{ ...pairs('3_2'), name: 'pairs_3' }, map('tcp_3', ['1003 : accept'])], [...chain('p_3_2', 'tcp dport vmap @tcp_3'), ...chain('forward', 'type filter hook forward priority filter; policy accept;', 'meta mark . ct mark vmap @pairs_3')]);
  assert.ok(full.chains.join('\n').includes('p_2_2') && !target.chains.join('\n').includes('p_2_2'));
  const partial = diffTables(three, target, { sweep: { objects: 1, elements: 1 } })!;
  const r3 = applyScript(kernel3, partial.script);
  assert.deepEqual(r3.problems, [], 'nothing a kept map jumps to is deleted');
  assert.equal(contentOf(r3.table), contentOf(partial.table));
  assert.ok(partial.table.leftover?.chains.some((l) => l === '\tchain p_2_2 {'), 'p_2_2 stays, unused, while pairs_2 does');
  assert.ok(partial.table.leftover?.maps.some((m) => m.name === 'pairs_2'));
});
