import { formatIp6, parseIp6, type AuditEntry } from '../model/index.js';

/** Refusals and failed logins one actor or address may have logged line by line: a burst, then a rate. */
export const REFUSAL_BURST = 100;
export const REFUSALS_PER_S = 10;
/** Actors and addresses followed at once; past this, the newcomers share one allowance. */
const FOLLOWED = 4096;
/** Summary lines a period for those that lost most lines; the rest are counted in one more. */
const SUMMARIES = 20;
/** The key the newcomers past FOLLOWED share. */
const CROWD = '*';

interface Bucket { tokens: number; at: number; dropped: number; actor: string | null; source: string }

/**
 * Keeps a flood of refusals (401, 403) and failed logins from rotating the audit log away: an
 * unauthenticated client sending 8,000 requests a second over a few connections filled the 128 MiB the
 * log keeps in ~23 s, and with it every write and login before. Each actor (a user, a host) or, without
 * one, each source address (an IPv6 one by its /64, which one machine may hold whole) has REFUSAL_BURST
 * lines, refilled at REFUSALS_PER_S; what passes that is counted and summed up in `suppressed` lines
 * (`summaries`, every few seconds). Writes and successful logins are never held back.
 */
export class RefusalThrottle {
  private readonly buckets = new Map<string, Bucket>();

  constructor(private readonly now: () => number = Date.now) {}

  /** Whether `e` is logged; false: it is counted for the next summary instead. */
  admit(e: AuditEntry): boolean {
    if (!(e.event === 'refused' || (e.event === 'login' && e.status !== 200))) return true;
    const address = addressOf(e.source);
    let key = e.actor !== null ? `actor ${e.actor}` : `from ${address}`;
    if (!this.buckets.has(key) && this.buckets.size >= FOLLOWED) key = CROWD;
    const t = this.now();
    let b = this.buckets.get(key);
    if (!b) this.buckets.set(key, (b = { tokens: REFUSAL_BURST, at: t, dropped: 0, actor: key === CROWD ? null : e.actor, source: key === CROWD ? CROWD : address }));
    b.tokens = Math.min(REFUSAL_BURST, b.tokens + ((t - b.at) * REFUSALS_PER_S) / 1000);
    b.at = t;
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return true;
    }
    b.dropped++;
    return false;
  }

  /** One `suppressed` line for each of the SUMMARIES that lost most since the last call, one for the rest; forgets the idle. */
  summaries(time: string): AuditEntry[] {
    const t = this.now();
    const lost = [...this.buckets.values()].filter((b) => b.dropped > 0).sort((a, b) => b.dropped - a.dropped);
    const line = (actor: string | null, source: string, count: number): AuditEntry => ({
      time, event: 'suppressed', actor, credential: null, source, method: '-', path: '-', route: null, status: 0, code: null, count,
    });
    const out = lost.slice(0, SUMMARIES).map((b) => line(b.actor, b.source, b.dropped));
    const rest = lost.slice(SUMMARIES).reduce((n, b) => n + b.dropped, 0);
    if (rest > 0) out.push(line(null, CROWD, rest));
    for (const [k, b] of this.buckets) {
      b.dropped = 0;
      // Full again: nothing to remember.
      if (b.tokens + ((t - b.at) * REFUSALS_PER_S) / 1000 >= REFUSAL_BURST) this.buckets.delete(k);
    }
    return out;
  }
}

/** The address of `addr:port` or `[v6]:port`; an IPv6 one as its /64. */
function addressOf(source: string): string {
  if (!source.startsWith('[')) return source.replace(/:[0-9]+$/, '');
  const v6 = parseIp6(source.slice(1, source.indexOf(']')));
  return v6 === undefined ? source : `${formatIp6((v6 >> 64n) << 64n)}/64`;
}
