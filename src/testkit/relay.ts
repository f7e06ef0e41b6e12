// A TCP relay, run as a program: `node relay.js LISTEN_HOST TARGET_HOST TARGET_PORT`. It listens on an
// ephemeral port of LISTEN_HOST, says `relay listening on PORT` on stdout, and joins every connection it
// accepts to a new one to TARGET_HOST:TARGET_PORT. It exits when its stdin closes (its starter went away),
// so it never outlives the test that started it. browser.ts runs it inside the browser's namespace, where
// Chromium's DevTools listen on that namespace's loopback only.
import { connect, createServer } from 'node:net';

const [listenHost, targetHost, targetPort] = process.argv.slice(2);
const port = Number(targetPort);
if (!listenHost || !targetHost || !Number.isInteger(port) || port < 1 || port > 65535) {
  process.stderr.write('usage: relay.js LISTEN_HOST TARGET_HOST TARGET_PORT (1-65535)\n');
  process.exit(2);
}

const server = createServer((inbound) => {
  const outbound = connect(port, targetHost);
  const close = () => {
    inbound.destroy();
    outbound.destroy();
  };
  inbound.on('error', close);
  outbound.on('error', close);
  inbound.on('close', close);
  outbound.on('close', close);
  inbound.pipe(outbound);
  outbound.pipe(inbound);
});
server.on('error', (e) => {
  process.stderr.write(`relay: ${e.message}\n`);
  process.exit(1);
});
server.listen(0, listenHost, () => {
  const a = server.address();
  process.stdout.write(`relay listening on ${typeof a === 'object' && a ? a.port : '?'}\n`);
});
process.stdin.on('end', () => process.exit(0));
process.stdin.on('error', () => process.exit(0));
process.stdin.resume();
