export { Client, ApiError, fetchPinnedCa, warningsOf, type Target, type TlsConfig, type RequestOptions, type ClientOptions } from './client.js';
