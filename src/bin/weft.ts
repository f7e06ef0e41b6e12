#!/usr/bin/env node
// Start-up file for the `weft` command: the only place that wires the CLI to the server, the agent and
// the lab. Each is imported only when a command needs it (daemons.ts for `server`, `agent`, `up`; the lab
// for `lab`), so a client verb loads none of them: see the CLI's README ("Start-up").
import { runCli, type AgentFlags, type ServerFlags } from '../cli/index.js';
import type { RunningServer } from '../server/index.js';

// `weft host ls | head -1`: a reader that stops early closes the pipe; the rest of the output has nowhere
// to go, which is not a failure of the command (Node ignores SIGPIPE, so the write fails with EPIPE and,
// unhandled, crashed with a stack trace and exit 1). Exit quietly with 0: the reader chose to stop.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code !== 'EPIPE') throw e;
  process.exit(0);
});

const io = {
  out: (s: string) => void process.stdout.write(s),
  err: (s: string) => void process.stderr.write(s),
  env: process.env,
  exit: (code: number) => process.exit(code),
};

const daemons = () => import('./daemons.js');

const lab = async () => {
  const { labUp, labDown, labRun, readLab, alive } = await import('../lab/index.js');
  return { up: labUp, down: labDown, run: labRun, read: (dir?: string) => readLab(dir), alive };
};

const code = await runCli(process.argv.slice(2), io, {
  startServer: async (o: ServerFlags) => (await daemons()).startServer(o),
  startAgent: async (f: AgentFlags) => (await daemons()).startAgent(f),
  ownJoin: async (d, f) => (await daemons()).ownJoin(d as RunningServer, f),
  uninstallAgent: async (f: AgentFlags) => (await daemons()).uninstallAgent(f),
  lab,
});
process.exitCode = code;
