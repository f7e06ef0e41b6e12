import { chmodSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { ApiError, Client, fetchPinnedCa, type TlsConfig } from '../client/index.js';
import { WeftError } from '../model/index.js';
import { createCsr, fingerprint, issuedBy, parseJoinToken, renewalTime, summarize, writeFileAtomic } from '../pki/index.js';

/** A host's credentials on disk, in its state dir: agent.key (0600), agent.crt, ca.crt. */
export interface HostCredentials extends Required<TlsConfig> { host: string }

const files = (dir: string) => ({ key: join(dir, 'agent.key'), cert: join(dir, 'agent.crt'), ca: join(dir, 'ca.crt') });


function save(dir: string, c: HostCredentials): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  const f = files(dir);
  writeFileAtomic(f.ca, c.ca, 0o644);
  // The key before the certificate: a crash in between leaves a new key and an old certificate, which
  // load() refuses (they do not match), never an old key with a certificate for another one.
  writeFileAtomic(f.key, c.key, 0o600);
  writeFileAtomic(f.cert, c.cert, 0o644);
}

/** The credentials in `dir` if they are whole, belong to `host` (when given) and are still valid. */
export function loadCredentials(dir: string, host?: string): HostCredentials | undefined {
  const f = files(dir);
  if (!existsSync(f.key) || !existsSync(f.cert) || !existsSync(f.ca)) return undefined;
  const c = { key: readFileSync(f.key, 'utf8'), cert: readFileSync(f.cert, 'utf8'), ca: readFileSync(f.ca, 'utf8') };
  let name: string | undefined;
  try {
    name = /^host:(.*)$/.exec(summarize(c.cert).commonName)?.[1];
    if (!name || (host !== undefined && name !== host) || !issuedBy(c.cert, c.ca)) return undefined;
  } catch {
    // A file cut short (a power loss while it was written) or not PEM at all: not whole, so none; a
    // join with a token makes them again instead of failing on them.
    return undefined;
  }
  return { ...c, host: name };
}

/**
 * Joins with a one-time token: checks the server's CA against the token's pin before sending anything,
 * makes a key that never leaves this host, and trades a CSR for its certificate. If `dir` already holds
 * valid credentials for the token's host from the same CA, they are used and the token is not spent.
 */
export async function joinWithToken(servers: string[], token: string, dir: string, log: Logger): Promise<HostCredentials> {
  const t = parseJoinToken(token, '--join');
  const have = loadCredentials(dir, t.host);
  if (have && fingerprint(have.ca) === t.caHash) return have;
  let ca: string | undefined;
  let lastError: unknown;
  for (const s of servers) {
    try {
      ca = await fetchPinnedCa(s, t.caHash);
      break;
    } catch (e) {
      lastError = e;
      if (e instanceof ApiError && e.code === 'tls') throw e;
    }
  }
  if (ca === undefined) throw lastError;
  const { csrPem, keyPem } = await createCsr(`host:${t.host}`);
  const client = new Client({ servers, token: undefined, tls: { ca } });
  try {
    const r = await client.request<{ certificate: string; ca: string }>('POST', '/api/v1/join', { token, csr: csrPem });
    const creds = { host: t.host, key: keyPem, cert: r.certificate, ca };
    save(dir, creds);
    log.info({ joinedAs: t.host, serial: summarize(r.certificate).serial, dir }, 'joined: this host has its own certificate');
    return creds;
  } finally {
    client.close();
  }
}

/**
 * Renews the certificate two thirds into its life with a new key (the old one stays valid until it
 * expires, so nothing in flight breaks), saves it, and hands it to `use`. Failures retry every minute
 * (or sooner near the end). Returns a stop function.
 */
export function keepRenewing(client: Client, dir: string, creds: HostCredentials, use: (c: HostCredentials) => void, log: Logger): () => void {
  let timer: NodeJS.Timeout | undefined;
  let current = creds;
  let stopped = false;
  const schedule = (at: number) => {
    if (stopped) return;
    timer = setTimeout(() => void renew(), Math.min(Math.max(at - Date.now(), 0), 2 ** 31 - 1));
  };
  const renew = async () => {
    if (Date.now() < renewalTime(current.cert).getTime() - 1000) return schedule(renewalTime(current.cert).getTime());
    try {
      const { csrPem, keyPem } = await createCsr(`host:${current.host}`);
      const r = await client.request<{ certificate: string; ca: string }>('POST', `/api/v1/hosts/${current.host}/certificate`, { csr: csrPem });
      current = { host: current.host, key: keyPem, cert: r.certificate, ca: r.ca };
      save(dir, current);
      use(current);
      log.info({ serial: summarize(r.certificate).serial, notAfter: summarize(r.certificate).notAfter }, 'host certificate renewed');
      schedule(renewalTime(current.cert).getTime());
    } catch (e) {
      const left = summarize(current.cert).notAfter.getTime() - Date.now();
      log.warn({ err: (e as Error).message, expiresInS: Math.round(left / 1000) }, 'renewing the host certificate failed; retrying');
      schedule(Date.now() + Math.max(1000, Math.min(60_000, left / 10)));
    }
  };
  schedule(renewalTime(current.cert).getTime());
  return () => {
    stopped = true;
    if (timer) clearTimeout(timer);
  };
}

export function notJoined(host: string, dir: string): WeftError {
  return new WeftError('WEFT_UNAUTHENTICATED', `host ${host} has not joined (no certificate in ${dir}): ask an admin for \`weft host add ${host}\` and start the agent with --join TOKEN`, { field: '--join' });
}
