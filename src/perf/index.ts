export { PerfError, type PerfErrorCode } from './errors.js';
export { buildResult, validateResult, summarise, RESULT_VERSION, RUN_ID_PATTERN, LIMITS, type BenchResult, type BenchRunInput, type BenchSummary, type NetprofileInForce, type Stats, type ThroughputSample } from './results.js';
export { parseIperf3 } from './iperf3.js';
export { renderCsv } from './csv.js';
export { ResultStore, newRunId, type RunListing } from './store.js';
export { renderThroughputSvg, renderLatencySvg } from './svg.js';
export { formatRate, formatMs } from './scale.js';
export { pngAvailable, renderPng, PNG_UNAVAILABLE } from './png.js';
export { parseServeAddress, startResultsServer, type ServeAddress, type ResultsServer, type ResultsServerOptions } from './serve.js';
