// Run inside a container namespace by the chaos suite: one TCP connection to an echo server, a numbered
// line every 100 ms, and once a second a status line (received, longest silence). A close or error is a
// cut: it says so and exits 2. SIGTERM ends it cleanly.
import { connect } from 'node:net';

const [host = '', port = '0'] = process.argv.slice(2);
let sent = 0;
let received = 0;
let last = Date.now();
let maxGap = 0;
let buffered = '';
let ending = false;
const sock = connect({ host, port: Number(port) });
sock.setNoDelay(true);
sock.setKeepAlive(true, 1000);
const say = (o: Record<string, unknown>) => process.stdout.write(`${JSON.stringify({ t: Date.now(), ...o })}\n`);

sock.on('connect', () => {
  say({ connected: true });
  setInterval(() => sock.write(`${++sent}\n`), 100);
  setInterval(() => {
    maxGap = Math.max(maxGap, Date.now() - last);
    say({ sent, received, maxGap });
  }, 1000);
});
sock.on('data', (d) => {
  buffered += d.toString();
  const lines = buffered.split('\n');
  buffered = lines.pop() ?? '';
  for (const l of lines) {
    if (Number(l) !== received + 1) say({ cut: `out of order: got ${l} after ${received}` });
    received = Number(l);
    const now = Date.now();
    maxGap = Math.max(maxGap, now - last);
    last = now;
  }
});
const cut = (why: string) => {
  if (ending) return;
  say({ cut: why, sent, received, maxGap });
  process.exit(2);
};
sock.on('error', (e) => cut(e.message));
sock.on('close', () => cut('closed by the peer'));
process.on('SIGTERM', () => {
  ending = true;
  say({ end: true, sent, received, maxGap });
  process.exit(0);
});
