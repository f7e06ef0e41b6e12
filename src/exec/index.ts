export { ProcessRunner, FakeRunner, ExecError, type Runner, type RunOptions, type RunResult } from './runner.js';
