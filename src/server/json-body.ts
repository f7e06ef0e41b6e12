import { WeftError } from '../model/index.js';

/** The most of the JSON parser's own message a problem quotes (it may quote the body around the error). */
const MESSAGE_MAX = 200;

/**
 * A JSON body as its value, parsed once; or a precise error: empty, not JSON (the JSON parser's own
 * message, which quotes the text around the error), or a key that would set an object's prototype
 * (`__proto__`, or `constructor` holding `prototype`: which field holds it). The same refusals as
 * fastify's parser (secure-json-parse with both actions `error`), which said "Body is not valid JSON" for
 * all of them: until session 63 such a body was parsed a second time to say why, which doubled what a
 * hostile body of the largest size cost (~0.3 GB of transient heap for 4 MiB of tiny arrays).
 */
export function parseJsonBody(body: string): unknown {
  if (body === '') throw new WeftError('WEFT_MALFORMED', 'the body is empty; send a JSON object');
  // A leading byte order mark is dropped (as fastify's parser did); JSON.parse would refuse it.
  const text = body.charCodeAt(0) === 0xfeff ? body.slice(1) : body;
  let value: unknown;
  try {
    // JSON.parse makes `__proto__` an own key and sets no prototype: safe to read, then refused below.
    value = JSON.parse(text);
  } catch (e) {
    throw new WeftError('WEFT_MALFORMED', `the body is not valid JSON: ${(e as Error).message.slice(0, MESSAGE_MAX)}`);
  }
  const path = mayReachPrototype(text) ? prototypeKeyPath(value) : undefined;
  if (path === undefined) return value;
  const key = path[path.length - 1] as string;
  const field = fieldOf(path);
  const why = key === '__proto__' ? "the key '__proto__' is refused anywhere in a body (it would set an object's prototype)" : "a 'constructor' key holding 'prototype' is refused (it would reach an object's prototype)";
  throw new WeftError('WEFT_INVALID_FIELD', `${field}: ${why}`, { field });
}

/**
 * An escape of a character of `__proto__` or `constructor` (_ p r o t c n s u), as JSON writes one: `\u`
 * and four hex digits, in either case.
 */
const KEY_CHAR_ESCAPE = /\\u00(?:5[fF]|6[3eEfF]|7[02345])/;

/**
 * Whether a JSON text may hold such a key, so that its value is walked (most bodies are not): a key can
 * spell `__proto__` or `constructor` only in plain characters, or with an escape of one of their
 * characters. Other escapes (non-ASCII text, as many encoders write it) are no reason to walk.
 */
export function mayReachPrototype(text: string): boolean {
  return text.includes('__proto__') || text.includes('constructor') || KEY_CHAR_ESCAPE.test(text);
}

/** A path as a field name, its middle left out past PATH_SHOWN levels (a hostile body nests 500,000 deep). */
const PATH_SHOWN = 12;
/** The most of one key a field name quotes, and of the whole name (the client keeps fields up to 200). */
const KEY_MAX = 64;
const FIELD_MAX = 200;
export function fieldOf(path: readonly string[]): string {
  // A key as it came (any length, any character) is quoted, and cut, unless it is a plain name.
  const shown = (k: string) => (/^[\w/-]{1,64}$/.test(k) ? k : JSON.stringify(k.length > KEY_MAX ? `${k.slice(0, KEY_MAX)}…` : k));
  const parts = path.length <= PATH_SHOWN ? path.map(shown) : (() => {
    const head = path.slice(0, PATH_SHOWN - 4).map(shown);
    const tail = path.slice(-4).map(shown);
    const left = path.length - head.length - tail.length;
    return [...head, `(${left.toLocaleString('en-US')} ${left === 1 ? 'level' : 'levels'})`, ...tail];
  })();
  const out = parts.join('.');
  return out.length > FIELD_MAX ? `${out.slice(0, FIELD_MAX - 1)}…` : out;
}

/**
 * Where the first key that would reach a prototype is (`__proto__`, or `constructor` with `prototype`
 * inside), in the body's order, as the path of keys and indices to it; undefined if there is none.
 * Iterative: a body may nest as deep as its size allows.
 */
export function prototypeKeyPath(value: unknown): string[] | undefined {
  // Each frame knows its parent and its key there: a path is made only for the key found (copying it at
  // every level cost memory as the square of the depth, which a hostile body chooses). An array's frame
  // lists no keys, only where it is: for a body of 2 million nested arrays, frames that listed their
  // indices as strings took 244 MB beside JSON.parse's 116, these ~170 MB, the path found included.
  type Frame = { v: object; keys: string[] | undefined; at: number; parent: Frame | undefined; key: string | number };
  const frame = (v: unknown, parent: Frame | undefined, key: string | number): Frame | undefined =>
    typeof v === 'object' && v !== null ? { v, keys: Array.isArray(v) ? undefined : Object.keys(v), at: 0, parent, key } : undefined;
  const pathOf = (f: Frame, last: string): string[] => {
    const out = [last];
    for (let x: Frame | undefined = f; x?.parent; x = x.parent) out.push(String(x.key));
    return out.reverse();
  };
  let f = frame(value, undefined, '');
  while (f) {
    const keys = f.keys;
    if (f.at >= (keys ? keys.length : (f.v as unknown[]).length)) {
      f = f.parent;
      continue;
    }
    if (!keys) {
      const i = f.at++;
      f = frame((f.v as unknown[])[i], f, i) ?? f;
      continue;
    }
    const k = keys[f.at++] as string;
    const child = (f.v as Record<string, unknown>)[k];
    if (k === '__proto__' || (k === 'constructor' && typeof child === 'object' && child !== null && Object.hasOwn(child, 'prototype'))) return pathOf(f, k);
    f = frame(child, f, k) ?? f;
  }
  return undefined;
}
