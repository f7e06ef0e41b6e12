export { Client, ApiError, fetchPinnedCa, warningsOf, type Target, type TlsConfig, type RequestOptions, type ClientOptions } from './client.js';
export { linesOf, MAX_LINE_BYTES } from './lines.js';
