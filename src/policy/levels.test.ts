import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Prng } from '../chaos/prng.js';
import { Levels } from './levels.js';

// Whether a range counted at a priority or above meets a span, against every range counted, through
// ranges added and removed one at a time (the same range many times, at several priorities, touching and
// nested, at the ends of the port space) and questions asked between changes or not.

test('a span meets a range at or above a priority exactly when one of the counted ranges meets it', () => {
  for (let seed = 1; seed <= 200; seed++) {
    const g = new Prng(seed);
    const levels = new Levels();
    const counted: Array<{ priority: number; first: number; last: number }> = [];
    const port = () => [0, 1, 65534, 65535][g.int(0, 9)] ?? g.int(0, 300);
    for (let step = 0; step < 200; step++) {
      if (g.int(0, 2) > 0 || counted.length === 0) {
        const a = port();
        const b = g.int(0, 3) === 0 ? a : Math.min(65535, a + g.int(0, 40));
        const x = counted.length > 0 && g.int(0, 4) === 0 ? (counted[g.int(0, counted.length - 1)] as (typeof counted)[number]) : { priority: g.int(-1, 6), first: a, last: b };
        counted.push({ ...x });
        levels.add(x.priority, [x.first, x.last], 1);
      } else {
        const [x] = counted.splice(g.int(0, counted.length - 1), 1) as [(typeof counted)[number]];
        levels.add(x.priority, [x.first, x.last], -1);
      }
      for (let q = g.int(0, 3); q > 0; q--) {
        const priority = g.int(-2, 7);
        const first = port();
        const span: [number, number] = [first, Math.min(65535, first + g.int(0, 20))];
        const want = counted.some((x) => x.priority >= priority && x.first <= span[1] && x.last >= span[0]);
        assert.equal(levels.meetsFrom(priority, span), want, `seed ${seed} step ${step}: priority ${priority}, ${span[0]}-${span[1]}`);
      }
    }
  }
});
