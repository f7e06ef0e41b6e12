// A worker process of bench:scale: a slice of the simulated agents. Each one is a registered host with its
// own certificate that lists and watches the desired state with the real agent's Syncer and DesiredState
// (the same requests, resume, 410 and idle handling), heartbeats like the agent when told to, and reports
// when every agent of this worker has applied a given revision. It programs no datapath.
import { pino } from 'pino';
import { Client, linesOf, type RequestOptions, type Target } from '../client/index.js';
import type { ChangeEvent } from '../model/index.js';
import { DesiredState, type Affected, type Snapshot } from '../agent/state.js';
import { Syncer, listAll } from '../agent/sync.js';
import { agentInstance } from '../agent/instance.js';
import { wireguardKey } from '../agent/index.js';
import { AGENT_START_MS, stateDigest, wallMs, type Feed, type FromWorker, type HostCreds, type ToWorker, type WorkerStats } from './scale-protocol.js';
import { Arrivals } from './scale-arrivals.js';
import { pool } from './scale-pool.js';
import { fmtSeconds, within } from './deadline.js';

/** How often a worker starting its agents says how far it got. */
const PROGRESS_MS = 10_000;

const send = (m: FromWorker) => process.send?.(m);
/** This worker's agents, once started. */
const agents: SimAgent[] = [];
const stats: WorkerStats = { agents: 0, relists: 0, heartbeats: 0, heartbeatFailures: 0, rss: 0, heapUsed: 0, lines: 0, warnings: {} };
const feeds: Record<Feed, Arrivals> = { weft: new Arrivals(() => agents.length), anchor: new Arrivals(() => agents.length) };
/** The Syncer's warnings (a broken watch, a failed list), counted by message and cause instead of printed. */
const log = pino({ level: 'warn' }, { write(line: string) {
  const j = JSON.parse(line) as { msg?: string; err?: string };
  const key = `${j.msg ?? '?'} (${(j.err ?? '').replace(/\d+/g, 'N').slice(0, 80)})`;
  stats.warnings[key] = (stats.warnings[key] ?? 0) + 1;
} });

/**
 * The real agent lists every endpoint of the cluster; a simulated one asks only for its own host's (50
 * instead of 50,000: a thousand agents in a few processes could not each hold the whole cluster). Every
 * other request, and the watch, is the agent's own.
 */
class OwnEndpointsClient extends Client {
  constructor(target: Target, private readonly host: string) {
    super(target);
  }

  override request<T = unknown>(method: string, path: string, body?: unknown, opts?: RequestOptions): Promise<T> {
    const own = method === 'GET' && path === '/api/v1/endpoints' ? `${path}?host=${this.host}` : path;
    return super.request<T>(method, own, body, opts);
  }
}

/** The agent's desired state, timed: each revision it applies is recorded once, as the agent has it. */
class TimedState extends DesiredState {
  private counted = 0;
  listed = 0;

  override replaceAll(s: Snapshot): void {
    super.replaceAll(s);
    this.listed++;
    this.counted = Math.max(this.counted, s.revision);
  }

  override apply(c: ChangeEvent): Affected {
    const affected = super.apply(c);
    stats.lines++;
    if (c.revision > this.counted) {
      this.counted = c.revision;
      feeds.weft.record(c.revision, wallMs());
    }
    return affected;
  }
}

function failedBeat(e: Error): void {
  stats.heartbeatFailures++;
  log.warn({ err: e.message }, 'heartbeat failed');
}

class SimAgent {
  readonly state = new TimedState();
  readonly client: Client;
  private readonly syncer: Syncer;
  /** The agent's instance id and WireGuard key, made by the agent's own code in the host's state dir. */
  private readonly instance: string;
  private readonly wgKey: string;
  private beat: NodeJS.Timeout | undefined;
  private anchor: Client | undefined;
  /** What its start is doing, and since when (for the progress lines). */
  stage = 'waiting';
  since = performance.now();

  constructor(servers: string[], ca: string, readonly host: HostCreds) {
    this.client = new OwnEndpointsClient({ servers, token: undefined, tls: { ca, cert: host.cert, key: host.key } }, host.name);
    this.syncer = new Syncer(this.client, this.state, () => undefined, log);
    this.instance = agentInstance(host.stateDir);
    this.wgKey = wireguardKey(host.stateDir).publicKey;
  }

  async start(): Promise<void> {
    this.at('registering');
    await this.register();
    this.at('listing');
    await this.syncer.start();
    this.at('watching');
  }

  private at(stage: string): void {
    this.stage = stage;
    this.since = performance.now();
  }

  /** The agent's registration and heartbeat (agent.ts), at `everyMs` from a random phase; 0 stops it. */
  heartbeats(everyMs: number): void {
    clearTimeout(this.beat);
    clearInterval(this.beat);
    if (everyMs <= 0) return;
    this.beat = setTimeout(() => {
      this.beat = setInterval(() => void this.register().catch(failedBeat), everyMs);
      void this.register().catch(failedBeat);
    }, Math.random() * everyMs);
  }

  private async register(): Promise<void> {
    stats.heartbeats++;
    await this.client.request('PUT', `/api/v1/hosts/${this.host.name}`, {
      name: this.host.name, vtepIp: this.host.vtepIp, agentVersion: 'bench-scale', wgPublicKey: this.wgKey, instance: this.instance,
    });
  }

  /** One stream from the anchor server, read and parsed line by line as the agent reads its watch. */
  async follow(url: string, ca: string): Promise<void> {
    this.anchor = new Client({ servers: [url], token: undefined, tls: { ca } });
    const body = await this.anchor.stream('/stream');
    void (async () => {
      for await (const text of linesOf(body)) feeds.anchor.record((JSON.parse(text) as { seq: number }).seq, wallMs());
    })().catch(() => undefined);
  }

  /** What the bench compares with the server: this host's endpoints only (others arrive by the watch too). */
  digest(tenant: string): string {
    const s = this.state;
    const own = [...s.endpoints.values()].filter((e) => e.host === this.host.name);
    return stateDigest({ policies: s.policies.values(), groups: s.groups.values(), endpoints: own, hosts: s.hosts.size }, tenant);
  }

  stop(): void {
    this.heartbeats(0);
    this.syncer.stop();
    this.client.close();
    this.anchor?.close();
  }
}

/** '120 of 500 agents started, 2 failed, in 30 s; slowest: h0002 listing for 12.0 s, ...' */
function startProgress(made: SimAgent[], t0: number): string {
  const now = performance.now();
  const by = (stage: string) => made.filter((a) => a.stage === stage).length;
  const busy = made.filter((a) => a.stage === 'registering' || a.stage === 'listing').sort((a, b) => a.since - b.since);
  const slowest = busy.slice(0, 3).map((a) => `${a.host.name} ${a.stage} for ${fmtSeconds(now - a.since)}`).join(', ');
  return `${by('watching')} of ${made.length} agents started, ${by('failed')} failed, in ${fmtSeconds(now - t0)}; ${slowest ? `slowest: ${slowest}` : 'none in flight'}`;
}

async function handle(m: ToWorker): Promise<void> {
  switch (m.op) {
    case 'start': {
      const t0 = performance.now();
      const made = m.hosts.map((h) => new SimAgent(m.servers, m.ca, h));
      const report = setInterval(() => send({ op: 'progress', text: startProgress(made, t0) }), PROGRESS_MS);
      const failures = await pool(made, m.concurrency, async (a) => {
        try {
          await within(a.start(), AGENT_START_MS, `agent ${a.host.name} ${a.stage}`);
        } catch (e) {
          a.stop();
          a.stage = 'failed';
          throw e;
        }
        agents.push(a);
      }).finally(() => clearInterval(report));
      stats.agents = agents.length;
      send({ op: 'started', agents: agents.length, ms: performance.now() - t0, failures: failures.slice(0, 5) });
      return;
    }
    case 'heartbeats':
      for (const a of agents) a.heartbeats(m.everyMs);
      return;
    case 'relist': {
      const t0 = performance.now();
      // All at once, as after a restart: each may wait behind all the others, so each gets the whole step's time.
      const failures = await pool(agents, agents.length, (a) => within(listAll(a.client).then(() => undefined), m.deadlineMs, `agent ${a.host.name}'s list`));
      send({ op: 'relisted', agents: agents.length - failures.length, ms: performance.now() - t0, failures: failures.slice(0, 5) });
      return;
    }
    case 'anchor': {
      const failures = await pool(agents, 16, (a) => within(a.follow(m.url, m.ca), 30_000, `agent ${a.host.name}'s stream from the anchor server`));
      send({ op: 'anchored', streams: agents.length - failures.length, failures: failures.slice(0, 5) });
      return;
    }
    case 'await': {
      const r = await feeds[m.feed].wait(m.key, m.timeoutMs);
      send({ op: 'seen', feed: m.feed, key: m.key, ...r });
      return;
    }
    case 'digest':
      send({ op: 'digest', byHost: Object.fromEntries(agents.map((a) => [a.host.name, a.digest(m.tenant)])) });
      return;
    case 'stats': {
      const mem = process.memoryUsage();
      stats.relists = agents.reduce((n, a) => n + a.state.listed - 1, 0);
      send({ op: 'stats', stats: { ...stats, rss: mem.rss, heapUsed: mem.heapUsed } });
      return;
    }
    case 'stop':
      for (const a of agents) a.stop();
      process.disconnect();
  }
}

process.on('message', (m: ToWorker) => void handle(m).catch((e: Error) => {
  console.error(`scale worker: ${m.op}: ${e.stack ?? e.message}`);
  process.exit(1);
}));
// The bench gone (killed, crashed): this worker must not outlive it.
process.on('disconnect', () => process.exit(0));
