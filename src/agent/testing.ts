import { join } from 'node:path';
import type { Logger } from 'pino';
import type { MemoryDatapath } from '../datapath/index.js';
import { Agent, type AgentOptions } from './agent.js';
import { joinWithToken, loadCredentials } from './identity.js';

/**
 * For tests of the agent without root: a real agent in the test's process, joined with its own host
 * certificate, on the in-memory datapath. Never used by the product.
 */
export interface MemoryAgentOptions {
  serverUrl: string;
  /** A one-time join token for `host` (the first start joins; later starts reuse the credentials). */
  invite: () => Promise<string>;
  /** Run on a user's token instead (no join), trusting the server's CA `ca` (PEM). */
  token?: { token: string; ca: string };
  dir: string;
  dp: MemoryDatapath;
  nsPrefix: string;
  host: string;
  resyncMs: number;
  repairGraceMs: number;
  log: Logger;
}

export async function startMemoryAgent(o: MemoryAgentOptions, extra: Partial<AgentOptions> = {}): Promise<Agent> {
  const stateDir = join(o.dir, 'state');
  let auth: Pick<AgentOptions, 'tls' | 'identity' | 'token'>;
  if (o.token) {
    auth = { tls: { ca: o.token.ca }, token: o.token.token };
  } else {
    const creds = loadCredentials(stateDir, o.host) ?? await joinWithToken([o.serverUrl], await o.invite(), stateDir, o.log);
    auth = { tls: creds, identity: { dir: stateDir, creds } };
  }
  const agent = new Agent({
    servers: [o.serverUrl], ...auth, stateDir, host: o.host, runDir: join(o.dir, 'run'),
    cniConfDir: join(o.dir, 'net.d'), cniBinDirs: [join(o.dir, 'bin')], nsPrefix: o.nsPrefix, vtepIp: '192.0.2.1', resyncMs: o.resyncMs,
    repairGraceMs: o.repairGraceMs, dnsPort: 15353, dnsUpstreams: [], log: o.log, datapath: o.dp, version: 'test',
    runner: { run: () => Promise.reject(new Error('no command may run: the datapath is in memory')) },
    ...extra,
  });
  await agent.start();
  return agent;
}
