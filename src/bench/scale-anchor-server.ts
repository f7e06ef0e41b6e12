// bench:scale's anchor, a child process: the most trivial HTTPS server Node can be. GET /stream holds a
// response open and writes each line it is told to (over IPC) to every open stream; POST /echo answers a
// small JSON. Same machine, same TLS (an ECDSA P-256 certificate, as Weft's), no framework, no store:
// what one message to N streams, and one request, cost here, against which Weft's figures are read.
import https from 'node:https';
import type { ServerResponse } from 'node:http';
import { createCa, issueWithKey } from '../pki/index.js';

export type ToAnchor = { op: 'send'; seq: number; bytes: number };
export type FromAnchor = { op: 'listening'; url: string; ca: string } | { op: 'sent'; seq: number; streams: number };

const ca = await createCa('bench-anchor');
const tls = await issueWithKey(ca, { commonName: '127.0.0.1', usage: 'server', ttlMs: 86_400_000, ips: ['127.0.0.1'] });
const streams = new Set<ServerResponse>();

const server = https.createServer({ cert: tls.certPem, key: tls.keyPem, keepAliveTimeout: 60_000 }, (req, res) => {
  if (req.method === 'GET' && req.url === '/stream') {
    res.writeHead(200, { 'content-type': 'application/x-ndjson' });
    res.flushHeaders();
    streams.add(res);
    res.once('close', () => streams.delete(res));
    return;
  }
  req.resume();
  req.on('end', () => {
    // Framed by content-length, as Weft's answers are (and as the bench's lean client requires).
    res.writeHead(201, { 'content-type': 'application/json', 'content-length': 11 });
    res.end('{"ok":true}');
  });
});
server.listen(0, '127.0.0.1', () => {
  const port = (server.address() as { port: number }).port;
  process.send?.({ op: 'listening', url: `https://127.0.0.1:${port}`, ca: ca.certPem } satisfies FromAnchor);
});

process.on('message', (m: ToAnchor) => {
  // One JSON line of about the size of a Weft change line, serialised once per stream as Weft does.
  const pad = 'x'.repeat(Math.max(0, m.bytes - 40));
  for (const res of streams) res.write(`${JSON.stringify({ seq: m.seq, pad })}\n`);
  process.send?.({ op: 'sent', seq: m.seq, streams: streams.size } satisfies FromAnchor);
});
process.on('disconnect', () => process.exit(0));
