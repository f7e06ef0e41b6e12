import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** One registry per server instance (no global default registry), so tests can build many apps. */
/**
 * `unsent`: bytes written to watch streams that their clients have not taken yet, summed at scrape time.
 * `storeCommits`: whether the store times its commits (SQLite): the histogram exists only then, so that
 * another store does not show an empty one that reads as "no commits".
 */
export function createMetrics(unsent: () => number = () => 0, opts: { storeCommits?: boolean } = {}) {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'weft_' });
  return {
    registry,
    requests: new Counter({ name: 'weft_http_requests_total', help: 'HTTP requests by route and status', labelNames: ['method', 'route', 'status'], registers: [registry] }),
    latency: new Histogram({
      name: 'weft_http_request_duration_seconds', help: 'HTTP request latency', labelNames: ['method', 'route'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1], registers: [registry],
    }),
    storeCommit: opts.storeCommits ? new Histogram({
      name: 'weft_store_commit_duration_seconds',
      help: 'SQLite store: each successful commit of a batch of transactions in its writer thread (statements, fsync, any checkpoint or log compaction)',
      buckets: [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1], registers: [registry],
    }) : undefined,
    revision: new Gauge({ name: 'weft_store_revision', help: 'Current store revision', registers: [registry] }),
    watchers: new Gauge({ name: 'weft_watchers', help: 'Open watch streams', registers: [registry] }),
    watchUnsent: new Gauge({
      name: 'weft_watch_unsent_bytes', help: 'Bytes queued in watch streams, not yet taken by their clients', registers: [registry],
      collect() { this.set(unsent()); },
    }),
    watchersDropped: new Counter({ name: 'weft_watchers_dropped_total', help: 'Watch streams ended because their client did not read (--watch-buffer)', registers: [registry] }),
    flowRecords: new Counter({
      name: 'weft_flow_records_total', help: 'Flow records agents reported: accepted, or refused (unknown tenant, or not of the reporting host\'s endpoints)',
      labelNames: ['outcome'], registers: [registry],
    }),
  };
}
export type Metrics = ReturnType<typeof createMetrics>;
