import type { Adapter } from './config.js';
import type { DockerApi } from './docker-api.js';
import { parsePostHookAnswer, parsePreHookAnswer, PROTOCOL_VERSION, ProtocolError, type ClientRequest, type ServerResponse } from './protocol.js';
import { HookRefusal, weftPreHook } from './weft-adapter.js';

/** What an adapter needs besides the envelope: Docker's API and Weft's driver name (for the built-in one). */
export interface HookDeps { docker: DockerApi; driver: string; timeoutMs: number }

/** An adapter's answer is read up to this size: a hostile or broken adapter cannot fill the proxy's memory. */
export const MAX_ANSWER = 16 << 20;

/** The client's answer when a chain stops: an adapter's own error response, or the proxy's word on a failed adapter. */
export class HookStop extends Error {
  constructor(readonly status: number, readonly contentType: string, readonly body: string) {
    super(body);
  }
}

const failed = (name: string, type: string, why: string) =>
  new HookStop(502, 'application/json', JSON.stringify({ message: `Docker hook adapter '${name}' (${type}) failed: ${why}` }));

async function readCapped(res: Response): Promise<string> {
  const reader = res.body?.getReader();
  if (!reader) return '';
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.length;
    if (size > MAX_ANSWER) {
      await reader.cancel();
      throw new Error(`its answer is over ${MAX_ANSWER} bytes`);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** One envelope to an HTTP adapter: its JSON answer, or a HookStop carrying its error response. */
async function post(name: string, url: string, envelope: object, type: string, timeoutMs: number): Promise<unknown> {
  let res: Response;
  let text: string;
  try {
    res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(envelope), redirect: 'error', signal: AbortSignal.timeout(timeoutMs) });
    text = await readCapped(res);
  } catch (e) {
    const err = e as Error;
    throw failed(name, type, err.name === 'TimeoutError' ? `no answer within ${timeoutMs / 1000} s` : `${err.message}${err.cause ? ` (${(err.cause as Error).message})` : ''}`);
  }
  if (res.status >= 400) {
    // Powerstrip: an adapter's error response ends the chain and goes to the client as it is. Docker's
    // CLI shows a JSON `message`; anything else is wrapped so the user sees who refused.
    let message: unknown;
    try { message = (JSON.parse(text) as { message?: unknown }).message; } catch { message = undefined; }
    const body = typeof message === 'string' ? text : JSON.stringify({ message: `Docker hook adapter '${name}' refused (${res.status}): ${text.slice(0, 1000)}` });
    throw new HookStop(res.status, 'application/json', body);
  }
  try {
    return JSON.parse(text);
  } catch {
    throw failed(name, type, `its answer is not JSON: ${text.slice(0, 200)}`);
  }
}

/** The pre-hook chain, in order: each adapter gets the previous one's request. */
export async function runPreHooks(chain: readonly string[], adapters: ReadonlyMap<string, Adapter>, req: ClientRequest, deps: HookDeps): Promise<ClientRequest> {
  let cur = req;
  for (const name of chain) {
    const a = adapters.get(name)!;
    try {
      if (a.kind === 'builtin') cur = await weftPreHook(cur, deps.docker, deps.driver);
      else cur = parsePreHookAnswer(await post(name, a.url, { PowerstripProtocolVersion: PROTOCOL_VERSION, Type: 'pre-hook', ClientRequest: cur }, 'pre-hook', deps.timeoutMs), cur);
    } catch (e) {
      throw stopOf(e, name, 'pre-hook');
    }
  }
  return cur;
}

/** The post-hook chain, in order, over Docker's response (run for Docker's errors too, as Powerstrip did). */
export async function runPostHooks(chain: readonly string[], adapters: ReadonlyMap<string, Adapter>, req: ClientRequest, res: ServerResponse, deps: HookDeps): Promise<ServerResponse> {
  let cur = res;
  for (const name of chain) {
    const a = adapters.get(name)!;
    if (a.kind !== 'http') continue; // config.ts allows no built-in post-hook
    try {
      cur = parsePostHookAnswer(await post(name, a.url, { PowerstripProtocolVersion: PROTOCOL_VERSION, Type: 'post-hook', ClientRequest: req, ServerResponse: cur }, 'post-hook', deps.timeoutMs));
    } catch (e) {
      throw stopOf(e, name, 'post-hook');
    }
  }
  return cur;
}

function stopOf(e: unknown, name: string, type: string): HookStop {
  if (e instanceof HookStop) return e;
  if (e instanceof HookRefusal) return new HookStop(e.status, 'application/json', JSON.stringify({ message: e.message }));
  if (e instanceof ProtocolError) return failed(name, type, e.message);
  return failed(name, type, (e as Error).message);
}
