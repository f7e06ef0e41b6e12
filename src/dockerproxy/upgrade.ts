import type { IncomingMessage } from 'node:http';
import { connect, type Socket } from 'node:net';
import { matchEndpoint, type ProxyConfig } from './config.js';
import { checkTarget } from './target.js';

/** The calls Docker answers with `101 UPGRADED` and a raw stream: attach, exec start, BuildKit's session. */
const UPGRADES = /^(\/v[\d.]+)?(\/containers\/[^/]+\/attach|\/exec\/[^/]+\/start|\/session|\/grpc)$/;

function refuse(client: Socket, status: number, message: string): void {
  const body = JSON.stringify({ message: `weft docker-proxy: ${message}` });
  client.end(`HTTP/1.1 ${status} ${status === 400 ? 'Bad Request' : 'Bad Gateway'}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
}

/**
 * An upgraded call (`Upgrade: tcp`): only the calls Docker upgrades, never a hooked one (a hook on it
 * would be walked around), with a body of a declared length. The request head and that body go to
 * Docker; anything the client sends after it waits until Docker answers `101`, and only then are the two
 * spliced byte for byte. Any other answer goes back and both connections close: pipelined requests
 * behind a refused upgrade never reach Docker unhooked.
 */
export function spliceUpgrade(req: IncomingMessage, client: Socket, head: Buffer, upstream: string, config: ProxyConfig, log: (l: string) => void): void {
  const url = req.url ?? '';
  const bad = checkTarget(url);
  const path = url.split('?')[0] ?? '';
  const length = Number(req.headers['content-length'] ?? 0);
  client.on('error', () => client.destroy());
  if (bad) return refuse(client, 400, bad);
  if (!UPGRADES.test(path) || req.method !== 'POST') return refuse(client, 400, `${req.method} ${path} is not a call Docker upgrades; send it without Upgrade`);
  if (matchEndpoint(config, req.method, url)) return refuse(client, 400, `${path} is hooked; an upgraded call would pass its hooks by`);
  if (req.headers['transfer-encoding'] !== undefined || !Number.isInteger(length) || length < 0 || length > 1 << 20) {
    return refuse(client, 400, 'an upgraded call has a body of a declared length (at most 1 MiB), never chunked');
  }
  const up = connect(upstream);
  // Before Docker's 101: the declared body goes on as it comes, anything past it is held.
  let connected = false;
  let owed = length;
  let early: Buffer[] = [head];
  const held: Buffer[] = [];
  const feed = (d: Buffer) => {
    if (!connected) return void early.push(d);
    const now = d.subarray(0, owed);
    owed -= now.length;
    if (now.length) up.write(now);
    if (d.length > now.length) held.push(d.subarray(now.length));
  };
  client.on('data', feed);
  const end = () => { client.destroy(); up.destroy(); };
  up.on('error', (e) => (client.bytesWritten === 0 ? refuse(client, 502, `Docker at ${upstream}: ${e.message}`) : end()));
  client.on('close', () => up.destroy());
  up.on('connect', () => {
    let text = `${req.method} ${url} HTTP/${req.httpVersion}\r\n`;
    for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) text += `${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}\r\n`;
    up.write(`${text}\r\n`);
    connected = true;
    const first = Buffer.concat(early);
    early = [];
    feed(first);
  });
  let answer = Buffer.alloc(0);
  const onAnswer = (d: Buffer) => {
    answer = Buffer.concat([answer, d]);
    const at = answer.indexOf('\r\n\r\n');
    if (at < 0) {
      if (answer.length > 64 << 10) end();
      return;
    }
    up.off('data', onAnswer);
    client.write(answer);
    if (!/^HTTP\/1\.[01] 101 /.test(answer.toString('latin1', 0, 32))) {
      // Refused (no such container, ...): its answer goes back, nothing more reaches Docker.
      log(`${req.method} ${path}: Docker did not upgrade: ${JSON.stringify(answer.toString('latin1', 0, at).split('\r\n')[0])}`);
      up.end();
      up.on('data', (rest: Buffer) => client.write(rest));
      up.on('end', () => client.end());
      return;
    }
    client.off('data', feed);
    for (const p of held) up.write(p);
    client.pipe(up);
    up.pipe(client);
    up.on('close', () => client.destroy());
  };
  up.on('data', onAnswer);
}
