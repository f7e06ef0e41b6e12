#!/usr/bin/env node
// The Node relay for the CNI plugin, used where the C relay (src/plugins/cni/shim.c) was not built.
// Same protocol and behaviour; ~50 ms slower per call because Node has to start.
import { connect } from 'node:net';
import { readFileSync } from 'node:fs';

const stdin = readFileSync(0);
const fromConfig = /"agentSocket"\s*:\s*"([^"\\]+)"/.exec(stdin.toString('utf8'))?.[1];
const path = process.env['WEFT_AGENT_SOCK'] || fromConfig || '/run/weft/agent.sock';
const fail = (code: number, msg: string, details: string) => {
  process.stdout.write(`${JSON.stringify({ cniVersion: '1.1.0', code, msg, details })}\n`);
  process.exit(1);
};
const sock = connect(path);
const chunks: Buffer[] = [];
sock.on('connect', () => {
  const env = Object.entries(process.env).filter(([k]) => k.startsWith('CNI_')).map(([k, v]) => `${k}=${v ?? ''}\0`).join('');
  sock.end(Buffer.concat([Buffer.from(`${env}\0`), stdin]));
});
sock.on('data', (d) => chunks.push(d));
sock.on('error', (e) => {
  if (process.env['CNI_COMMAND'] === 'VERSION') {
    process.stdout.write('{"cniVersion":"1.1.0","supportedVersions":["0.3.0","0.3.1","0.4.0","1.0.0","1.1.0"]}\n');
    process.exit(0);
  }
  fail(11, 'the weft agent is not running (cannot connect to its socket); try again later', e.message);
});
sock.on('end', () => {
  const res = Buffer.concat(chunks);
  const nl = res.indexOf(10);
  if (nl < 0) fail(999, 'the weft agent closed the connection without an answer', '');
  process.stdout.write(res.subarray(nl + 1));
  process.exitCode = Number(res.subarray(0, nl).toString());
});
