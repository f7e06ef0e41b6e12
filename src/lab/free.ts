import { createServer } from 'node:net';
import type { Runner } from '../exec/index.js';
import { WeftError } from '../model/index.js';

/**
 * `n` distinct octets X such that no address on this machine starts with `prefix.X.` (the lab and the
 * tests give each host a `198.18.X.0/30` and the underlay a `198.19.X.0/24`). Tests running side by side
 * take random ones; the lab takes the lowest from 200, so its addresses are predictable.
 */
export async function freeOctets(runner: Runner, prefix: string, n: number, order: 'lowest' | 'random' = 'lowest'): Promise<number[]> {
  const r = await runner.run(['ip', '-4', '-j', 'addr', 'show'], { allowFailure: true });
  const used = new Set<number>();
  const pattern = new RegExp(`^${prefix.replace(/\./g, '\\.')}\\.(\\d+)\\.`);
  for (const l of JSON.parse(r.stdout || '[]') as Array<{ addr_info?: Array<{ local: string }> }>) {
    for (const a of l.addr_info ?? []) {
      const m = pattern.exec(a.local);
      if (m) used.add(Number(m[1]));
    }
  }
  const candidates = order === 'lowest' ? Array.from({ length: 55 }, (_, i) => 200 + i) : shuffled(Array.from({ length: 250 }, (_, i) => 1 + i));
  const out = candidates.filter((o) => !used.has(o)).slice(0, n);
  if (out.length < n) throw new WeftError('WEFT_POOL_EXHAUSTED', `no ${n} free ${prefix}.X/24 ranges left on this machine`);
  return out;
}

function shuffled(xs: number[]): number[] {
  for (let i = xs.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [xs[i], xs[j]] = [xs[j] as number, xs[i] as number];
  }
  return xs;
}

/** `n` free loopback TCP ports (bound and released by the OS). */
export async function freePorts(n: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    out.push(await new Promise<number>((resolve, reject) => {
      const srv = createServer();
      srv.listen(0, '127.0.0.1', () => {
        const a = srv.address();
        srv.close(() => (typeof a === 'object' && a ? resolve(a.port) : reject(new Error('no free port'))));
      });
    }));
  }
  return out;
}
