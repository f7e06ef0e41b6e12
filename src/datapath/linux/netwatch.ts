import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { LineProcess, Runner } from '../../exec/index.js';
import type { FlowRecord, VethCounters } from '../datapath.js';
import { formatIp6, parseIp6 } from '../../model/index.js';

/** dist/weft-netwatch, built from netwatch.c by scripts/build-shim.mjs (absent without a C compiler). */
export const NETWATCH = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'weft-netwatch');

/** What the helper tells of one namespace (undefined: the agent's own). */
export interface NetEvents {
  /** Its ruleset generation moved (`INODE:GENERATION`), whoever committed. */
  generation(ns: string | undefined, gen: string): void;
  /** A link, address, permanent neighbour or forwarding entry, or qdisc changed (or events were lost). */
  links(ns: string | undefined): void;
  /** The namespace was deleted or replaced. */
  gone(ns: string | undefined): void;
  /** The helper ended: from now on nothing is watched. */
  ended(code: number): void;
  /** A new connection's verdict, logged by the namespace's table (flows-nft.ts). */
  flow?(ns: string, record: FlowRecord): void;
  /** Records of the namespace the kernel dropped before we read them (our socket's buffer was full). */
  flowLost?(ns: string, count: number): void;
  /** Connections the namespace's table kept from being logged (its rate limits), since the last report. */
  flowHeld?(ns: string, count: number): void;
  /** A namespace's reading of its endpoint veths' counters: its start, each veth, its uninterrupted end. */
  trafficBegin?(ns: string): void;
  traffic?(ns: string, veth: string, c: VethCounters): void;
  trafficDone?(ns: string): void;
}

const VERDICTS = { a: 'allow', d: 'deny', w: 'audit' } as const;
/**
 * A container's namespace file as netwatch.c takes one (valid_path): absolute, no "..", no space; never
 * under /proc (a process's namespace: its pid may name another process's later).
 */
const CONTAINER_PATH = /^\/(?!proc\/)(?!.*\.\.)[A-Za-z0-9_./-]{1,126}$/;
const IPV4 = /^(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;
const int = (x: string | undefined, max: number) => (x !== undefined && /^\d{1,5}$/.test(x) && Number(x) <= max ? Number(x) : undefined);

/** An address of a `flow` line: IPv4, or IPv6 in RFC 5952 text (as endpoints' `ip6` is stored). */
function address(x: string | undefined): string | undefined {
  if (x === undefined) return undefined;
  if (IPV4.test(x)) return x;
  const n = x.includes(':') ? parseIp6(x) : undefined;
  return n === undefined ? undefined : formatIp6(n);
}

/** A `flow` line's fields after the namespace (netwatch.c), or undefined when any is malformed. */
export function parseFlow(f: readonly string[], at: number): FlowRecord | undefined {
  const [v, proto, src, sport, dst, dport] = f;
  const verdict = VERDICTS[v as keyof typeof VERDICTS];
  const p = int(proto, 255);
  const sp = int(sport, 65535);
  const dp = int(dport, 65535);
  const [s, d] = [address(src), address(dst)];
  if (!verdict || p === undefined || sp === undefined || dp === undefined || s === undefined || d === undefined || f.length !== 6) return undefined;
  return { at, verdict, proto: p, src: s, sport: sp, dst: d, dport: dp };
}

/** How long `unwatch` waits for the helper to let go of a namespace before going on anyway. */
const UNWATCH_MS = 2000;

/**
 * The agent's end of weft-netwatch (netwatch.c): one long-running helper holding netlink sockets in
 * every namespace it is asked to watch, saying which of them someone changed. Lets a resync skip every
 * namespace nobody touched, so an idle agent reads nothing and its cost does not grow with the rules.
 */
export class NetWatch {
  private readonly watched = new Set<string>();
  /** Namespaces the helper holds open now: events about them would reach us. */
  private readonly open = new Set<string>();
  private readonly acks = new Map<string, Array<() => void>>();
  /** Who waits for a container namespace to be open (its flow socket bound): see flowsOpen. */
  private readonly openWaiters = new Map<string, Array<() => void>>();
  /** Per namespace, events so far: an observation made across one of them is not to be trusted. */
  private readonly epochs = new Map<string, number>();
  /** The last generation the helper reported per namespace ('' the agent's own). */
  readonly generations = new Map<string, string>();
  private live = true;

  private constructor(private readonly events: NetEvents, private proc: LineProcess | undefined = undefined) {}

  /** Starts the helper; undefined when it cannot run here (no helper built, or a runner without `start`). */
  static start(runner: Runner, events: NetEvents, helper = NETWATCH): NetWatch | undefined {
    if (!runner.start || !existsSync(helper)) return undefined;
    const w = new NetWatch(events);
    w.proc = runner.start([helper], (l) => w.line(l), (code) => w.end(code));
    return w;
  }

  /** The helper's process id (for tests and diagnostics). */
  get pid(): number | undefined {
    return this.proc?.pid;
  }

  get running(): boolean {
    return this.live;
  }

  /** Watches a namespace (undefined: the agent's own); a namespace not there yet is watched once it is. */
  watch(ns: string | undefined): void {
    const key = ns ?? '';
    if (!this.live || this.watched.has(key)) return;
    this.watched.add(key);
    this.proc?.send(`+${ns ?? '.'}`);
  }

  /**
   * Reads only the flow records of a namespace file (a macvlan endpoint's container, whose own table logs
   * them: nft.ts renderEndpointTable); of its other events only `gone` is told. Let go with `unwatch`.
   */
  watchFlows(path: string): boolean {
    if (!this.live || !CONTAINER_PATH.test(path)) return false;
    if (this.watched.has(path)) return true;
    this.watched.add(path);
    this.proc?.send(`*${path}`);
    return true;
  }

  /**
   * Resolves once the helper has opened a watched container namespace (its flow socket bound: records of
   * the container's first connection are not lost), when the namespace is gone, or after `ms`.
   */
  flowsOpen(path: string, ms = 2000): Promise<void> {
    if (!this.live || !this.watched.has(path) || this.open.has(path)) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      const waiting = this.openWaiters.get(path) ?? [];
      waiting.push(() => { clearTimeout(timer); resolve(); });
      this.openWaiters.set(path, waiting);
    });
  }

  private opened(key: string): void {
    for (const done of this.openWaiters.get(key) ?? []) done();
    this.openWaiters.delete(key);
  }

  /** Lets go of a namespace: its sockets would keep it (and every device in it) alive after deletion. */
  unwatch(ns: string): Promise<void> {
    if (!this.live || !this.watched.delete(ns)) return Promise.resolve();
    this.open.delete(ns);
    this.generations.delete(ns);
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, UNWATCH_MS);
      const waiting = this.acks.get(ns) ?? [];
      waiting.push(() => {
        clearTimeout(timer);
        resolve();
      });
      this.acks.set(ns, waiting);
      this.proc?.send(`-${ns}`);
    });
  }

  /**
   * The namespace's event count while the helper holds it open; undefined when it does not (then nothing
   * said that something there changed is to be believed).
   */
  epoch(ns: string | undefined): number | undefined {
    const key = ns ?? '';
    return this.live && this.open.has(key) ? this.epochs.get(key) ?? 0 : undefined;
  }

  stop(): void {
    this.live = false;
    this.proc?.stop();
  }

  private line(l: string): void {
    const fields = l.split(' ');
    const [kind, name, ino, gen] = fields;
    if (name === undefined || (name !== '.' && !/^[A-Za-z0-9_][A-Za-z0-9_.-]*$/.test(name) && !CONTAINER_PATH.test(name))) return;
    const key = name === '.' ? '' : name;
    const ns = name === '.' ? undefined : name;
    if (kind === 'traffic' || kind === 'trafficbegin' || kind === 'trafficdone') {
      if (ns === undefined || !this.watched.has(key)) return;
      if (kind !== 'traffic') {
        if (kind === 'trafficbegin') this.events.trafficBegin?.(ns);
        else this.events.trafficDone?.(ns);
        return;
      }
      const [veth, index, ...numbers] = fields.slice(2);
      if (veth === undefined || !/^we[0-9a-f]{1,13}$/.test(veth) || !/^[1-9]\d{0,9}$/.test(index ?? '') || numbers.length !== 4 || !numbers.every((x) => /^\d{1,20}$/.test(x))) return;
      const [rxBytes, rxPackets, txBytes, txPackets] = numbers.map(Number) as [number, number, number, number];
      this.events.traffic?.(ns, veth, { ifindex: Number(index), rxBytes, rxPackets, txBytes, txPackets });
      return;
    }
    if (kind === 'flow' || kind === 'flowlost' || kind === 'flowheld') {
      if (ns === undefined || !this.watched.has(key)) return;
      if (kind !== 'flow') {
        const n = Number(ino);
        if (!/^\d{1,15}$/.test(ino ?? '') || n === 0) return;
        if (kind === 'flowlost') this.events.flowLost?.(ns, n);
        else this.events.flowHeld?.(ns, n);
        return;
      }
      const record = parseFlow(fields.slice(2), Date.now());
      if (record) this.events.flow?.(ns, record);
      return;
    }
    if (kind === 'unwatched') {
      for (const done of this.acks.get(key) ?? []) done();
      this.acks.delete(key);
      return;
    }
    if (!this.watched.has(key)) return;
    if (kind === 'gen' && /^\d+$/.test(ino ?? '') && /^\d+$/.test(gen ?? '')) {
      this.open.add(key);
      this.generations.set(key, `${ino}:${gen}`);
      this.events.generation(ns, `${ino}:${gen}`);
    } else if (kind === 'link' || kind === 'gone') {
      this.epochs.set(key, (this.epochs.get(key) ?? 0) + 1);
      if (kind === 'gone') {
        this.open.delete(key);
        this.generations.delete(key);
        this.events.gone(ns);
      } else {
        this.open.add(key);
        this.events.links(ns);
      }
      this.opened(key);
    }
  }

  private end(code: number): void {
    const was = this.live;
    this.live = false;
    this.open.clear();
    this.generations.clear();
    for (const waiting of this.acks.values()) for (const done of waiting) done();
    this.acks.clear();
    for (const key of [...this.openWaiters.keys()]) this.opened(key);
    if (was) this.events.ended(code);
  }
}
