import { isRecoverableError, type IOptions } from 'etcd3';

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

/** Overall: retries recoverable failures up to ATTEMPTS times; a wrapped refusal is thrown at once. */
export function globalPolicy(): Executor {
  return {
    async execute(fn) {
      for (let attempt = 1; ; attempt++) {
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

/** The `faultHandling` option for `new Etcd3(...)`. */
export function faultHandling(): FaultHandling {
  return { host: (h) => hostPolicy(h) as unknown as Policy, global: globalPolicy() as unknown as Policy };
}
