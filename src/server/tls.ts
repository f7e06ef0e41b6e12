import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { hostname, networkInterfaces } from 'node:os';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { WeftError } from '../model/index.js';
import { issueWithKey, issuedBy, writeFileAtomic } from '../pki/index.js';
import type { CaSource } from '../control/index.js';

/** `--tls-cert/--tls-key/--tls-ca[/--tls-ca-key]` (bring your own) and `--tls-san` (more names). */
export interface TlsFlags { cert?: string; key?: string; ca?: string; caKey?: string; sans?: string[] }
export interface TlsMaterial { key: string; cert: string; ca: string }

const SERVER_CERT_DAYS = 365;
/** A server certificate closer than this to its end is replaced at start. */
const RENEW_BEFORE_MS = 30 * 86_400_000;

function readFlagFile(path: string, flag: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    throw new WeftError('WEFT_INVALID_FIELD', `${flag}: cannot read ${path} (${(e as Error).message})`, { field: flag });
  }
}

/** A CA brought with --tls-ca (and --tls-ca-key to issue host certificates), else undefined. */
export function flagCa(f: TlsFlags): CaSource | undefined {
  if (f.cert === undefined && f.key === undefined && f.ca === undefined && f.caKey === undefined) return undefined;
  if (f.ca === undefined) throw new WeftError('WEFT_INVALID_FIELD', '--tls-ca: required with --tls-cert, --tls-key or --tls-ca-key (the CA that signed the server certificate and signs hosts)', { field: '--tls-ca' });
  if ((f.cert === undefined) !== (f.key === undefined)) throw new WeftError('WEFT_INVALID_FIELD', '--tls-cert and --tls-key: give both or neither', { field: f.cert === undefined ? '--tls-cert' : '--tls-key' });
  const certPem = readFlagFile(f.ca, '--tls-ca');
  try {
    if (!new X509Certificate(certPem).ca) throw new Error('it is not a CA certificate');
  } catch (e) {
    throw new WeftError('WEFT_INVALID_FIELD', `--tls-ca: ${f.ca}: ${(e as Error).message}`, { field: '--tls-ca' });
  }
  const keyPem = f.caKey === undefined ? undefined : readFlagFile(f.caKey, '--tls-ca-key');
  return { get: async () => ({ certPem, ...(keyPem !== undefined ? { keyPem } : {}) }) };
}

/** Every name the server answers to: the listen address (all local addresses for a wildcard), the host name, loopback. */
export function serverNames(listenHost: string, extra: readonly string[] = []): { dns: string[]; ips: string[] } {
  const ips = new Set<string>(['127.0.0.1', '::1']);
  const dns = new Set<string>(['localhost', hostname()]);
  const wildcard = listenHost === '0.0.0.0' || listenHost === '::' || listenHost === '';
  if (wildcard) for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) ips.add(a.address.replace(/%.*$/, ''));
  for (const n of wildcard ? extra : [listenHost, ...extra]) (isIP(n) ? ips : dns).add(n);
  return { dns: [...dns].sort(), ips: [...ips].sort() };
}

function covers(certPem: string, names: { dns: string[]; ips: string[] }): boolean {
  const c = new X509Certificate(certPem);
  return names.ips.every((ip) => c.checkIP(ip) !== undefined) && names.dns.every((d) => c.checkHost(d, { wildcards: false }) !== undefined);
}


/**
 * The server's TLS material. Brought with flags: used as given. Otherwise: the CA (from the store, made at
 * first start) is written to DATA_DIR/ca.crt for local clients, and DATA_DIR/server.crt + server.key (0600)
 * are kept while they are signed by that CA, name every address the server answers on, and have more than
 * 30 days left; else a new one-year certificate is made.
 */
export async function prepareTls(o: { dataDir: string; listenHost: string; flags: TlsFlags; ca: CaSource }): Promise<TlsMaterial & { made: boolean }> {
  const authority = await o.ca.get();
  const ca = authority.certPem;
  if (o.flags.cert !== undefined && o.flags.key !== undefined) {
    const cert = readFlagFile(o.flags.cert, '--tls-cert');
    if (!issuedBy(cert, ca)) throw new WeftError('WEFT_INVALID_FIELD', `--tls-cert: ${o.flags.cert} is not signed by --tls-ca ${o.flags.ca} (or has expired)`, { field: '--tls-cert' });
    return { cert, key: readFlagFile(o.flags.key, '--tls-key'), ca, made: false };
  }
  mkdirSync(o.dataDir, { recursive: true, mode: 0o700 });
  writeFileAtomic(join(o.dataDir, 'ca.crt'), ca, 0o644);
  const certFile = join(o.dataDir, 'server.crt');
  const keyFile = join(o.dataDir, 'server.key');
  const names = serverNames(o.listenHost, o.flags.sans);
  if (existsSync(certFile) && existsSync(keyFile)) {
    const cert = readFileSync(certFile, 'utf8');
    if (issuedBy(cert, ca, new Date(Date.now() + RENEW_BEFORE_MS)) && covers(cert, names)) return { cert, key: readFileSync(keyFile, 'utf8'), ca, made: false };
  }
  if (!authority.keyPem) throw new WeftError('WEFT_INVALID_FIELD', '--tls-cert: this server has no CA key to make its certificate; give --tls-cert and --tls-key', { field: '--tls-cert' });
  const made = await issueWithKey({ certPem: authority.certPem, keyPem: authority.keyPem }, {
    commonName: 'weft-server', usage: 'server', ttlMs: SERVER_CERT_DAYS * 86_400_000, dnsNames: names.dns, ips: names.ips,
  });
  writeFileAtomic(keyFile, made.keyPem, 0o600);
  writeFileAtomic(certFile, made.certPem, 0o644);
  return { cert: made.certPem, key: made.keyPem, ca, made: true };
}
