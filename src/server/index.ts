export { buildApp, type AppOptions } from './app.js';
export { DEFAULT_LIMITS, type Limits } from './limits.js';
export { problemOf, type Problem } from './problem.js';
export { startServer, type ServerOptions, type RunningServer } from './serve.js';
