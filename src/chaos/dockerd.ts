import { mkdirSync, rmSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { labDockerApi, labDockerSocket, type LabState } from '../lab/index.js';
import { startDocker, type Docker } from '../testkit/docker.js';
import { BACK_MS, within } from './faults.js';
import type { Prng } from './prng.js';
import type { Recorder } from './recorder.js';
import { ALLOWED_PORT, NETWORK } from './workload.js';

/** A container dockerd runs on the Weft network. `endpointId` is Docker's, which Weft keeps as the endpoint's containerId. */
export interface DockerContainer { name: string; host: number; ip: string; endpointId: string; pid: number; fixed: boolean; at: number }

/**
 * Where dockerd looks for plugin sockets by name (it follows a symlink there; spec files would need
 * /etc/docker/plugins, which this machine does not have): ours links to the agent's socket.
 */
const PLUGINS = '/run/docker/plugins';
/** The Docker network, mapped onto Weft group b of the workload's network (echo listeners a may reach). */
export const DOCKER_NETWORK = 'dkb';
/**
 * dockerd's own start after a crash: it restores each container's sandbox before it answers, ~0.5-1 s per
 * container on a Weft network on this loaded 2-core machine, with no call to the plugin meanwhile
 * (checked with a logging proxy between dockerd and the agent). The testkit waits 30 s for it.
 */
const DOCKERD_START_MS = 30_000;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * A real dockerd (--live-restore, as production runs it so that a daemon restart keeps containers) on
 * one lab host, using that host's agent as its network and IPAM driver: `docker run` and `docker rm -f`
 * churn, a fixed container the probes and a stream reach, and the dockerd crash fault.
 */
export class DockerWork {
  readonly live = new Map<string, DockerContainer>();
  /** Containers whose `docker rm -f` failed (dockerd down): retried, and at the end. */
  readonly undeleted = new Map<string, DockerContainer>();
  /**
   * Containers of a refused `docker run` that Docker may still hold: a run cut by a dockerd crash can
   * leave the container created, with its endpoint, and the `rm -f` right after fails while dockerd is
   * away. Docker then still holds that endpoint in Weft, rightly, until the container is removed.
   */
  private readonly stray = new Set<string>();
  readonly driver: string;
  private dk: Docker | undefined;
  private seq = 0;
  private turn: Promise<unknown> = Promise.resolve();

  constructor(private readonly s: LabState, readonly host: number, private readonly rec: Recorder, private readonly prng: Prng) {
    this.driver = `weft-${s.prefix}`;
  }

  private get link(): string {
    return join(PLUGINS, `${this.driver}.sock`);
  }

  async start(): Promise<void> {
    const h = this.s.hosts[this.host];
    if (!h) throw new RangeError(`no host ${this.host} for dockerd`);
    mkdirSync(PLUGINS, { recursive: true });
    rmSync(this.link, { force: true });
    symlinkSync(labDockerSocket(h.dir), this.link);
    this.dk = await startDocker(h.ns, { dir: join(this.s.dir, 'dockerd'), socket: labDockerApi(h.dir), args: ['--live-restore'] });
    const net = await this.docker(['network', 'create', '-d', this.driver, '--ipam-driver', this.driver, '-o', 'tenant=default', '-o', `network=${NETWORK}`, '-o', 'group=b', DOCKER_NETWORK]);
    if (net.code !== 0) throw new Error(`docker network create ${DOCKER_NETWORK}: ${net.stderr}`);
  }

  private docker(args: string[]) {
    if (!this.dk) throw new Error('dockerd was not started');
    return this.dk.run(args, { timeoutMs: 30_000 });
  }

  /** `docker run` of an echo listener; kept (counted as acknowledged) only if it runs with its address. */
  async add(fixed = false, name = `d${++this.seq}`): Promise<DockerContainer | undefined> {
    const r = await this.docker(['run', '-d', '--name', name, '--network', DOCKER_NETWORK, 'bb', 'nc', '-ll', '-p', ALLOWED_PORT, '-e', '/bin/cat']);
    const seen = r.code === 0 ? await this.inspect(name) : undefined;
    if (!seen) {
      this.rec.event(`docker run ${name} on host${this.host + 1} refused: ${(r.stderr || r.stdout).trim().slice(0, 200)}`);
      if (await this.removeName(name)) this.stray.add(name);
      return undefined;
    }
    const c: DockerContainer = { name, host: this.host, fixed, at: Date.now(), ...seen };
    this.live.set(name, c);
    this.rec.event(`docker run ${name} on host${this.host + 1} = ${c.ip}`);
    return c;
  }

  /** Whether the container's listener echoes a line sent from inside it (to its own address, past the policy). */
  async answers(c: DockerContainer): Promise<boolean> {
    const r = await this.docker(['exec', c.name, 'sh', '-c', `echo chaos | nc -w 1 ${c.ip} ${ALLOWED_PORT}`]);
    return r.stdout.trim() === 'chaos';
  }

  /** What Docker says of a running container on the network: its pid, Docker endpoint and address. */
  async inspect(name: string): Promise<{ pid: number; endpointId: string; ip: string } | undefined> {
    const fmt = `{{.State.Pid}} {{with index .NetworkSettings.Networks "${DOCKER_NETWORK}"}}{{.EndpointID}} {{.IPAddress}}{{end}}`;
    const r = await this.docker(['inspect', '-f', fmt, name]);
    const [pid, endpointId, ip] = r.stdout.trim().split(' ');
    if (r.code !== 0 || !endpointId || !ip || !(Number(pid) > 0)) return undefined;
    return { pid: Number(pid), endpointId, ip };
  }

  /** Docker endpoint IDs of the containers Docker runs (or may: a failed `rm -f` is retried). */
  running(): Set<string> {
    return new Set([...this.live.values(), ...this.undeleted.values()].map((c) => c.endpointId));
  }

  /** `docker rm -f`: the error, or '' when the container is gone (removed now, or there was none). */
  private async removeName(name: string): Promise<string> {
    const r = await this.docker(['rm', '-f', name]);
    return r.code === 0 || /No such container/i.test(r.stderr) ? '' : r.stderr.trim() || `exit ${r.code}`;
  }

  async remove(c: DockerContainer): Promise<boolean> {
    this.live.delete(c.name);
    const err = await this.removeName(c.name);
    if (err) {
      this.undeleted.set(c.name, c);
      this.rec.event(`docker rm ${c.name} failed (retried later): ${err.slice(0, 160)}`);
      return false;
    }
    this.undeleted.delete(c.name);
    this.rec.event(`docker rm ${c.name} (${c.ip})`);
    return true;
  }

  /**
   * Runs `fn` with the churn held: a check that compares the host's Docker endpoints before and after
   * (malformed plugin input must change nothing) must not see the churn's own changes.
   */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.turn.then(fn, fn);
    this.turn = run.catch(() => undefined);
    return run;
  }

  /** One step: retry failed removals, then a `docker run` or a `docker rm -f` (about 2-6 churned containers). */
  churn(): Promise<void> {
    return this.exclusive(() => this.churnStep());
  }

  private async churnStep(): Promise<void> {
    for (const c of [...this.undeleted.values()]) await this.remove(c);
    const churned = [...this.live.values()].filter((c) => !c.fixed);
    if (churned.length < 2 || (churned.length < 6 && this.prng.next() < 0.5)) await this.add();
    else await this.remove(this.prng.pick(churned));
  }

  /**
   * dockerd SIGKILLed and started again on the same roots. dockerd's own start (restoring its
   * containers) is Docker's work, not Weft's: measured, and held only to DOCKERD_START_MS. Weft's part,
   * held to BACK_MS from the moment dockerd answers: every container it ran still runs with the same
   * Weft endpoint and address (live restore), and a `docker run` on the Weft network succeeds.
   */
  async crash(): Promise<void> {
    const dk = this.dk;
    if (!dk) throw new Error('dockerd was not started');
    this.rec.fault('dockerd SIGKILL + restart', `host${this.host + 1}`);
    const before = [...this.live.values()];
    const pid = dk.pid();
    await dk.crash();
    await sleep(this.prng.int(0, 2000));
    const t0 = Date.now();
    await dk.restart();
    const up = Date.now();
    this.rec.event(`dockerd on host${this.host + 1} restarted (pid ${pid} -> ${dk.pid()}), answering after ${up - t0} ms (its own restore of ${before.length} containers)`);
    this.rec.check(`dockerd back (docker info) <= ${DOCKERD_START_MS / 1000} s`, up - t0 <= DOCKERD_START_MS, () => `dockerd on host${this.host + 1} answered ${up - t0} ms after its restart`);
    for (const c of before) {
      const now = await this.inspect(c.name);
      if (this.live.get(c.name) !== c) continue;
      this.rec.check('Docker container kept its endpoint through a dockerd restart', now?.ip === c.ip && now.endpointId === c.endpointId,
        () => `${c.name}: before ${c.ip} (${c.endpointId.slice(0, 12)}), after ${now ? `${now.ip} (${now.endpointId.slice(0, 12)})` : 'not running on the network'}`);
    }
    const conv = await within(BACK_MS - (Date.now() - up), async () => (await this.add()) !== undefined, 500);
    this.rec.check('Weft serves dockerd again (docker run) <= 10 s after it answers', conv >= 0, () => `no docker run on host${this.host + 1} succeeded within ${BACK_MS / 1000} s of dockerd answering`);
  }

  /** Every container removed (retried while dockerd or the agent is away), then the network. */
  async removeAll(): Promise<string[]> {
    const all = () => [...this.live.values(), ...this.undeleted.values()];
    await within(30_000, async () => {
      for (const c of all()) await this.remove(c);
      for (const name of [...this.stray]) if (!(await this.removeName(name))) this.stray.delete(name);
      return all().length === 0 && this.stray.size === 0;
    }, 1000);
    const net = await this.docker(['network', 'rm', DOCKER_NETWORK]);
    if (net.code !== 0) this.rec.event(`docker network rm ${DOCKER_NETWORK}: ${net.stderr.trim().slice(0, 200)}`);
    return [...all().map((c) => c.name), ...this.stray];
  }

  /** dockerd stopped by its pid, its roots unmounted and removed, the plugin link removed. */
  async stop(): Promise<void> {
    await this.dk?.cleanup();
    this.dk = undefined;
    rmSync(this.link, { force: true });
  }
}
