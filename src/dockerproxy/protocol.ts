/**
 * Powerstrip's adapter protocol, version 1. A pre-hook adapter gets the client's call and answers it,
 * maybe changed; a post-hook adapter gets the call and Docker's response and answers the response, maybe
 * changed. Bodies travel as strings (null: none), as Powerstrip's Go and Python proxies sent them.
 */
export const PROTOCOL_VERSION = 1;

export interface ClientRequest { Method: string; Request: string; Body: string | null }
export interface ServerResponse { ContentType: string; Body: string | null; Code: number }

export interface PreHookRequest { PowerstripProtocolVersion: 1; Type: 'pre-hook'; ClientRequest: ClientRequest }
export interface PostHookRequest { PowerstripProtocolVersion: 1; Type: 'post-hook'; ClientRequest: ClientRequest; ServerResponse: ServerResponse }

export class ProtocolError extends Error {}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function version(doc: Record<string, unknown>): void {
  if (doc['PowerstripProtocolVersion'] !== PROTOCOL_VERSION) throw new ProtocolError(`PowerstripProtocolVersion: must be ${PROTOCOL_VERSION}, got ${JSON.stringify(doc['PowerstripProtocolVersion'])?.slice(0, 40)}`);
}

function body(v: unknown, field: string): string | null {
  if (v === null || v === undefined) return null;
  if (typeof v === 'string') return v;
  // Powerstrip's first README showed bodies as JSON objects: take one, as a string.
  if (typeof v === 'object') return JSON.stringify(v);
  throw new ProtocolError(`${field}: must be a string or null`);
}

/**
 * A pre-hook's answer. It may change the query and the body, never the method or the path: which
 * endpoint a call reaches (and so which hooks run) is decided before the chain (Powerstrip's rule).
 */
export function parsePreHookAnswer(doc: unknown, asked: ClientRequest): ClientRequest {
  if (!isRecord(doc)) throw new ProtocolError('the answer must be a JSON object');
  version(doc);
  const m = doc['ModifiedClientRequest'];
  if (!isRecord(m)) throw new ProtocolError('ModifiedClientRequest: missing or not an object');
  const method = m['Method'] ?? asked.Method;
  const request = m['Request'] ?? asked.Request;
  if (typeof method !== 'string') throw new ProtocolError('ModifiedClientRequest.Method: must be a string');
  if (typeof request !== 'string' || !request.startsWith('/') || request.length > 8192 || /[\s\0]/.test(request)) {
    throw new ProtocolError('ModifiedClientRequest.Request: must be a path starting with / (at most 8192 characters, no spaces)');
  }
  if (method.toUpperCase() !== asked.Method.toUpperCase()) throw new ProtocolError(`ModifiedClientRequest.Method: a pre-hook may not change the method (${asked.Method} → ${method})`);
  const path = (u: string) => u.split('?')[0];
  if (path(request) !== path(asked.Request)) throw new ProtocolError(`ModifiedClientRequest.Request: a pre-hook may change the query, not the path (${path(asked.Request)} → ${path(request)})`);
  return { Method: asked.Method, Request: request, Body: body(m['Body'], 'ModifiedClientRequest.Body') };
}

/** A post-hook's answer: the response the client gets (the next adapter's input). */
export function parsePostHookAnswer(doc: unknown): ServerResponse {
  if (!isRecord(doc)) throw new ProtocolError('the answer must be a JSON object');
  version(doc);
  const m = doc['ModifiedServerResponse'];
  if (!isRecord(m)) throw new ProtocolError('ModifiedServerResponse: missing or not an object');
  const code = m['Code'];
  if (typeof code !== 'number' || !Number.isInteger(code) || code < 200 || code > 599) throw new ProtocolError('ModifiedServerResponse.Code: must be an HTTP status from 200 to 599');
  const type = m['ContentType'] ?? '';
  if (typeof type !== 'string' || /[\r\n\0]/.test(type) || type.length > 256) throw new ProtocolError('ModifiedServerResponse.ContentType: must be a header value (one line, at most 256 characters)');
  return { ContentType: type, Body: body(m['Body'], 'ModifiedServerResponse.Body'), Code: code };
}
