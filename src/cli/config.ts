import { chmodSync, chownSync, existsSync, fchmodSync, lstatSync, mkdirSync, readFileSync, readlinkSync, writeFileSync, accessSync, constants, openSync, readSync, closeSync, renameSync, rmSync, statSync, type Stats } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';
import { homedir } from 'node:os';
import { CliError, usage } from './errors.js';
import type { Target } from '../client/index.js';

export const DEFAULT_SERVER = 'https://127.0.0.1:9700';
/** Where `weft server`/`weft up` keep their data by default; its admin.token is the local fallback. */
export const DEFAULT_DATA_DIR = '/var/lib/weft';

export interface CliConfig {
  server?: string;
  token?: string;
  /** The server's CA (PEM), saved by `weft login --ca FILE` or `--ca-pin`. */
  ca?: string;
}

export function configPath(env: NodeJS.ProcessEnv = process.env): string {
  const base = env['XDG_CONFIG_HOME'] || join(env['HOME'] || homedir(), '.config');
  return join(base, 'weft', 'config.json');
}

/** A config file larger than this is not one `weft login` wrote (it holds a token, a URL and a CA). */
const MAX_CONFIG_BYTES = 1 << 20;

export function readConfig(env: NodeJS.ProcessEnv = process.env): CliConfig {
  const file = configPath(env);
  if (!existsSync(file)) return {};
  let text: string;
  try {
    // Read by every command, so never waiting: a config that is /dev/zero, a FIFO, a directory or a
    // huge file fails at once.
    text = readBounded(file, MAX_CONFIG_BYTES, file, { regularOnly: true });
  } catch (e) {
    throw usage(`${(e as Error).message.startsWith(file) ? (e as Error).message : `${file}: cannot read it (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`}; fix or delete it (weft login writes it)`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw usage(`${file} is not valid JSON (${(e as Error).message}); fix or delete it`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw usage(`${file} is not a JSON object; fix or delete it (weft login writes it)`);
  for (const k of ['server', 'token', 'ca'] as const) {
    const v = (value as Record<string, unknown>)[k];
    if (v !== undefined && typeof v !== 'string') throw usage(`${file}: ${k} must be text; fix or delete it (weft login writes it)`);
  }
  return value as CliConfig;
}

/**
 * Writes the config file (0600) and returns its path. `said`: told when a link at config.json was
 * replaced by the file (a config kept elsewhere, in a dotfiles repository say, is not written through: its
 * every directory and link would have to be checked as the user's own, and the token would sit in a
 * repository; the user is told instead of finding the copy stale).
 */
export function writeConfig(cfg: CliConfig, env: NodeJS.ProcessEnv = process.env, said?: (line: string) => void): string {
  const file = configPath(env);
  const dir = dirname(file);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  // A directory of ours others may write into (made 0777 by hand): whoever can would swap the server and
  // CA in; narrowed. One of another user's is left alone (and its files are not ours to trust: said).
  const st = statSync(dir);
  if ((st.mode & 0o022) !== 0) {
    if (st.uid === process.getuid?.()) chmodSync(dir, 0o700);
    else throw usage(`${dir} belongs to another user and others may write into it; weft will not keep a token there (set XDG_CONFIG_HOME)`);
  }
  // A fresh file renamed over the old one: a symlink planted at config.json is replaced, never followed
  // (the token written through it landed wherever it pointed). It keeps the old file's owner (`sudo -E
  // weft login` must not leave the user a root-owned config).
  const text = `${JSON.stringify(cfg, null, 2)}\n`;
  // lstat: a dangling link is there too (existsSync follows it).
  let old: ReturnType<typeof lstatSync> | undefined;
  try {
    old = lstatSync(file);
  } catch {
    old = undefined;
  }
  const link = old?.isSymbolicLink() ? linkTarget(file) : undefined;
  const tmp = join(dir, `.config.json.${randomBytes(6).toString('hex')}`);
  try {
    writeFileSync(tmp, text, { mode: 0o600, flag: 'wx' });
    if (old?.isFile() && old.uid !== process.getuid?.() && process.getuid?.() === 0) chownSync(tmp, old.uid, old.gid);
    renameSync(tmp, file);
    if (link !== undefined) said?.(`weft: ${file} was a link${link}; it is now a file of its own (a token is written only into a file weft made)`);
  } catch (e) {
    rmSync(tmp, { force: true });
    const code = (e as NodeJS.ErrnoException).code;
    // A directory we may not add to (read-only, another's) but a config file we may write: in place,
    // never through a symlink (O_NOFOLLOW).
    if ((code === 'EACCES' || code === 'EPERM' || code === 'EROFS') && old?.isFile()) {
      try {
        const fd = openSync(file, constants.O_WRONLY | constants.O_TRUNC | constants.O_NOFOLLOW);
        try {
          fchmodSync(fd, 0o600);
          writeFileSync(fd, text);
        } finally {
          closeSync(fd);
        }
        return file;
      } catch (e2) {
        throw usage(`cannot write ${file} (${(e2 as NodeJS.ErrnoException).code ?? (e2 as Error).message})`);
      }
    }
    throw usage(`cannot write ${file} (${code ?? (e as Error).message})`);
  }
  return file;
}


/** ` to TARGET`, as the link says it, for a message; empty if it cannot be read. */
function linkTarget(file: string): string {
  try {
    return ` to ${JSON.stringify(readlinkSync(file))}`;
  } catch {
    return '';
  }
}

/**
 * Server: --server, WEFT_SERVER, the config file, then https://127.0.0.1:9700 (a comma list fails over).
 * Token: see resolveToken; then the config file, then — for the local default server only — the admin
 * token a local `weft up` saved in /var/lib/weft/admin.token (readable by root only).
 * CA: --ca, WEFT_CA (files), the config file, then /var/lib/weft/ca.crt when this user can read it.
 */
export function resolveTarget(flags: TokenFlags & { server?: string; ca?: string }, env: NodeJS.ProcessEnv = process.env): Target {
  const cfg = readConfig(env);
  const server = flags.server ?? env['WEFT_SERVER'] ?? cfg.server ?? DEFAULT_SERVER;
  const servers = parseServers(server, flags.server !== undefined ? '--server' : env['WEFT_SERVER'] !== undefined ? 'WEFT_SERVER' : 'server');
  let token = resolveToken(flags, env) ?? (cfg.token === undefined ? undefined : printableToken(cfg.token, configPath(env)));
  if (token === undefined && server === DEFAULT_SERVER) token = readLocal('admin.token');
  const caFile = flags.ca ?? env['WEFT_CA'];
  const ca = caFile !== undefined ? readCa(caFile, flags.ca !== undefined ? '--ca' : 'WEFT_CA') : cfg.ca ?? readLocal('ca.crt');
  return { servers, token, ...(ca ? { tls: { ca } } : {}) };
}

/** `https://host:port[,https://...]`; plain HTTP is refused here, before anything is sent. */
export function parseServers(text: string, flag = '--server'): string[] {
  const servers = text.split(',').map((s) => s.trim().replace(/\/+$/, '')).filter(Boolean);
  if (servers.length === 0) throw usage(`${flag}: give a server URL like ${DEFAULT_SERVER}`);
  for (const s of servers) {
    if (/^http:\/\//i.test(s)) throw usage(`${flag}: '${s}' is plain HTTP, which Weft refuses; use ${s.replace(/^http:/i, 'https:')}`);
    if (!/^https:\/\/[^/\s]+$/.test(s)) throw usage(`${flag}: '${s}' is not a URL like ${DEFAULT_SERVER}`);
  }
  return servers;
}

export function readCa(file: string, flag: string): string {
  let text: string;
  try {
    text = readBounded(file, MAX_CA_BYTES, flag);
  } catch (e) {
    if (e instanceof Error && e.message.startsWith(flag)) throw usage(e.message);
    throw usage(`${flag}: cannot read ${file} (${(e as Error).message})`);
  }
  if (!text.includes('-----BEGIN CERTIFICATE-----')) throw usage(`${flag}: ${file} is not a PEM certificate`);
  return text;
}

export interface TokenFlags {
  token?: string;
  tokenFile?: string;
}

/**
 * The token from the command line or the environment, or undefined (then the config file, then the
 * local admin token, decide). Flags beat the environment: --token, --token-file, WEFT_TOKEN,
 * WEFT_TOKEN_FILE. Two sources at the same level are a usage error, since either could be the one
 * meant; so is a token file that is missing, unreadable, empty or too big to be a token.
 */
export function resolveToken(flags: TokenFlags, env: NodeJS.ProcessEnv): string | undefined {
  if (flags.token !== undefined && flags.tokenFile !== undefined) throw usage('give --token or --token-file, not both');
  if (flags.token !== undefined) return printableToken(flags.token, '--token');
  if (flags.tokenFile !== undefined) return readTokenFile(flags.tokenFile, '--token-file');
  const inline = env['WEFT_TOKEN'] || undefined;
  const file = env['WEFT_TOKEN_FILE'] || undefined;
  if (inline !== undefined && file !== undefined) throw usage('WEFT_TOKEN and WEFT_TOKEN_FILE are both set; unset one');
  return inline !== undefined ? printableToken(inline, 'WEFT_TOKEN') : file === undefined ? undefined : readTokenFile(file, 'WEFT_TOKEN_FILE');
}

/**
 * A token is one word of printable characters: one with a space, newline or control character cannot go
 * in a header, and was reported as the server being unreachable (exit 6: "try again later", for ever).
 */
function printableToken(token: string, source: string): string {
  if (token === '') throw usage(`${source}: the token is empty`);
  if (/[\x00-\x20\x7f-\x9f]/.test(token)) throw usage(`${source}: the token holds a space, a line break or a control character; give only the token`);
  return token;
}

const MAX_TOKEN_FILE = 4096;

/** Reads a token file, at most 4 KiB (so `/dev/zero` or a log file given by mistake fails fast). */
export function readTokenFile(file: string, source: string): string {
  let text: string;
  try {
    text = readBounded(file, MAX_TOKEN_FILE, source).trim();
  } catch (e) {
    if (/is larger than/.test((e as Error).message)) throw usage(`${source}: ${file} is larger than 4 KiB; it does not hold a token`);
    if ((e as Error).message.startsWith(`${source}: `)) throw usage((e as Error).message);
    throw usage(`${source}: cannot read ${file} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  if (!text) throw usage(`${source}: ${file} is empty`);
  if (/\s/.test(text)) throw usage(`${source}: ${file} holds more than one word; put only the token in it`);
  return text;
}

/** A file a local `weft up`/`weft server` keeps in /var/lib/weft (admin.token, ca.crt), if this user may read it. */
export function readLocal(name: string): string | undefined {
  const file = join(DEFAULT_DATA_DIR, name);
  try {
    accessSync(file, constants.R_OK);
    return readFileSync(file, 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

/** A CA bundle larger than this is not one (the system's whole bundle is ~220 KB). */
const MAX_CA_BYTES = 4 << 20;

/** How long a FIFO named on the command line may wait for its writer. */
export const FIFO_WAIT_MS = 10_000;
/** How long a file named on the command line may keep weft waiting for its next piece. */
export const IDLE_WAIT_MS = 60_000;

export interface ReadOptions {
  /** Only a regular file (or a link to one): for a file read on every command, which must never wait. */
  regularOnly?: boolean;
  /** How long a FIFO may wait for a writer (FIFO_WAIT_MS). */
  writerWaitMs?: number;
  /** How long any file may wait for its next piece (IDLE_WAIT_MS). */
  idleWaitMs?: number;
}

/** What a file that is not a regular one is, for an error. */
function kindOf(st: Stats): string {
  if (st.isFIFO()) return 'a FIFO';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSocket()) return 'a socket';
  if (st.isDirectory()) return 'a directory';
  return 'not a regular file';
}

/** Sleeps the thread a moment: these reads are synchronous, and spinning would take a core. */
const nap = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

/** `-`, `/dev/stdin`, `/dev/fd/N`, `/proc/self/fd/N`: a descriptor weft was given (opening it again would open what it points to anew). */
function heldFd(file: string): number | undefined {
  if (file === '-' || file === '/dev/stdin') return 0;
  const m = /^\/(?:dev\/fd|proc\/self\/fd)\/([0-9]{1,6})$/.exec(file);
  return m ? Number(m[1]) : undefined;
}

/**
 * Reads a file (or standard input, `-`), refusing it as soon as it passes `max` bytes: `/dev/zero` or an
 * endless pipe is refused at once instead of filling the memory. The error begins with `flag`.
 *
 * Opened non-blocking, so that opening never hangs, and never waiting without end on a file named on the
 * command line. A FIFO reads end-of-file while no writer has it open, before its writer came as well as
 * after it left: an end counts once a writer was seen (data, or EAGAIN: one that has not written yet), and
 * until then weft waits for one, at most `writerWaitMs` (`mkfifo p; weft apply -f p & make-yaml > p`
 * works whichever opens first). A writer that came and went with nothing before weft's first look is not
 * seen (Node cannot block in an open on another thread: a worker's blocked open aborted the process here),
 * so that reads as none, after the wait. Any file waits at most `idleWaitMs` for its next piece. Standard
 * input (`-`, `/dev/stdin`, `/dev/fd/N`: read through the descriptor weft was given) may be a terminal
 * someone types into: no deadline. `regularOnly` refuses anything but a regular file before opening it.
 */
export function readBounded(file: string, max: number, flag: string, opts: ReadOptions = {}): string {
  const who = flag === file ? file : `${flag}: ${file}`;
  const held = heldFd(file);
  let fd: number;
  let fifo = false;
  if (held !== undefined) fd = held;
  else {
    const st = statSync(file);
    if (opts.regularOnly && !st.isFile()) throw new Error(`${who} is ${kindOf(st)}, not a regular file`);
    fd = openSync(file, constants.O_RDONLY | constants.O_NONBLOCK);
    fifo = st.isFIFO();
  }
  try {
    const writerWaitMs = opts.writerWaitMs ?? FIFO_WAIT_MS;
    const idleWaitMs = opts.idleWaitMs ?? IDLE_WAIT_MS;
    let writerSeen = !fifo;
    const chunks: Buffer[] = [];
    let total = 0;
    let last = Date.now();
    const buf = Buffer.alloc(1 << 16);
    for (;;) {
      let n: number;
      try {
        n = readSync(fd, buf, 0, buf.length, null);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') throw e;
        // Nothing yet (a writer that has not written, a non-blocking standard input): wait a moment rather than spin.
        writerSeen = true;
        if (held === undefined && Date.now() - last >= idleWaitMs) throw new Error(`${who}: nothing came through it in ${idleWaitMs / 1000} s`);
        nap(10);
        continue;
      }
      if (n === 0) {
        if (writerSeen) break;
        if (Date.now() - last >= writerWaitMs) throw new Error(`${who} is a FIFO, and in ${writerWaitMs / 1000} s no writer held it open (or one came and went with nothing)`);
        nap(10);
        continue;
      }
      writerSeen = true;
      last = Date.now();
      total += n;
      if (total > max) throw new Error(`${file === '-' ? `${flag}: standard input` : who} is larger than ${max} bytes`);
      chunks.push(Buffer.from(buf.subarray(0, n)));
    }
    return Buffer.concat(chunks).toString('utf8');
  } finally {
    if (held === undefined) closeSync(fd);
  }
}
