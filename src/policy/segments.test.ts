import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Prng } from '../chaos/prng.js';
import type { RuleRef } from './decide.js';
import { portEvents, segmentPorts, segmentPortsOf } from './segments.js';

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
