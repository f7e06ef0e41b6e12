export { ProcessRunner, FakeRunner, ExecError, spawnDaemon, runInteractive, startLineProcess, type Runner, type RunOptions, type RunResult, type LineProcess } from './runner.js';
export { TracingRunner } from './trace.js';
