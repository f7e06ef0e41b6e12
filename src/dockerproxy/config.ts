import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { globToRegExp } from './glob.js';

/** The built-in adapter's name; a config may name it in a chain without listing it under `adapters`. */
export const BUILTIN_WEFT = 'weft';

export interface Endpoint {
  /** As written in the file, e.g. `POST /*\/containers/create`. */
  spec: string;
  /** undefined: any method. */
  method: RegExp | undefined;
  path: RegExp;
  pre: string[];
  post: string[];
}

/** An adapter: an HTTP(S) URL the envelopes are POSTed to, or the built-in one. */
export type Adapter = { kind: 'http'; url: string } | { kind: 'builtin'; name: typeof BUILTIN_WEFT };

export interface ProxyConfig { endpoints: Endpoint[]; adapters: Map<string, Adapter> }

export class ConfigError extends Error {}

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const MAX_ENDPOINTS = 1000;
const MAX_CHAIN = 16;

/**
 * Without a file: the built-in adapter on container creation, with and without the API version in the
 * path (Docker's CLI sends `/v1.47/containers/create`; other clients may leave the version out).
 */
export function defaultConfig(): ProxyConfig {
  return parseConfig({ endpoints: { 'POST /*/containers/create': { pre: [BUILTIN_WEFT] }, 'POST /containers/create': { pre: [BUILTIN_WEFT] } } });
}

export function readConfig(file: string): ProxyConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError(`--config ${file}: ${(e as Error).message}`);
  }
  let doc: unknown;
  try {
    // Required here, not at load: the CLI's other verbs share this bundle and must not pay for YAML.
    const { parse } = createRequire(import.meta.url)('yaml') as typeof import('yaml');
    doc = parse(text, { maxAliasCount: 100 });
  } catch (e) {
    throw new ConfigError(`--config ${file}: not YAML: ${(e as Error).message.split('\n')[0]}`);
  }
  try {
    return parseConfig(doc);
  } catch (e) {
    throw new ConfigError(`--config ${file}: ${(e as Error).message}`);
  }
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Powerstrip's file: `endpoints: {"METHOD /path/glob": {pre: [names], post: [names]}}`, `adapters: {name: url}`. */
export function parseConfig(doc: unknown): ProxyConfig {
  if (!isRecord(doc)) throw new ConfigError('the file must be a mapping with `endpoints` (and `adapters`)');
  for (const k of Object.keys(doc)) if (k !== 'endpoints' && k !== 'adapters') throw new ConfigError(`unknown key '${k}' (a file has endpoints and adapters)`);
  const adapters = parseAdapters(doc['adapters']);
  const eps = doc['endpoints'];
  if (!isRecord(eps)) throw new ConfigError('endpoints: must be a mapping of "METHOD /path" to {pre, post}');
  const specs = Object.keys(eps);
  if (specs.length > MAX_ENDPOINTS) throw new ConfigError(`endpoints: at most ${MAX_ENDPOINTS}`);
  const endpoints = specs.map((spec) => parseEndpoint(spec, eps[spec], adapters));
  return { endpoints, adapters };
}

function parseAdapters(v: unknown): Map<string, Adapter> {
  const out = new Map<string, Adapter>([[BUILTIN_WEFT, { kind: 'builtin', name: BUILTIN_WEFT }]]);
  if (v === undefined || v === null) return out;
  if (!isRecord(v)) throw new ConfigError('adapters: must be a mapping of name to URL');
  for (const [name, url] of Object.entries(v)) {
    const field = `adapters.${name}`;
    if (!NAME.test(name)) throw new ConfigError(`${field}: a name is letters, digits, '_', '.', '-' (at most 64)`);
    if (name === BUILTIN_WEFT) {
      if (url === `builtin:${BUILTIN_WEFT}`) continue;
      throw new ConfigError(`${field}: '${BUILTIN_WEFT}' is the built-in adapter; give yours another name`);
    }
    if (typeof url !== 'string') throw new ConfigError(`${field}: must be an http:// or https:// URL`);
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      throw new ConfigError(`${field}: '${url}' is not a URL`);
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new ConfigError(`${field}: must be an http:// or https:// URL, not ${u.protocol}`);
    if (u.username || u.password) throw new ConfigError(`${field}: credentials in the URL would show in logs; the adapter must authenticate the proxy otherwise`);
    out.set(name, { kind: 'http', url: u.href });
  }
  return out;
}

function parseEndpoint(spec: string, v: unknown, adapters: ReadonlyMap<string, Adapter>): Endpoint {
  const field = `endpoints."${spec}"`;
  const m = /^(?:(\S+)\s+)?(\/\S*)$/.exec(spec.trim());
  if (!m) throw new ConfigError(`${field}: an endpoint is "METHOD /path/glob" or "/path/glob"`);
  if (v !== null && !isRecord(v)) throw new ConfigError(`${field}: must be a mapping with pre and/or post`);
  const body = v ?? {};
  for (const k of Object.keys(body)) if (k !== 'pre' && k !== 'post') throw new ConfigError(`${field}: unknown key '${k}' (pre, post)`);
  const chain = (key: 'pre' | 'post'): string[] => {
    const list = body[key];
    if (list === undefined || list === null) return [];
    if (!Array.isArray(list) || !list.every((x): x is string => typeof x === 'string')) throw new ConfigError(`${field}.${key}: must be a list of adapter names`);
    if (list.length > MAX_CHAIN) throw new ConfigError(`${field}.${key}: at most ${MAX_CHAIN} adapters`);
    for (const name of list) {
      const a = adapters.get(name);
      if (!a) throw new ConfigError(`${field}.${key}: no adapter '${name}' (adapters: ${[...adapters.keys()].join(', ')})`);
      if (a.kind === 'builtin' && key === 'post') throw new ConfigError(`${field}.post: the built-in '${name}' adapter is a pre-hook (it picks the container's network before Docker creates it)`);
    }
    return list;
  };
  const method = m[1];
  return { spec, method: method === undefined || method === '*' ? undefined : globToRegExp(method.toUpperCase()), path: globToRegExp(m[2]!), pre: chain('pre'), post: chain('post') };
}

/** The first endpoint matching a call (its query stripped, as Powerstrip did), if any has hooks. */
export function matchEndpoint(config: ProxyConfig, method: string, url: string): Endpoint | undefined {
  const path = url.split('?')[0] ?? '';
  return config.endpoints.find((e) => (e.method === undefined || e.method.test(method)) && e.path.test(path) && (e.pre.length > 0 || e.post.length > 0));
}
