export { buildApp, BODY_LIMIT, type AppOptions } from './app.js';
export { problemOf, type Problem } from './problem.js';
export { startServer, type ServerOptions, type RunningServer } from './serve.js';
