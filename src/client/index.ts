export { Client, ApiError, type Target, type RequestOptions } from './client.js';
