import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync } from 'node:fs';
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
  /** SIGKILL (a crash, not a stop); resolves once it and its containerd are gone. restart() starts it again. */
  crash(): Promise<void>;
  cleanup(): Promise<void>;
}

export interface DockerOptions {
  /** Where its data, exec roots and log go (made if missing; default a new temp dir). */
  dir?: string;
  /** Its API socket (default docker.sock in `dir`). */
  socket?: string;
  /** More dockerd flags, e.g. `--live-restore`. */
  args?: string[];
}

/**
 * A dockerd of the test's own: its own data and exec roots and API socket, run inside the test's host
 * namespace (so containers are plugged in there), no bridge or iptables of its own; the image `bb`
 * imported from busybox. Stopped by its pid; restart() stops and starts it on the same roots.
 */
export async function startDocker(hostNs: string, o: DockerOptions = {}): Promise<Docker> {
  const dir = o.dir ?? mkdtempSync(join(tmpdir(), 'weft-docker-'));
  mkdirSync(dir, { recursive: true });
  const sock = o.socket ?? join(dir, 'docker.sock');
  let child: ChildProcess | undefined;
  // Its log goes to a file in `dir` (appended across restarts), not into this process's memory.
  const log = join(dir, 'dockerd.log');
  const logFd = openSync(log, 'a');
  const run = (args: string[], o: { timeoutMs?: number } = {}) => runner.run([DOCKER, '-H', `unix://${sock}`, ...args], { allowFailure: true, timeoutMs: o.timeoutMs ?? 60_000 });
  const start = async () => {
    child = spawn('nsenter', [`--net=/run/netns/${hostNs}`, 'dockerd', '--host', `unix://${sock}`, '--data-root', join(dir, 'data'),
      '--exec-root', join(dir, 'exec'), '--pidfile', join(dir, 'dockerd.pid'), '--bridge', 'none', '--iptables=false', '--ip6tables=false',
      '--ip-forward=false', '--ip-masq=false', ...(o.args ?? [])], { stdio: ['ignore', 'ignore', logFd] });
    if (await within(30_000, async () => (await run(['info', '--format', '{{.ID}}'], { timeoutMs: 5000 })).code === 0, 200) < 0) {
      throw new Error(`dockerd did not start (log ${log}):\n${readFileSync(log, 'utf8').slice(-2000)}`);
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
    closeSync(logFd);
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
    async crash() {
      const c = child;
      if (c && c.exitCode === null && c.signalCode === null) {
        const exited = new Promise((r) => c.once('exit', r));
        c.kill('SIGKILL');
        await exited;
      }
      // Its containerd dies with it (parent-death signal); a new one on the same socket and state must wait
      // for that (one still running after 5 s is killed by its pid). Then its pid file goes: a restarted
      // dockerd that finds the pid alive connects to that containerd instead of starting its own, and a
      // killed containerd nobody has reaped yet (a zombie) is alive to that check. Seen in CI twice on one
      // machine: 'libcontainerd: containerd is still running', then 'timeout waiting for containerd'.
      const config = join(dir, 'exec', 'containerd', 'containerd.toml');
      if (await within(5_000, async () => pidsWith(config).length === 0, 100) < 0) {
        for (const pid of pidsWith(config)) try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
        if (await within(5_000, async () => pidsWith(config).length === 0, 100) < 0) throw new Error(`dockerd's containerd (${pidsWith(config).join(', ')}) outlived SIGKILL`);
      }
      rmSync(join(dir, 'exec', 'containerd', 'containerd.pid'), { force: true });
    },
    async cleanup() {
      const ids = async () => (await run(['ps', '-aq'])).stdout.split('\n').filter(Boolean);
      if ((await ids()).length) await run(['rm', '-f', ...(await ids())]);
      // With --live-restore a container Docker could not remove outlives its daemon: stop it by its pid.
      for (const id of await ids()) {
        const pid = Number((await run(['inspect', '-f', '{{.State.Pid}}', id])).stdout.trim());
        if (pid > 0) try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
      }
      await stop();
      // Mounts dockerd left (netns files of killed sandboxes) would keep the directory from going.
      const mounts = existsSync('/proc/self/mounts') ? readFileSync('/proc/self/mounts', 'utf8').split('\n').map((l) => l.split(' ')[1] ?? '').filter((m) => m.startsWith(dir)) : [];
      for (const m of mounts.reverse()) await runner.run(['umount', '-l', m], { allowFailure: true });
      closeSync(logFd);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Pids of processes whose command line contains `text`. */
function pidsWith(text: string): number[] {
  return readdirSync('/proc').filter((p) => /^\d+$/.test(p)).filter((p) => {
    try { return readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(text); } catch { return false; }
  }).map(Number);
}
