#!/usr/bin/env node
// Start-up file for the `weft` command: the only place that wires the CLI to the server and the agent.
import pino from 'pino';
import { runCli, VERSION, type AgentFlags } from '../cli/index.js';
import { startServer } from '../server/index.js';
import { Agent, uninstall } from '../agent/index.js';
import { ProcessRunner } from '../exec/index.js';
import { detectUnderlayIp } from '../datapath/index.js';
import { labUp, labDown, labRun, readLab, alive } from '../lab/index.js';
import { parseUpstream, upstreamsFromResolvConf } from '../dns/index.js';
import { readFileSync } from 'node:fs';

const io = {
  out: (s: string) => void process.stdout.write(s),
  err: (s: string) => void process.stderr.write(s),
  env: process.env,
};

async function startAgent(f: AgentFlags): Promise<{ close(): Promise<void> }> {
  const runner = new ProcessRunner();
  const log = pino({ level: f.logLevel, base: { proc: 'weft-agent', host: f.host } }, pino.destination(2));
  const dnsUpstreams = f.dnsUpstreams ? f.dnsUpstreams.map(parseUpstream) : upstreamsFromResolvConf(readResolvConf());
  const agent = new Agent({ ...f, dnsUpstreams, vtepIp: f.vtepIp ?? (await detectUnderlayIp(runner)), log, runner, version: VERSION });
  await agent.start();
  return { close: () => agent.stop() };
}

function readResolvConf(): string {
  try {
    return readFileSync('/etc/resolv.conf', 'utf8');
  } catch {
    return '';
  }
}

const lab = {
  up: labUp,
  down: labDown,
  run: labRun,
  read: (dir?: string) => readLab(dir),
  alive,
};

const uninstallAgent = (f: AgentFlags) => uninstall(new ProcessRunner(), f);

const code = await runCli(process.argv.slice(2), io, { startServer, startAgent, uninstallAgent, lab });
process.exitCode = code;
