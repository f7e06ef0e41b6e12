import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Prng } from '../chaos/prng.js';
import type { RuleRef } from './decide.js';
import { patchEvents, portEvents, segmentPorts, segmentPortsOf, type Segment } from './segments.js';
import { differing } from './sides.js';
import { Bucket } from './rule-index.js';

// A pair's sweep merges its buckets' sorted events (sides.ts bucketSegments); one list per direction is
// segmentPorts. Split at random, the lists must give what one list gives, with or without audit rules
// and with a direction not enforced; and each segment must be what the rules decide at its ports.

function rules(g: Prng, n: number): RuleRef[] {
  return Array.from({ length: n }, (_, i) => {
    const first = g.int(0, 65535);
    const ports = g.int(0, 3) === 0 ? undefined : g.int(0, 1) ? String(first) : `${first}-${Math.min(65535, first + g.int(0, 3000))}`;
    const protocol = ['tcp', 'udp', 'any'][g.int(0, 2)] as string;
    const rule = { id: `r${i}`, direction: 'in', action: g.int(0, 1) ? 'allow' : 'deny', priority: g.int(0, 12), protocol, ...(ports && protocol !== 'any' ? { ports } : {}), ...(g.int(0, 9) === 0 ? { audit: true } : {}) };
    return { policy: 'p', rule } as unknown as RuleRef;
  });
}

function inPorts(ports: string, port: number): boolean {
  const [a = NaN, b = a] = ports.split('-').map(Number);
  return port >= a && port <= b;
}

function split<T>(g: Prng, xs: readonly T[]): T[][] {
  const out: T[][] = [[]];
  for (const x of xs) {
    if (g.int(0, 4) === 0) out.push([]);
    (out[g.int(0, out.length - 1)] as T[]).push(x);
  }
  return out;
}

test('a sweep over several sorted lists per direction is the sweep over their rules as one list', () => {
  for (let seed = 1; seed <= 300; seed++) {
    const g = new Prng(seed);
    const eg = g.int(0, 4) === 0 ? undefined : rules(g, g.int(0, 30));
    const ig = g.int(0, 4) === 0 ? undefined : rules(g, g.int(0, 30));
    const proto = g.int(0, 1) ? 6 : 17;
    const fallback = g.int(0, 1) ? 'allow' : 'deny';
    const lists = (rs: RuleRef[] | undefined) => rs && split(g, rs).map((x) => portEvents(x, proto));
    const merged = segmentPortsOf([lists(eg), lists(ig)], fallback);
    assert.deepEqual(merged, segmentPorts({ egress: eg, ingress: ig }, proto, fallback), `seed ${seed}`);
    // Each segment from the rules directly, at its first and last port and one inside it.
    for (const s of merged) {
      for (const port of [s.first, s.last, s.first + g.int(0, s.last - s.first)]) {
        const wins = (rs: RuleRef[] | undefined, enforcedOnly: boolean) => {
          if (!rs) return 'allow';
          const on = rs.filter((r) => (!enforcedOnly || !r.rule.audit) && ['any', proto === 6 ? 'tcp' : 'udp'].includes(r.rule.protocol as string)
            && (r.rule.ports === undefined || inPorts(r.rule.ports as string, port)));
          const top = Math.max(...on.map((r) => r.rule.priority));
          const at = on.filter((r) => r.rule.priority === top);
          return at.length === 0 ? fallback : at.some((r) => r.rule.action === 'deny') ? 'deny' : 'allow';
        };
        const all = [wins(eg, false), wins(ig, false)].every((a) => a === 'allow');
        const enf = [wins(eg, true), wins(ig, true)].every((a) => a === 'allow');
        assert.equal(s.verdict, !enf ? 'drop' : !all ? 'audit' : 'accept', `seed ${seed}, port ${port}`);
      }
    }
  }
});

/** A list of events as its (port × 2 + start) and rule id pairs, in order; ties at one port sorted by id (their order does not matter). */
function eventTexts(ev: { at: readonly number[]; rules: ReadonlyArray<{ id: string }> }): string[] {
  return ev.at.map((a, i) => [a, (ev.rules[i] as { id: string }).id] as const).sort((x, y) => x[0] - y[0] || (x[1] < y[1] ? -1 : x[1] > y[1] ? 1 : 0)).map(([a, id]) => `${a}:${id}`);
}

test('patched events are the events made again from the rules: rules gone, come, back again, twice, and running to 65535', () => {
  for (let seed = 1; seed <= 300; seed++) {
    const g = new Prng(seed);
    const pool = rules(g, 40);
    // A few rules end at 65535 (no end event), and one rule object held twice (two policies' refs to one rule).
    for (const r of pool.slice(0, 4)) (r.rule as { ports?: string }).ports = `${g.int(0, 65535)}-65535`;
    // Priorities outside Weft's 1-100 (the Kubernetes tiers', netpol.ts): the span a sweep tallies widens.
    (pool[4]?.rule as { priority: number }).priority = -5;
    (pool[5]?.rule as { priority: number }).priority = 120;
    const live: RuleRef[] = pool.filter(() => g.int(0, 1) === 0);
    if (live[0]) live.push(live[0]);
    const proto = [6, 17][g.int(0, 1)] as number;
    let ev = portEvents(live, proto, 1);
    for (let step = 0; step < 6; step++) {
      const edits: Array<{ rule: RuleRef['rule']; d: 1 | -1 }> = [];
      for (let k = g.int(1, 6); k > 0; k--) {
        if (g.int(0, 1) === 0 && live.length > 0) {
          const [gone] = live.splice(g.int(0, live.length - 1), 1) as [RuleRef];
          edits.push({ rule: gone.rule, d: -1 });
        } else {
          const came = pool[g.int(0, pool.length - 1)] as RuleRef;
          live.push(came);
          edits.push({ rule: came.rule, d: 1 });
        }
      }
      ev.edits = edits;
      ev = patchEvents(ev, proto, step + 2);
      const want = portEvents(live, proto, step + 2);
      assert.deepEqual(eventTexts(ev), eventTexts(want), `seed ${seed} step ${step}: the events of the rules in force`);
      assert.ok(ev.at.every((a, i) => i === 0 || (ev.at[i - 1] as number) <= a), `seed ${seed} step ${step}: sorted by port`);
      assert.ok(ev.lo <= want.lo && ev.hi >= want.hi && (ev.audit || !want.audit), `seed ${seed} step ${step}: the span only widens`);
      assert.equal(ev.stamp, step + 2);
      assert.equal(ev.edits, undefined, 'the edits applied are gone');
      assert.deepEqual(segmentPortsOf([[ev], undefined], 'allow'), segmentPortsOf([[want], undefined], 'allow'), `seed ${seed} step ${step}: the same segments`);
    }
  }
});

test('a bucket notes what comes and goes on what was made of a slot, until MAX_EDITS or a slot replaced', () => {
  let stamp = 0;
  const b = new Bucket(() => ++stamp);
  const ref = (id: string, protocol: string): RuleRef => ({ policy: 'p', rule: { id, direction: 'in', action: 'allow', priority: 5, protocol, ports: '80', fromGroup: 'g' } as unknown as RuleRef['rule'] });
  b.add(ref('before', 'tcp'));
  const made = portEvents(b.rules[0], 6, b.stamps[0]);
  b.made = [made, undefined, undefined, undefined];
  b.add(ref('a', 'tcp'));
  b.add(ref('u', 'udp'));
  b.add(ref('any', 'any'));
  b.remove('p', 'before');
  assert.deepEqual(made.edits?.map((e) => `${e.rule.id}${e.d > 0 ? '+' : '-'}`), ['a+', 'any+', 'before-'], 'the tcp slot\'s edits: its own rules only');
  assert.notEqual(made.stamp, b.stamps[0], 'what was made is stale');
  for (let i = 0; i < 300; i++) b.add(ref(`m${i}`, 'tcp'));
  assert.equal(made.edits, null, 'past MAX_EDITS: made again whole');
  const again = portEvents(b.rules[0], 6, b.stamps[0]);
  b.made = [again, undefined, undefined, undefined];
  b.add(ref('z', 'tcp'));
  b.replaceAt(0, b.rules[0].slice(1), 1, 0);
  assert.equal(again.edits, null, 'a slot replaced: made again whole');
});

test('a sweep against the side stages\' segments gives only where it differs from them, as differing() of the whole sweep does', () => {
  const verdicts = ['accept', 'drop', 'audit'] as const;
  for (let seed = 1; seed <= 120; seed++) {
    const g = new Prng(seed);
    const eg = g.int(0, 4) === 0 ? undefined : rules(g, g.int(0, 30));
    const ig = g.int(0, 4) === 0 ? undefined : rules(g, g.int(0, 30));
    const fallback = g.int(0, 1) ? 'allow' : 'deny';
    const lists = (rs: RuleRef[] | undefined) => rs && split(g, rs).map((x) => portEvents(x, 6));
    const dirs: Parameters<typeof segmentPortsOf>[0] = [lists(eg), lists(ig)];
    // What the side stages decide: a cover of 0-65535, cut at random (single ports, ports 0 and 65535 too).
    const cuts = [...new Set([0, ...Array.from({ length: g.int(0, 40) }, () => (g.int(0, 3) === 0 ? [1, 65535][g.int(0, 1)] as number : g.int(1, 65535)))])].sort((a, b) => a - b);
    const against: Segment[] = cuts.map((first, i) => ({ first, last: (cuts[i + 1] ?? 65536) - 1, verdict: verdicts[g.int(0, 2)] as Segment['verdict'] }));
    const whole = segmentPortsOf(dirs, fallback);
    const want = differing(whole, against);
    assert.deepEqual(segmentPortsOf(dirs, fallback, against), want, `seed ${seed}`);
    // Port by port: the sweep's verdict wherever the side stages' differs, in maximal runs of one verdict.
    const runs: Segment[] = [];
    let a = 0;
    let b = 0;
    for (let port = 0; port <= 65535; port++) {
      while ((whole[a] as Segment).last < port) a++;
      while ((against[b] as Segment).last < port) b++;
      const v = (whole[a] as Segment).verdict;
      if (v === (against[b] as Segment).verdict) continue;
      const prev = runs[runs.length - 1];
      if (prev && prev.verdict === v && prev.last === port - 1) prev.last = port;
      else runs.push({ first: port, last: port, verdict: v });
    }
    assert.deepEqual(want, runs, `seed ${seed}: port by port`);
  }
});
