import { existsSync, mkdirSync, readFileSync, writeFileSync, accessSync, constants } from 'node:fs';
import { dirname, join } from 'node:path';
import { homedir } from 'node:os';
import { usage } from './errors.js';
import type { Target } from '../client/index.js';

export const DEFAULT_SERVER = 'http://127.0.0.1:9700';
/** Where `weft server`/`weft up` keep their data by default; its admin.token is the local fallback. */
export const DEFAULT_DATA_DIR = '/var/lib/weft';

export interface CliConfig {
  server?: string;
  token?: string;
}

export function configPath(env: NodeJS.ProcessEnv = process.env): string {
  const base = env['XDG_CONFIG_HOME'] || join(env['HOME'] || homedir(), '.config');
  return join(base, 'weft', 'config.json');
}

export function readConfig(env: NodeJS.ProcessEnv = process.env): CliConfig {
  const file = configPath(env);
  if (!existsSync(file)) return {};
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as CliConfig;
  } catch (e) {
    throw usage(`${file} is not valid JSON (${(e as Error).message}); fix or delete it`);
  }
}

export function writeConfig(cfg: CliConfig, env: NodeJS.ProcessEnv = process.env): string {
  const file = configPath(env);
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  writeFileSync(file, `${JSON.stringify(cfg, null, 2)}\n`, { mode: 0o600 });
  return file;
}


/**
 * Server: --server, WEFT_SERVER, the config file, then http://127.0.0.1:9700 (a comma list fails over).
 * Token: --token, WEFT_TOKEN, the config file, then — for the local default server only — the admin
 * token a local `weft up` saved in /var/lib/weft/admin.token (readable by root only).
 */
export function resolveTarget(flags: { server?: string; token?: string }, env: NodeJS.ProcessEnv = process.env): Target {
  const cfg = readConfig(env);
  const server = flags.server ?? env['WEFT_SERVER'] ?? cfg.server ?? DEFAULT_SERVER;
  const servers = server.split(',').map((s) => s.trim().replace(/\/+$/, '')).filter(Boolean);
  for (const s of servers) {
    if (!/^https?:\/\/[^/]+$/.test(s)) throw usage(`--server: '${s}' is not a URL like http://127.0.0.1:9700`);
  }
  let token = flags.token ?? env['WEFT_TOKEN'] ?? cfg.token;
  if (token === undefined && server === DEFAULT_SERVER) token = localAdminToken();
  return { servers, token };
}

function localAdminToken(): string | undefined {
  const file = join(DEFAULT_DATA_DIR, 'admin.token');
  try {
    accessSync(file, constants.R_OK);
    return readFileSync(file, 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}
