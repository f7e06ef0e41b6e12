/**
 * Defaults of the server's limits: one place for the control plane, the server, the stores and the CLI's
 * --help. Why each value: docs/decisions.md ("Limits").
 */
/**
 * The most pairs of address classes one tenant's policy may make in one compile (policy/budget.ts): the
 * agents' `--max-policy-pairs` default, and what the server's whole-tenant compiles (verify, a dry run's
 * comparison) allow. The benchmarks' 50,000-rule shapes make at most ~200,000; at this many a compile and
 * its render take ~1.2 s (docs/decisions.md, session 55).
 */
export const POLICY_PAIRS_DEFAULT = 300_000;

export const LIMIT_DEFAULTS = {
  /** Tenants and tenant objects one user may own. */
  quotaObjects: 1000,
  /** Policy rules one user may have added. */
  quotaRules: 10_000,
  /** Bytes of change history kept by the SQLite and memory stores. */
  historyBytes: 256 * 1024 * 1024,
  bodyLimit: 1024 * 1024,
  headersTimeoutMs: 10_000,
  bodyTimeoutMs: 30_000,
  requestTimeoutMs: 60_000,
  keepAliveTimeoutMs: 10_000,
  /** Watch streams one principal may hold open on one server. */
  maxWatchers: 16,
  /** Logins (one scrypt each, on libuv's 4 threads) running at once; more wait for nobody: 429. */
  maxLogins: 4,
  /** Unsent bytes a watch stream may hold before it is ended. */
  watchBufferBytes: 8 * 1024 * 1024,
} as const;
