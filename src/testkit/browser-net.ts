import { spawn, type ChildProcess } from 'node:child_process';
import { connect, createServer, type Socket } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ProcessRunner } from '../exec/index.js';
import { alive } from '../lab/lab.js';
import { freeOctet, safeList } from './host.js';
import { splice } from './splice.js';

// The test browser's own network namespace (browser.ts): made, swept when its maker died, and the relay
// that carries Playwright's DevTools connection into it.

const runner = new ProcessRunner();
const RELAY = join(dirname(fileURLToPath(import.meta.url)), 'relay.js');

export interface BrowserNet {
  ns: string;
  /** Our end of the browser's link: where a server the browser is to reach listens. */
  outside: string;
  /** Undoes what was made (only that, once). */
  remove(): Promise<void>;
}

/** `weftbr<pid><letter>`: 14 characters at most with Linux's largest pid, and its link one more (15, the limit). */
const NAME = /^weftbr(\d+)[a-z]$/;
let made = 0;

/**
 * A network namespace for the browser, joined to ours by a veth: 198.18.X.1 our end (`outside`), .2 its
 * end (its default route through ours). No IPv6 link-local address: it would appear a moment after the
 * link is up (after its duplicate detection), a change Chromium would abandon its first page for. First,
 * the namespaces of browsers whose process is gone (a test run killed) are removed.
 */
export async function ownNamespace(): Promise<BrowserNet> {
  await sweepDead();
  const ns = `weftbr${process.pid}${String.fromCharCode(97 + (made++ % 26))}`;
  const link = `${ns}r`;
  const octet = await freeOctet();
  const [outside, inside] = [`198.18.${octet}.1`, `198.18.${octet}.2`];
  let nsMade = false;
  let linkMade = false;
  const remove = async () => {
    // The namespace takes the link's other end with it, and so the link.
    if (nsMade) await runner.run(['ip', 'netns', 'del', ns], { allowFailure: true });
    if (linkMade) await runner.run(['ip', 'link', 'del', link], { allowFailure: true });
    nsMade = linkMade = false;
  };
  try {
    await runner.run(['ip', 'netns', 'add', ns]);
    nsMade = true;
    await runner.run(['ip', 'link', 'add', link, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
    linkMade = true;
    await runner.run(['ip', 'addr', 'add', `${outside}/30`, 'dev', link]);
    await runner.run(['ip', 'link', 'set', link, 'up']);
    await runner.run(['ip', '-n', ns, '-batch', '-'], { input: `link set lo up\nlink set eth0 addrgenmode none\naddr add ${inside}/30 dev eth0\nlink set eth0 up\nroute add default via ${outside}\n` });
  } catch (e) {
    await remove();
    throw e;
  }
  return { ns, outside, remove };
}

/** Removes the browser namespaces (and links) whose maker's pid is no longer running. */
async function sweepDead(): Promise<void> {
  for (const name of safeList()) {
    const m = NAME.exec(name);
    if (!m || alive(Number(m[1]))) continue;
    await runner.run(['ip', 'netns', 'del', name], { allowFailure: true });
    await runner.run(['ip', 'link', 'del', `${name}r`], { allowFailure: true });
  }
}

/**
 * Chromium's DevTools (on its namespace's 127.0.0.1:`port`) on our 127.0.0.1: a relay in its namespace
 * listens on a Unix socket in `dir` (the browser's profile, its owner's only) and this process joins
 * connections to our loopback port to that socket. Reachable from no other namespace or machine, as
 * DevTools on our loopback were: whoever reaches them commands a browser running as root.
 */
export async function devtoolsRelay(ns: string, port: number, dir: string): Promise<{ port: number; stop(): Promise<void> }> {
  const path = join(dir, 'devtools.sock');
  const relay = spawn('ip', ['netns', 'exec', ns, process.execPath, RELAY, path, '127.0.0.1', String(port)], { stdio: ['pipe', 'pipe', 'pipe'] });
  const open = new Set<Socket>();
  const server = createServer((inbound) => {
    const outbound = connect(path);
    open.add(inbound).add(outbound);
    splice(inbound, outbound, (s) => open.delete(s));
  });
  const stop = async () => {
    for (const s of open) s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
    if (relay.exitCode === null && relay.signalCode === null) {
      const gone = new Promise<void>((r) => relay.once('exit', () => r()));
      relay.kill('SIGKILL');
      await gone;
    }
  };
  try {
    await relayReady(relay);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
  } catch (e) {
    await stop();
    throw e;
  }
  const a = server.address();
  return { port: typeof a === 'object' && a ? a.port : 0, stop };
}

/** Resolves when the relay says it listens; rejects if it fails to start, exits, or says nothing within 10 s. */
function relayReady(relay: ChildProcess): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let err = '';
    const t = setTimeout(() => reject(new Error(`the DevTools relay said nothing in 10 s: ${err.slice(-500)}`)), 10_000);
    const fail = (e: Error) => {
      clearTimeout(t);
      reject(e);
    };
    relay.stderr?.on('data', (d: Buffer) => (err += d.toString()));
    relay.stdout?.on('data', (d: Buffer) => {
      if (d.toString().includes('relay listening')) {
        clearTimeout(t);
        resolve();
      }
    });
    relay.once('error', fail);
    relay.once('exit', (code) => fail(new Error(`the DevTools relay exited (${code}): ${err.slice(-500)}`)));
  });
}
