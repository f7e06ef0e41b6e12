import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import { ProcessRunner } from '../exec/index.js';
import { freeOctets } from '../lab/free.js';

const runner = new ProcessRunner();

/** Debian's Chromium (scripts/setup.sh installs it); never a browser downloaded at run time. */
export const CHROMIUM = '/usr/bin/chromium';
/** Where UI tests and the UI benchmark save screenshots: WEFT_SCREENSHOTS, else test-results/ui in the checkout. */
export const SCREENSHOTS = process.env['WEFT_SCREENSHOTS'] ?? join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'test-results', 'ui');

export interface TestBrowser {
  browser: Browser;
  pid: number;
  /**
   * The address a server this browser is to reach listens on: as root, the root namespace's end of the
   * browser's own link (its loopback is its namespace's, not ours); otherwise 127.0.0.1.
   */
  serverHost: string;
  /** A new page in its own context (own storage: one user per context); console errors and page errors are collected. */
  page(): Promise<{ page: Page; errors: string[] }>;
  shot(page: Page, name: string): Promise<string>;
  stop(): Promise<void>;
}

/**
 * Starts headless Chromium as a process of ours (its pid, its own empty profile) and drives it with
 * Playwright over the DevTools protocol. Background networking is off: this machine's network is closed
 * and nothing but the server under test should be contacted. Certificates are not checked: the servers
 * under test present certificates of a CA made for the test (TLS is tested elsewhere; this is the UI).
 *
 * As root, Chromium runs in a network namespace of its own, joined to ours by a veth (`serverHost` is our
 * end): Chromium watches the links and addresses of its namespace and abandons every request in flight
 * when one changes (net::ERR_NETWORK_CHANGED), and test files running beside a UI test make links in the
 * root namespace all the time (a CI run failed on a script so abandoned). Its DevTools listen on its own
 * loopback only (it ignores --remote-debugging-address), so a relay in its namespace (relay.ts) carries
 * Playwright's connection to them.
 */
export async function startBrowser(): Promise<TestBrowser> {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: run scripts/setup.sh (it installs Debian's chromium)`);
  const profile = mkdtempSync(join(tmpdir(), 'weft-chromium-'));
  // Chromium leaves a directory of its own in TMPDIR (org.chromium.Chromium.*, its singleton socket)
  // that it never removes: inside the profile, it goes with it.
  const scratch = join(profile, 'tmp');
  mkdirSync(scratch);
  const net = process.getuid?.() === 0 ? await ownNamespace().catch((e: unknown) => {
    rmSync(profile, { recursive: true, force: true });
    throw e;
  }) : undefined;
  const argv = [
    CHROMIUM, '--headless', '--remote-debugging-port=0', `--user-data-dir=${profile}`, '--no-first-run', '--no-default-browser-check',
    '--disable-gpu', '--disable-quic', '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--disable-extensions', '--disable-dev-shm-usage', '--ignore-certificate-errors', ...(process.getuid?.() === 0 ? ['--no-sandbox'] : []), 'about:blank',
  ];
  // `ip netns exec` enters the namespace and execs Chromium's launcher in its place: the pid stays ours.
  const [cmd, ...args] = net ? ['ip', 'netns', 'exec', net.ns, ...argv] : argv;
  const proc: ChildProcess = spawn(cmd as string, args, { stdio: ['ignore', 'ignore', 'pipe'], detached: true, env: { ...process.env, TMPDIR: scratch } });
  let relay: ChildProcess | undefined;
  const stopProc = async () => {
    // Its own process group (detached): the renderers and helpers it started go with it.
    const group = (sig: NodeJS.Signals) => {
      try {
        process.kill(-(proc.pid as number), sig);
      } catch {
        // already gone
      }
    };
    if (proc.exitCode === null && proc.signalCode === null) {
      const gone = new Promise<void>((r) => proc.once('exit', () => r()));
      group('SIGTERM');
      const t = setTimeout(() => group('SIGKILL'), 3000);
      await gone;
      clearTimeout(t);
    }
    group('SIGKILL');
    if (relay && relay.exitCode === null && relay.signalCode === null) {
      const gone = new Promise<void>((r) => relay?.once('exit', () => r()));
      relay.kill('SIGKILL');
      await gone;
    }
    await net?.remove();
    // A helper may still be writing its profile for a moment after the browser's exit.
    rmSync(profile, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 });
  };
  let browser: Browser;
  try {
    const ws = await new Promise<string>((resolve, reject) => {
      let err = '';
      const t = setTimeout(() => reject(new Error(`chromium did not start in 20 s: ${err.slice(-2000)}`)), 20_000);
      proc.stderr?.on('data', (d: Buffer) => {
        err += d.toString();
        const m = /DevTools listening on (ws:\/\/\S+)/.exec(err);
        if (m) {
          clearTimeout(t);
          resolve(m[1] as string);
        }
      });
      proc.once('exit', (code) => reject(new Error(`chromium exited (${code}): ${err.slice(-2000)}`)));
    });
    if (net) {
      // ws://127.0.0.1:PORT/devtools/browser/ID, reached through a relay on the namespace's end of its link.
      const u = new URL(ws);
      relay = spawn('ip', ['netns', 'exec', net.ns, process.execPath, RELAY, net.inside, '127.0.0.1', u.port], { stdio: ['pipe', 'pipe', 'pipe'] });
      const port = await relayPort(relay);
      browser = await chromium.connectOverCDP(`ws://${net.inside}:${port}${u.pathname}`);
    } else browser = await chromium.connectOverCDP(ws);
  } catch (e) {
    await stopProc();
    throw e;
  }
  mkdirSync(SCREENSHOTS, { recursive: true });
  return {
    browser,
    pid: proc.pid as number,
    serverHost: net?.outside ?? '127.0.0.1',
    async page() {
      const ctx = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1366, height: 768 } });
      const page = await ctx.newPage();
      const errors: string[] = [];
      page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
      page.on('pageerror', (e) => errors.push(e.message));
      return { page, errors };
    },
    async shot(page, name) {
      const path = join(SCREENSHOTS, `${name}.png`);
      await page.screenshot({ path, fullPage: true });
      return path;
    },
    async stop() {
      await browser.close().catch(() => undefined);
      await stopProc();
    },
  };
}

const RELAY = join(dirname(fileURLToPath(import.meta.url)), 'relay.js');

/** The port a relay (relay.ts) says it listens on; rejects if it exits or says nothing within 10 s. */
function relayPort(relay: ChildProcess): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    let out = '';
    let err = '';
    const t = setTimeout(() => reject(new Error(`the DevTools relay said nothing in 10 s: ${err.slice(-500)}`)), 10_000);
    relay.stderr?.on('data', (d: Buffer) => (err += d.toString()));
    relay.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /relay listening on (\d+)/.exec(out);
      if (m) {
        clearTimeout(t);
        resolve(Number(m[1]));
      }
    });
    relay.once('exit', (code) => {
      clearTimeout(t);
      reject(new Error(`the DevTools relay exited (${code}): ${err.slice(-500)}`));
    });
  });
}

/**
 * A network namespace for the browser, joined to ours by a veth: 198.18.X.1 our end (`outside`), .2 its
 * end (`inside`, its default route through ours). No IPv6 link-local address: it would appear a moment
 * after the link is up (after its duplicate detection), a change Chromium would abandon its first page
 * for. remove() deletes both; a failure half-way removes what was made.
 */
async function ownNamespace(): Promise<{ ns: string; outside: string; inside: string; remove(): Promise<void> }> {
  const ns = `weftbr${process.pid % 100000}`;
  const link = `${ns}r`;
  const octet = (await freeOctets(runner, '198.18', 1, 'random'))[0] as number;
  const [outside, inside] = [`198.18.${octet}.1`, `198.18.${octet}.2`];
  const remove = async () => {
    await runner.run(['ip', 'netns', 'del', ns], { allowFailure: true });
    await runner.run(['ip', 'link', 'del', link], { allowFailure: true });
  };
  try {
    await runner.run(['ip', 'netns', 'add', ns]);
    await runner.run(['ip', 'link', 'add', link, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
    await runner.run(['ip', 'addr', 'add', `${outside}/30`, 'dev', link]);
    await runner.run(['ip', 'link', 'set', link, 'up']);
    await runner.run(['ip', '-n', ns, '-batch', '-'], { input: `link set lo up\nlink set eth0 addrgenmode none\naddr add ${inside}/30 dev eth0\nlink set eth0 up\nroute add default via ${outside}\n` });
  } catch (e) {
    await remove();
    throw e;
  }
  return { ns, outside, inside, remove };
}
