// The long-running processes `weft` starts (server, agent), loaded only when one is asked for: a plain
// CLI call then never loads fastify, SQLite, etcd or the X.509 code (measured: bench:api's CLI row).
import pino from 'pino';
import { readFileSync } from 'node:fs';
import { VERSION, type AgentFlags } from '../cli/index.js';
import { startServer, type RunningServer } from '../server/index.js';
import { Agent, uninstall, wireguardKeyPath, joinWithToken, loadCredentials, notJoined, type AgentOptions } from '../agent/index.js';
import { WeftError } from '../model/index.js';
import { ProcessRunner, TracingRunner, type Runner } from '../exec/index.js';
import { DATAPATHS, detectUnderlayIp, detectUnderlayIp6, isDatapathKind, type Datapath } from '../datapath/index.js';
import { parseUpstream, upstreamsFromResolvConf } from '../dns/index.js';

export { startServer };

export async function startAgent(f: AgentFlags): Promise<{ close(): Promise<void> }> {
  // WEFT_EXEC_TRACE=DIR records every command the agent runs and its input (exec/trace.ts): for post-mortems.
  const trace = process.env['WEFT_EXEC_TRACE'];
  const runner: Runner = trace ? new TracingRunner(new ProcessRunner(), trace) : new ProcessRunner();
  const datapath = datapathOf(f, runner);
  // The host's name is bound once: as given while joining, then as the server knows it (a child logger
  // adds its bindings beside the parent's, so binding it in both wrote "host" twice on every line).
  const base = pino({ level: f.logLevel, base: { proc: 'weft-agent' } }, pino.destination(2));
  const auth = await agentAuth(f, base.child({ host: f.host }));
  const log = base.child({ host: auth.host });
  const dnsUpstreams = f.dnsUpstreams ? f.dnsUpstreams.map(parseUpstream) : upstreamsFromResolvConf(readResolvConf());
  const vtepIp = f.vtepIp ?? (await detectUnderlayIp(runner));
  const vtepIp6 = f.vtepIp6 === 'none' ? undefined : f.vtepIp6 ?? (f.datapath === 'linux' ? await detectUnderlayIp6(runner, vtepIp) : undefined);
  const { vtepIp6: _flag, ...rest } = f;
  const agent = new Agent({ ...rest, ...auth, dnsUpstreams, vtepIp, ...(vtepIp6 !== undefined ? { vtepIp6, vtepIp6Detected: f.vtepIp6 === undefined } : {}), log, runner, datapath, version: VERSION });
  await agent.start();
  return { close: () => agent.stop() };
}

/** A user token with the server's CA, or this host's certificate: joined now with --join, or saved before. */
async function agentAuth(f: AgentFlags, log: pino.Logger): Promise<Pick<AgentOptions, 'host' | 'tls' | 'token' | 'identity'>> {
  if (f.token !== undefined) {
    if (f.caPem === undefined) throw new WeftError('WEFT_INVALID_FIELD', "--ca: the server's CA is needed with --token-file (or WEFT_CA)", { field: '--ca' });
    return { host: f.host, token: f.token, tls: { ca: f.caPem } };
  }
  const creds = f.join !== undefined ? await joinWithToken(f.servers, f.join, f.stateDir, log) : loadCredentials(f.stateDir, f.hostGiven ? f.host : undefined);
  if (!creds) throw notJoined(f.host, f.stateDir);
  if (f.hostGiven && creds.host !== f.host) {
    throw new WeftError('WEFT_INVALID_FIELD', `--host: this host joined as ${creds.host}, not ${f.host} (the token names the host)`, { field: '--host' });
  }
  return { host: creds.host, tls: creds, identity: { dir: f.stateDir, creds } };
}

/** `weft up`: its agent keeps a certificate it already has from this server's CA, else joins with a fresh token. */
export async function ownJoin(server: RunningServer, f: AgentFlags): Promise<string | undefined> {
  const have = loadCredentials(f.stateDir, f.host);
  return have && have.ca.trim() === server.caPem.trim() ? undefined : server.invite(f.host);
}

function readResolvConf(): string {
  try {
    return readFileSync('/etc/resolv.conf', 'utf8');
  } catch {
    return '';
  }
}

export const uninstallAgent = (f: AgentFlags) => uninstall(datapathOf(f, new ProcessRunner()), f);

function datapathOf(f: AgentFlags, runner: Runner): Datapath {
  if (!isDatapathKind(f.datapath)) {
    throw new WeftError('WEFT_INVALID_FIELD', `--datapath: '${f.datapath}' is not one of ${Object.keys(DATAPATHS).join(', ')}`, { field: '--datapath' });
  }
  if (f.vtepIp === undefined && f.datapath !== 'linux') {
    throw new WeftError('WEFT_INVALID_FIELD', `--vtep-ip: needed with --datapath ${f.datapath} (a simulated host has no underlay address to find)`, { field: '--vtep-ip' });
  }
  return DATAPATHS[f.datapath]({ runner, nsPrefix: f.nsPrefix, stateDir: f.stateDir, keyFile: wireguardKeyPath(f.stateDir), nftHelper: f.nftHelper });
}
