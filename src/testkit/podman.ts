import { mkdirSync, mkdtempSync, rmSync, writeFileSync, symlinkSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ProcessRunner, type RunResult } from '../exec/index.js';

const runner = new ProcessRunner();
const APPLETS = ['sh', 'ip', 'ping', 'nc', 'wget', 'httpd', 'sleep', 'cat', 'echo', 'true', 'ls', 'hostname'];

/**
 * A podman with its own storage, run directory and containers.conf (CNI backend, the given conflist and
 * plugin directories, runc, cgroupfs: what works on these hosts), and a busybox image made locally
 * (no registry is reachable). cleanup() removes every container and the storage.
 */
export interface Podman {
  /** `env`: podman's own environment (it passes CNI_ARGS from there to the plugins). */
  run(args: string[], opts?: { timeoutMs?: number; env?: Record<string, string> }): Promise<RunResult>;
  /** What a plain `podman` (another program calling it, `weft attach`) needs in its environment to see this podman's containers. */
  env: Record<string, string>;
  cleanup(): Promise<void>;
}

export const IMAGE = 'localhost/bb:latest';

/** A tar of a busybox root file system (no registry is reachable), for `podman import` / `docker import`. */
export async function busyboxImage(dir: string): Promise<string> {
  const img = join(dir, 'img');
  mkdirSync(join(img, 'bin'), { recursive: true });
  copyFileSync('/usr/bin/busybox', join(img, 'bin', 'busybox'));
  for (const a of APPLETS) symlinkSync('busybox', join(img, 'bin', a));
  await runner.run(['tar', '-C', img, '-cf', join(dir, 'bb.tar'), '.']);
  return join(dir, 'bb.tar');
}
/** Flags every `podman run` needs here (the default open-file limit is refused). */
export const RUN_FLAGS = ['--ulimit', 'nofile=20000:20000', '--ulimit', 'nproc=4096:4096'];

/**
 * `hostNs`: run podman in that network namespace (nsenter --net), so whatever the reference plugins do on
 * "the host" (podman's default bridge, iptables chains) lands in a test namespace and dies with it.
 */
export async function startPodman(cniConfDir: string, pluginDirs: string[], hostNs?: string): Promise<Podman> {
  const dir = mkdtempSync(join(tmpdir(), 'weft-podman-'));
  const conf = join(dir, 'containers.conf');
  writeFileSync(conf, [
    '[network]', 'network_backend = "cni"', `network_config_dir = "${cniConfDir}"`,
    `cni_plugin_dirs = [${pluginDirs.map((d) => `"${d}"`).join(', ')}]`,
    '[engine]', 'runtime = "runc"', 'cgroup_manager = "cgroupfs"', '',
  ].join('\n'));
  // The same storage as the flags below, for a podman run by another program without them.
  const storage = join(dir, 'storage.conf');
  writeFileSync(storage, `[storage]\ndriver = "vfs"\ngraphroot = "${join(dir, 'root')}"\nrunroot = "${join(dir, 'runroot')}"\n`);
  const enter = hostNs ? ['nsenter', `--net=/run/netns/${hostNs}`] : [];
  const base = [...enter, 'podman', '--root', join(dir, 'root'), '--runroot', join(dir, 'runroot'), '--storage-driver', 'vfs'];
  const run = (args: string[], opts: { timeoutMs?: number; env?: Record<string, string> } = {}) => {
    const env = Object.entries(opts.env ?? {}).map(([k, v]) => `${k}=${v}`);
    return runner.run(['env', `CONTAINERS_CONF=${conf}`, ...env, ...base, ...args], { allowFailure: true, timeoutMs: opts.timeoutMs ?? 60_000 });
  };
  const imported = await run(['import', '-q', await busyboxImage(dir), IMAGE]);
  if (imported.code !== 0) throw new Error(`podman import failed: ${imported.stderr}`);
  return {
    run,
    env: { CONTAINERS_CONF: conf, CONTAINERS_STORAGE_CONF: storage },
    async cleanup() {
      await run(['rm', '-af', '-t', '0']);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
