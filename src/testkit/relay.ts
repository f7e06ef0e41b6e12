// A relay from a Unix socket to a TCP port, run as a program: `node relay.js SOCKET_PATH TARGET_HOST
// TARGET_PORT`. It listens on SOCKET_PATH (inside a directory only its owner may enter), says
// `relay listening` on stdout, and joins every connection it accepts to a new one to TARGET_HOST:TARGET_PORT.
// It exits when its stdin closes (its starter went away), so it never outlives the test that started it.
// browser.ts runs it inside the browser's network namespace, where Chromium's DevTools listen on that
// namespace's loopback only: a Unix socket is reached by path from any namespace, and by no address.
import { connect, createServer } from 'node:net';
import { splice } from './splice.js';

const [path, targetHost, targetPort] = process.argv.slice(2);
const port = Number(targetPort);
if (!path?.startsWith('/') || !targetHost || !Number.isInteger(port) || port < 1 || port > 65535) {
  process.stderr.write('usage: relay.js SOCKET_PATH (absolute) TARGET_HOST TARGET_PORT (1-65535)\n');
  process.exit(2);
}

const server = createServer((inbound) => splice(inbound, connect(port, targetHost)));
server.on('error', (e) => {
  process.stderr.write(`relay: ${e.message}\n`);
  process.exit(1);
});
server.listen(path, () => process.stdout.write('relay listening\n'));
process.stdin.on('end', () => process.exit(0));
process.stdin.on('error', () => process.exit(0));
process.stdin.resume();
