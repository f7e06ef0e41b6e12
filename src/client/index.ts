export { Client, ApiError, warningsOf, type Target, type RequestOptions, type ClientOptions } from './client.js';
