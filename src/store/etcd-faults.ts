import { isRecoverableError, type CallContext, type IOptions } from 'etcd3';

/**
 * The etcd3 client's fault handling, as its defaults are (per host: a circuit breaker that opens after 3
 * consecutive failures for 5 s; overall: up to 3 attempts) with one difference: a write refused because
 * etcd is past its space quota is etcd answering, not a host failing. The client counts that refusal
 * (gRPC RESOURCE_EXHAUSTED) as a host fault: one refused write was retried three times, opened every
 * host's circuit and reset its connections, so for 5 s every read and the watch failed too (measured:
 * each read after a refused put answered "circuit breaker is open"). Here the refusal passes the host
 * policy as a value, so nothing counts it or resets anything, and the overall policy throws it unretried.
 */
type FaultHandling = NonNullable<IOptions['faultHandling']>;
type Policy = NonNullable<FaultHandling['global']>;

export const BREAKER_FAILURES = 3;
export const BREAKER_OPEN_MS = 5_000;
export const ATTEMPTS = 3;
/** Before attempt n (from the second), a pause of n - 1 times this: an election gets time to end. */
export const RETRY_PAUSE_MS = 150;
/**
 * How long one write may wait for etcd. A member whose leader just died holds a proposal until its own
 * request timeout (5 s + two election timeouts: 7 s by default) and only then says "request timed out";
 * measured, every write made in the first moment after the leader was killed took 7.0 s. The new leader is
 * there after about one election timeout (1 s by default), so a write that waited this long is given up
 * and tried on the next member. Reads keep no deadline: a whole listing of 50,000 endpoints (~28 MB) may
 * take longer on a loaded host.
 */
export const WRITE_DEADLINE_MS = 3_000;
const WRITES: ReadonlySet<string> = new Set(['put', 'txn', 'deleteRange']);

/** etcd's refusal of a write past its quota (the NOSPACE alarm is up). */
export const isNoSpace = (e: unknown): boolean => e instanceof Error && /database space exceeded/i.test(e.message);

const recoverable = (e: unknown): boolean => e instanceof Error && isRecoverableError(e);

class Refused { constructor(readonly error: unknown) {} }

/** Thrown without calling etcd while a host's circuit is open; the pool then tries the next host. */
export class HostCircuitOpen extends Error {
  constructor(host: string, ms: number) {
    super(`etcd ${host}: ${BREAKER_FAILURES} calls in a row failed; not tried again for ${Math.ceil(ms / 1000)} s`);
  }
}

/** What the client's code calls on a policy: execute, with a context it ignores. */
interface Executor { execute<T>(fn: (ctx: { signal: AbortSignal; attempt: number }) => PromiseLike<T> | T): Promise<T> }

/** Per host: counts consecutive recoverable failures; NOSPACE is returned (wrapped), not thrown. */
export function hostPolicy(host: string, now: () => number = Date.now): Executor {
  let failures = 0;
  let openUntil = 0;
  return {
    async execute(fn) {
      if (failures >= BREAKER_FAILURES && now() < openUntil) throw new HostCircuitOpen(host, openUntil - now());
      try {
        const value = await fn({ signal: new AbortController().signal, attempt: 0 });
        failures = 0;
        return value;
      } catch (e) {
        if (isNoSpace(e)) {
          failures = 0;
          return new Refused(e) as never;
        }
        if (recoverable(e) && ++failures >= BREAKER_FAILURES) openUntil = now() + BREAKER_OPEN_MS;
        throw e;
      }
    },
  };
}

/**
 * Overall: retries recoverable failures up to ATTEMPTS times, pausing a little longer before each (back
 * to back, three attempts can all fall inside one election); a wrapped refusal is thrown at once.
 */
export function globalPolicy(pause: (ms: number) => Promise<void> = (ms) => new Promise((r) => setTimeout(r, ms))): Executor {
  return {
    async execute(fn) {
      for (let attempt = 1; ; attempt++) {
        if (attempt > 1) await pause((attempt - 1) * RETRY_PAUSE_MS);
        try {
          const value = await fn({ signal: new AbortController().signal, attempt });
          if (value instanceof Refused) throw value;
          return value;
        } catch (e) {
          if (e instanceof Refused) throw e.error;
          if (attempt >= ATTEMPTS || !recoverable(e)) throw e;
        }
      }
    },
  };
}

/** The `defaultCallOptions` option for `new Etcd3(...)`: a deadline for writes (WRITE_DEADLINE_MS). */
export function callOptions(now: () => number = Date.now) {
  return (c: CallContext) => (!c.isStream && c.service === 'KV' && WRITES.has(c.method) ? { deadline: now() + WRITE_DEADLINE_MS } : {});
}

/** The `faultHandling` option for `new Etcd3(...)`. */
export function faultHandling(): FaultHandling {
  return { host: (h) => hostPolicy(h) as unknown as Policy, global: globalPolicy() as unknown as Policy };
}
