import { formatIp6, parseIp6, type AuditEntry } from '../model/index.js';

/** Refusals and failed logins one actor or address may have logged line by line: a burst, then a rate. */
export const REFUSAL_BURST = 100;
export const REFUSALS_PER_S = 10;
/** Addresses followed at once; past this, the newcomers share one allowance. */
const FOLLOWED = 4096;
/**
 * Lines of unauthenticated refusals and failed logins, all addresses together: a burst, then a rate (at
 * ~700 bytes a line, the 128 MiB kept last ~2.5 hours of it). Many addresses (an IPv6 /48 holds 65,536
 * /64s) would otherwise each bring their own allowance.
 */
export const UNAUTHENTICATED_BURST = 1000;
export const UNAUTHENTICATED_PER_S = 20;
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
 * lines, refilled at REFUSALS_PER_S, and the unauthenticated ones share UNAUTHENTICATED_BURST and
 * UNAUTHENTICATED_PER_S besides; what passes that is counted and summed up in `suppressed` lines
 * (`summaries`, every few seconds). Writes and successful logins are never held back.
 */
export class RefusalThrottle {
  private readonly buckets = new Map<string, Bucket>();
  /** Buckets of addresses (not actors, not the crowd). */
  private addresses = 0;
  /** The allowance every address shares. */
  private readonly all: { tokens: number; at: number };

  constructor(private readonly now: () => number = Date.now) {
    this.all = { tokens: UNAUTHENTICATED_BURST, at: now() };
  }

  /** Whether `e` is logged; false: it is counted for the next summary instead. */
  admit(e: AuditEntry): boolean {
    if (!(e.event === 'refused' || (e.event === 'login' && e.status !== 200))) return true;
    const address = addressOf(e.source);
    let key = e.actor !== null ? `actor ${e.actor}` : `from ${address}`;
    // Only addresses are capped: an actor is a user or host of this server (as many as there are), and one
    // pushed into the crowd would have its refusals hidden behind an unauthenticated flood's.
    if (e.actor === null && !this.buckets.has(key) && this.addresses >= FOLLOWED) key = CROWD;
    if (e.actor === null && key !== CROWD && !this.buckets.has(key)) this.addresses++;
    const t = this.now();
    let b = this.buckets.get(key);
    if (!b) this.buckets.set(key, (b = { tokens: REFUSAL_BURST, at: t, dropped: 0, actor: key === CROWD ? null : e.actor, source: key === CROWD ? CROWD : address }));
    b.tokens = filled(b, REFUSAL_BURST, REFUSALS_PER_S, t);
    b.at = t;
    const all = this.all;
    if (e.actor === null) {
      all.tokens = filled(all, UNAUTHENTICATED_BURST, UNAUTHENTICATED_PER_S, t);
      all.at = t;
    }
    if (b.tokens >= 1 && (e.actor !== null || all.tokens >= 1)) {
      b.tokens -= 1;
      if (e.actor === null) all.tokens -= 1;
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
      if (filled(b, REFUSAL_BURST, REFUSALS_PER_S, t) >= REFUSAL_BURST) {
        this.buckets.delete(k);
        if (k.startsWith('from ')) this.addresses--;
      }
    }
    return out;
  }
}

/** What an allowance holds at `t`: its tokens refilled at `perS` since `at`, at most `burst`. */
function filled(x: { tokens: number; at: number }, burst: number, perS: number, t: number): number {
  return Math.min(burst, x.tokens + ((t - x.at) * perS) / 1000);
}

/** The address of `addr:port` or `[v6]:port`; an IPv6 one as its /64. */
function addressOf(source: string): string {
  if (!source.startsWith('[')) return source.replace(/:[0-9]+$/, '');
  // No zone index (fe80::1%eth0): with it the text did not parse and each port was an address of its own.
  const v6 = parseIp6(source.slice(1, source.indexOf(']')).replace(/%.*$/, ''));
  if (v6 === undefined) return source;
  // An IPv4 client of a dual-stack listener ([::]:9700) is ::ffff:a.b.c.d: its own address, not ::/64 shared by all.
  if (v6 >> 32n === 0xffffn) return [24, 16, 8, 0].map((s) => Number((v6 >> BigInt(s)) & 0xffn)).join('.');
  return `${formatIp6((v6 >> 64n) << 64n)}/64`;
}
