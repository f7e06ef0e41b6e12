import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { ProcessRunner, type RunResult } from '../exec/index.js';
import { busyboxImage } from './podman.js';
import { within } from './host.js';

const runner = new ProcessRunner();
/** Debian's docker.io client (another `docker` may be first on PATH). */
const DOCKER = '/usr/bin/docker';

export interface Docker {
  /** The daemon's API socket. */
  socket: string;
  run(args: string[], opts?: { timeoutMs?: number }): Promise<RunResult>;
  pid(): number | undefined;
  restart(): Promise<void>;
  cleanup(): Promise<void>;
}

/**
 * A dockerd of the test's own: its own data and exec roots and API socket, run inside the test's host
 * namespace (so containers are plugged in there), no bridge or iptables of its own; the image `bb`
 * imported from busybox. Stopped by its pid; restart() stops and starts it on the same roots.
 */
export async function startDocker(hostNs: string): Promise<Docker> {
  const dir = mkdtempSync(join(tmpdir(), 'weft-docker-'));
  const sock = join(dir, 'docker.sock');
  let child: ChildProcess | undefined;
  const run = (args: string[], o: { timeoutMs?: number } = {}) => runner.run([DOCKER, '-H', `unix://${sock}`, ...args], { allowFailure: true, timeoutMs: o.timeoutMs ?? 60_000 });
  const start = async () => {
    child = spawn('nsenter', [`--net=/run/netns/${hostNs}`, 'dockerd', '--host', `unix://${sock}`, '--data-root', join(dir, 'data'),
      '--exec-root', join(dir, 'exec'), '--pidfile', join(dir, 'dockerd.pid'), '--bridge', 'none', '--iptables=false', '--ip6tables=false',
      '--ip-forward=false', '--ip-masq=false'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    child.stderr?.on('data', (d) => { log += d; });
    if (await within(30_000, async () => (await run(['info', '--format', '{{.ID}}'], { timeoutMs: 5000 })).code === 0, 200) < 0) {
      throw new Error(`dockerd did not start:\n${log.slice(-2000)}`);
    }
  };
  const stop = async () => {
    const c = child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise((r) => c.once('exit', r));
    c.kill('SIGTERM');
    const timer = setTimeout(() => c.kill('SIGKILL'), 20_000);
    await exited;
    clearTimeout(timer);
  };
  try {
    await start();
    const imported = await run(['import', await busyboxImage(dir), 'bb:latest']);
    if (imported.code !== 0) throw new Error(`docker import failed: ${imported.stderr}`);
  } catch (e) {
    await stop();
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  return {
    socket: sock,
    run,
    pid: () => child?.pid,
    async restart() {
      await stop();
      await start();
    },
    async cleanup() {
      await run(['rm', '-f', ...(await run(['ps', '-aq'])).stdout.split('\n').filter(Boolean)]);
      await stop();
      // Mounts dockerd left (netns files of killed sandboxes) would keep the directory from going.
      const mounts = existsSync('/proc/self/mounts') ? readFileSync('/proc/self/mounts', 'utf8').split('\n').map((l) => l.split(' ')[1] ?? '').filter((m) => m.startsWith(dir)) : [];
      for (const m of mounts.reverse()) await runner.run(['umount', '-l', m], { allowFailure: true });
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
