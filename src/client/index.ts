export { Client, ApiError, fetchPinnedCa, type Target, type TlsConfig, type RequestOptions } from './client.js';
