import { readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';

/** A server to reach: plain for http://, TLS verified with `caFile` for https://. */
export interface Target { url: string; caFile?: string }
const caOf = (t: Target) => (t.caFile ? readFileSync(t.caFile) : undefined);

/** A raw TCP connection to a test server, for clients that misbehave on purpose (slowloris, never reading). */
export interface RawClient {
  socket: Socket;
  /** Everything received so far. */
  received(): Buffer;
  /** Resolves with the time (ms since connect) at which the server closed the connection. */
  closed: Promise<number>;
}

export function rawConnect(target: Target): Promise<RawClient> {
  const { protocol, hostname, port } = new URL(target.url);
  const tls = protocol === 'https:';
  return new Promise((resolve, reject) => {
    const ca = caOf(target);
    const socket: Socket = tls ? tlsConnect({ host: hostname, port: Number(port), ...(ca ? { ca } : {}) }) : connect(Number(port), hostname);
    const t0 = Date.now();
    const chunks: Buffer[] = [];
    socket.on('data', (d: Buffer) => chunks.push(d));
    // Writes after the server hung up fail with EPIPE/ECONNRESET: that is what these tests provoke.
    socket.on('error', () => undefined);
    const closed = new Promise<number>((r) => socket.on('close', () => r(Date.now() - t0)));
    socket.once(tls ? 'secureConnect' : 'connect', () => resolve({ socket, received: () => Buffer.concat(chunks), closed }));
    socket.once('error', reject);
  });
}

/** Splits a raw HTTP/1.1 answer into status, headers and body (not chunked). */
export function parseRawResponse(raw: Buffer): { status: number; headers: Record<string, string>; body: string } {
  const text = raw.toString('utf8');
  const end = text.indexOf('\r\n\r\n');
  const [statusLine = '', ...lines] = text.slice(0, end < 0 ? text.length : end).split('\r\n');
  const headers: Record<string, string> = {};
  for (const l of lines) {
    const i = l.indexOf(':');
    if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
  }
  return { status: Number(statusLine.split(' ')[1]), headers, body: end < 0 ? '' : text.slice(end + 4) };
}

/** The resident memory of a process, from /proc (Linux). */
export function rssBytes(pid: number): number {
  const m = /^VmRSS:\s+([0-9]+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}
