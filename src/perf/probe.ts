/**
 * The connect-latency probe, run by `node -e` inside a bench namespace (the CLI cannot enter one itself).
 * `serve IP PORT`: accepts and closes connections, printing `ready` once it listens. `connect IP PORT N`:
 * N TCP connects one after another (each 2 s at most), printing one JSON line: each connect's time in
 * milliseconds (SYN sent to handshake done, as the client sees it), and how many failed (it gives up after
 * three failures before any success). Text, not a
 * file: the CLI runs from a bundle, where a path to a module of ours is not to be trusted.
 */
export const PROBE_SCRIPT = `
const net = require('node:net');
const [mode, ip, port, n] = process.argv.slice(1);
if (mode === 'serve') {
  const s = net.createServer((c) => c.destroy());
  s.listen(Number(port), ip, () => console.log('ready'));
  process.stdin.on('end', () => process.exit(0)).resume();
} else {
  const ms = []; let failed = 0;
  const one = () => new Promise((resolve) => {
    const t0 = process.hrtime.bigint();
    const c = net.connect({ host: ip, port: Number(port), timeout: 2000 });
    c.once('connect', () => { ms.push(Number(process.hrtime.bigint() - t0) / 1e6); c.destroy(); resolve(); });
    c.once('timeout', () => { failed++; c.destroy(); resolve(); });
    c.once('error', () => { failed++; resolve(); });
  });
  // Three refused in a row before any success: the port is closed to us, waiting out the rest says nothing.
  (async () => { for (let i = 0; i < Number(n) && !(failed >= 3 && ms.length === 0); i++) await one(); console.log(JSON.stringify({ ms, failed })); })();
}
`;

/** The probe's answer: connect times, and how many connects failed. */
export function parseProbe(text: string): { ms: number[]; failed: number } {
  const line = text.trim().split('\n').at(-1) ?? '';
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    throw new Error(`the latency probe printed no result: ${text.slice(0, 200)}`);
  }
  const o = v as { ms?: unknown; failed?: unknown };
  if (!Array.isArray(o.ms) || !o.ms.every((x) => typeof x === 'number' && Number.isFinite(x) && x >= 0) || typeof o.failed !== 'number') {
    throw new Error(`the latency probe's result is malformed: ${line.slice(0, 200)}`);
  }
  return { ms: o.ms as number[], failed: o.failed };
}
