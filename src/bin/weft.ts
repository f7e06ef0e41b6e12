#!/usr/bin/env node
// Start-up file for the `weft` command: the only place that wires the CLI to the server.
import { runCli } from '../cli/index.js';
import { startServer } from '../server/index.js';

const io = {
  out: (s: string) => void process.stdout.write(s),
  err: (s: string) => void process.stderr.write(s),
  env: process.env,
};

const code = await runCli(process.argv.slice(2), io, { startServer });
process.exitCode = code;
