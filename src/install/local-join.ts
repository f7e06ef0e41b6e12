import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { ApiError, Client } from '../client/index.js';
import { WeftError } from '../model/plain.js';

/**
 * What weft-agent.service runs before the agent when the server is on the same host: `weft up` hands its
 * agent a join token minted in-process; two services cannot, so this asks the local server for one with
 * the admin token it keeps in DATA_DIR (as `weft host add` run there would) and leaves it where the
 * agent's --join-file reads it. Like `weft up`, a certificate the agent already has from this server's
 * CA is kept and no token is minted, and the token file left from the start that joined is removed
 * (the agent never spends a token when it is joined, agent/identity.ts; but an unspent token is a secret
 * worth nothing to keep).
 */
export interface LocalJoinOptions {
  server: string;
  /** The server's data dir: admin.token and ca.crt. */
  dataDir: string;
  /** The agent's state dir: agent.key, agent.crt, ca.crt once joined. */
  stateDir: string;
  joinFile: string;
  /** Defaults to the name `weft agent` takes without --host. */
  host?: string;
  /** Asks the server for a join token; tests give their own. */
  mint?: (host: string) => Promise<string>;
  /** How long to wait for the server to come up (it starts beside the agent). */
  waitMs?: number;
  sleep?: (ms: number) => Promise<void>;
  now?: () => number;
}

export type LocalJoin = { done: 'joined' | 'token-written'; host: string };

export async function ensureLocalJoin(o: LocalJoinOptions): Promise<LocalJoin> {
  const host = o.host ?? agentHostName();
  if (joinedTo(o.stateDir, o.dataDir)) {
    rmSync(o.joinFile, { force: true });
    return { done: 'joined', host };
  }
  const now = o.now ?? Date.now;
  const sleep = o.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const mint = o.mint ?? ((h: string) => mintWithAdminToken(o.server, o.dataDir, h));
  const deadline = now() + (o.waitMs ?? 60_000);
  for (;;) {
    try {
      writeSecret(o.joinFile, await mint(host));
      return { done: 'token-written', host };
    } catch (e) {
      if (!startingUp(e) || now() >= deadline) throw explain(e, host, o);
      await sleep(1000);
    }
  }
}

/** As cli/commands/daemon.ts names the host when --host is not given (the token is bound to that name). */
export function agentHostName(): string {
  return (hostname().split('.')[0] ?? '').toLowerCase();
}

/** Joined to this server: a whole set of credentials whose CA is the one the local server serves with. */
function joinedTo(stateDir: string, dataDir: string): boolean {
  const files = ['agent.key', 'agent.crt', 'ca.crt'].map((f) => join(stateDir, f));
  if (!files.every((f) => existsSync(f)) || !existsSync(join(dataDir, 'ca.crt'))) return false;
  return readFileSync(join(stateDir, 'ca.crt'), 'utf8').trim() === readFileSync(join(dataDir, 'ca.crt'), 'utf8').trim();
}

async function mintWithAdminToken(server: string, dataDir: string, host: string): Promise<string> {
  const read = (name: string) => {
    const file = join(dataDir, name);
    // Written by the server's first start, before it listens: not there yet while it starts.
    if (!existsSync(file)) throw new WeftError('WEFT_NOT_FOUND', `no ${file} (the server writes it at its first start)`);
    return readFileSync(file, 'utf8').trim();
  };
  const client = new Client({ servers: [server], token: read('admin.token'), tls: { ca: read('ca.crt') } });
  try {
    const r = await client.request<{ token: string }>('POST', `/api/v1/hosts/${encodeURIComponent(host)}/join-token`, { expiresIn: 600 });
    return r.token;
  } finally {
    client.close();
  }
}

/** The server is still starting: its files are not written yet, or nothing listens yet. */
function startingUp(e: unknown): boolean {
  return (e instanceof WeftError && e.code === 'WEFT_NOT_FOUND') || (e instanceof ApiError && e.status === 0 && e.code === 'unreachable');
}

function explain(e: unknown, host: string, o: LocalJoinOptions): Error {
  const by = `weft host add ${host}`;
  if (e instanceof ApiError && e.status === 409) {
    return new WeftError('WEFT_EXISTS', `host ${host} joined this server before, but ${o.stateDir} holds no certificate of it: \`weft host rm ${host}\` revokes the old one, then restart weft-agent`, { cause: e });
  }
  const why = e instanceof Error ? e.message : String(e);
  return new WeftError('WEFT_UNAUTHENTICATED', `could not get a join token from the local server ${o.server} (${why}); join by hand: \`${by}\`, put the token in ${o.joinFile} (0600), restart weft-agent`, { cause: e });
}

function writeSecret(file: string, token: string): void {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${randomBytes(8).toString('hex')}.tmp`;
  // Created, never opened through a link or an existing file.
  writeFileSync(tmp, `${token.trim()}\n`, { mode: 0o600, flag: 'wx' });
  chmodSync(tmp, 0o600);
  renameSync(tmp, file);
}
