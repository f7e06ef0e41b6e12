import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import { devtoolsRelay, ownNamespace } from './browser-net.js';

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
 * loopback only (it ignores --remote-debugging-address), so a relay in its namespace (browser-net.ts,
 * relay.ts) carries Playwright's connection to them from ours. stop() may be called more than once.
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
  let relay: { stop(): Promise<void> } | undefined;
  let stopped: Promise<void> | undefined;
  const stopProc = () => (stopped ??= stopAll());
  const stopAll = async () => {
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
    await relay?.stop();
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
      proc.once('error', reject);
    });
    if (net) {
      // ws://127.0.0.1:PORT/devtools/browser/ID in its namespace: the same path on our loopback, through a relay.
      const u = new URL(ws);
      const r = await devtoolsRelay(net.ns, Number(u.port), profile);
      relay = r;
      browser = await chromium.connectOverCDP(`ws://127.0.0.1:${r.port}${u.pathname}`);
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
