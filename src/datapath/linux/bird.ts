import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnDaemon, type Runner } from '../../exec/index.js';
import { renderBirdConfig } from '../bird-conf.js';
import type { BgpPlan } from '../routed.js';

/**
 * This host's BGP daemon (bird2, Debian's `bird`), for routed networks with BGP peers: its configuration,
 * socket, pid and log in `<state>/bird/`. Started detached in the foreground (`-f`: the pid is bird's own),
 * so it outlives an agent restart as kernel state would, and this host's routes are not withdrawn while
 * the agent is upgraded; stopped by that pid, only if it still is that very command (pids are reused).
 * A new configuration is checked (`bird -p`) before bird takes it (`birdc configure`); a bird that died is
 * started again at the next pass.
 */
export class BirdDaemon {
  private readonly dir: string;
  private readonly conf: string;
  private readonly sock: string;
  private readonly pidFile: string;
  /** The text bird last took (undefined: not known to run ours). */
  private loaded: string | undefined;

  constructor(private readonly runner: Runner, stateDir: string, private readonly binary = 'bird') {
    this.dir = join(stateDir, 'bird');
    this.conf = join(this.dir, 'bird.conf');
    this.sock = join(this.dir, 'bird.ctl');
    this.pidFile = join(this.dir, 'bird.pid');
  }

  private argv(): string[] {
    return [this.binary, '-f', '-c', this.conf, '-s', this.sock];
  }

  /** The pid of the bird we started, if it still runs as exactly that command. */
  private running(): number | undefined {
    const pid = existsSync(this.pidFile) ? Number(readFileSync(this.pidFile, 'utf8').trim()) : NaN;
    if (!Number.isInteger(pid) || pid <= 1) return undefined;
    try {
      return readFileSync(`/proc/${pid}/cmdline`, 'utf8') === `${this.argv().join('\0')}\0` ? pid : undefined;
    } catch {
      return undefined;
    }
  }

  /** Runs bird with the plan's configuration; stops it when there is nothing to announce or learn. */
  async ensure(plan: BgpPlan | undefined): Promise<void> {
    if (!plan) {
      await this.stop();
      return;
    }
    const text = renderBirdConfig(plan);
    const pid = this.running();
    if (pid !== undefined && this.loaded === text) return;
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    const next = `${this.conf}.next`;
    writeFileSync(next, text, { mode: 0o600 });
    const check = await this.runner.run([this.binary, '-p', '-c', next], { allowFailure: true });
    if (check.code !== 0) {
      rmSync(next, { force: true });
      throw new Error(`bird refused the configuration weft wrote: ${(check.stderr || check.stdout).trim()}`);
    }
    renameSync(next, this.conf);
    if (pid !== undefined) {
      const r = await this.runner.run(['birdc', '-s', this.sock, 'configure'], { allowFailure: true });
      if (r.code === 0 && /Reconfigured|Reconfiguration in progress/.test(r.stdout)) {
        this.loaded = text;
        return;
      }
      await this.stop();
    }
    rmSync(this.sock, { force: true });
    const started = spawnDaemon(this.argv(), join(this.dir, 'bird.log'));
    writeFileSync(this.pidFile, `${started}\n`, { mode: 0o600 });
    for (let i = 0; i < 100 && !existsSync(this.sock); i++) {
      if (this.running() === undefined) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    if (!existsSync(this.sock)) {
      await this.stop();
      throw new Error(`bird did not start (see ${join(this.dir, 'bird.log')})`);
    }
    this.loaded = text;
  }

  /** Stops our bird (its routes leave the kernel with it) and forgets its files. */
  async stop(): Promise<boolean> {
    const pid = this.running();
    this.loaded = undefined;
    if (pid === undefined) {
      rmSync(this.pidFile, { force: true });
      return false;
    }
    process.kill(pid, 'SIGTERM');
    for (let i = 0; i < 50 && this.running() !== undefined; i++) await new Promise((r) => setTimeout(r, 50));
    if (this.running() !== undefined) process.kill(pid, 'SIGKILL');
    rmSync(this.pidFile, { force: true });
    rmSync(this.sock, { force: true });
    return true;
  }

  /** What `birdc show protocols` says (for tests and diagnosis), or undefined when bird is not ours or not running. */
  async protocols(): Promise<string | undefined> {
    if (this.running() === undefined) return undefined;
    return (await this.runner.run(['birdc', '-s', this.sock, 'show', 'protocols'], { allowFailure: true })).stdout;
  }
}
