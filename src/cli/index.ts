export { runCli, buildProgram, VERSION } from './program.js';
export { normaliseArgv } from './argv.js';
export { EXIT } from './errors.js';
export type { Daemons, RunningDaemon, AgentFlags, ServerFlags } from './commands/daemon.js';
export type { Io } from './kit.js';
export type { LabOps } from './commands/lab.js';
