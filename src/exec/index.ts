export { ProcessRunner, FakeRunner, ExecError, spawnDaemon, runInteractive, type Runner, type RunOptions, type RunResult } from './runner.js';
