import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { labDown, labUp, type LabState } from '../lab/index.js';
import { LabApi } from './api.js';
import { Faults, within } from './faults.js';
import { checkAllocations, checkKernel, checkLeaks, listEndpoints, rootSnapshot } from './invariants.js';
import { sendMalformed } from './malformed.js';
import { sendDockerMalformed } from './docker.js';
import { Prng } from './prng.js';
import { Recorder } from './recorder.js';
import { Stream } from './stream.js';
import { Probes } from './probes.js';
import { partitionAftermath } from './partition.js';
import { ALLOWED_PORT, DENIED_PORT, FLIP_PORT, Workload, type Container } from './workload.js';

export interface ChaosOptions {
  minutes: number;
  seed: number;
  hosts: number;
  /** The servers' --host-grace: a partition lasts longer than this. */
  hostGraceMs: number;
  prefix: string;
  /** The fault kinds drawn from (default all). */
  kinds?: readonly Kind[];
  /** Set by Ctrl-C: the run stops its workload and tears down. */
  abort?: AbortSignal;
  out?: (line: string) => void;
}

export const FAULT_KINDS = ['agent', 'server', 'etcd', 'partition', 'malformed', 'docker'] as const;
export type Kind = (typeof FAULT_KINDS)[number];
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** The lab, the workload and the faults; returns the record (violations in it) after tearing everything down. */
export async function runChaos(o: ChaosOptions): Promise<{ rec: Recorder; summary: string }> {
  const rec = new Recorder(o.seed, o.out);
  rec.event(`chaos: seed ${o.seed}, ${o.minutes} min, ${o.hosts} hosts, host grace ${o.hostGraceMs} ms (replay: --seed ${o.seed})`);
  const dir = mkdtempSync(join(tmpdir(), 'weft-chaos-'));
  const before = await rootSnapshot(o.prefix);
  const started: number[] = [];
  try {
    const s = await labUp({ hosts: o.hosts, dir, prefix: o.prefix, store: 'etcd', dockerPlugin: true, serverArgs: ['--host-grace', String(o.hostGraceMs)], log: (l) => rec.event(`lab: ${l}`) });
    await drive(s, o, rec, started);
  } catch (e) {
    rec.violation('the run itself', (e as Error).stack ?? String(e));
  } finally {
    const down = await labDown({ dir }).catch((e: Error) => ({ error: e.message }));
    rec.event(`lab down: ${JSON.stringify(down)}`);
    await checkLeaks(rec, o.prefix, dir, before, started);
    rmSync(dir, { recursive: true, force: true });
  }
  const summary = rec.summary({ minutes: o.minutes, hosts: o.hosts, machine: `${cpus().length} × ${cpus()[0]?.model.trim()}, Node ${process.version}` });
  return { rec, summary };
}

async function drive(s: LabState, o: ChaosOptions, rec: Recorder, started: number[]): Promise<void> {
  const api = new LabApi(s.serverUrl.split(','), s.token, readFileSync(s.caFile, 'utf8'));
  const work = new Workload(s, api, rec, new Prng(o.seed ^ 0x5bd1e995));
  const prng = new Prng(o.seed);
  const faults = new Faults(s.dir, api, rec, prng, work);
  await work.setup();
  // Fixed containers: the stream a(host1) -> b(host2), and probes from a and c on host1. Hosts past the
  // second carry only churn: they are the ones whose uplink is cut (see docs/decisions.md).
  const fixed = async (host: number, group: 'a' | 'b' | 'c', name: string): Promise<Container> => {
    const c = await work.add(host, group, true, name);
    if (!c) throw new Error(`could not start the fixed container ${name}`);
    return c;
  };
  const sa = await fixed(0, 'a', 'sa');
  const sb = await fixed(1, 'b', 'sb');
  const pa = await fixed(0, 'a', 'pa');
  const pc = await fixed(0, 'c', 'pc');
  for (const port of [ALLOWED_PORT, DENIED_PORT, FLIP_PORT]) work.listen(sb, port);
  work.listen(pa, ALLOWED_PORT);
  started.push(...work.listeners);
  const probes = new Probes(work, rec, { sa, sb, pa, pc });
  await probes.provenListening();
  const stream = new Stream(s.dir, sa, sb, ALLOWED_PORT);
  await stream.start();
  rec.event('workload running: stream sa -> sb, probes, churn, policy flips');

  const end = Date.now() + o.minutes * 60_000;
  const running = () => Date.now() < end && !o.abort?.aborted;
  const atRisk = faults.partitioned;
  const loops = [
    (async () => { while (running()) { await work.churn((h) => !faults.partitioned.has(h)).catch((e: Error) => rec.event(`churn: ${e.message}`)); await sleep(300); } })(),
    (async () => { while (running()) { await probes.round(); await sleep(700); } })(),
    (async () => { while (running()) { await sleep(10_000); if (running()) await probes.flip(); } })(),
    (async () => {
      while (running()) {
        await sleep(3000);
        await checkAllocations(api, rec, work, atRisk);
        const st = stream.status();
        rec.check('stream never cut', st.cut === undefined, () => `sa -> sb: ${st.cut} after ${st.received} echoes`);
        const live = [...work.live.values()].filter((c) => !atRisk.has(c.host));
        await checkKernel(rec, live.slice(0, 4), work);
      }
    })(),
    faultLoop(s, o, rec, prng, api, work, faults, end, running),
  ];
  await Promise.all(loops);
  rec.event('workload stopping: final checks');
  await finish(api, rec, work, stream, probes, atRisk);
}

async function faultLoop(s: LabState, o: ChaosOptions, rec: Recorder, prng: Prng, api: LabApi, work: Workload, faults: Faults, end: number, running: () => boolean): Promise<void> {
  // Rounds of every kind in a seeded order, so even a short run meets each kind.
  const hosts = s.hosts.map((_, i) => i);
  const cuttable = hosts.filter((i) => i >= 2);
  let round: Kind[] = [];
  while (running()) {
    await sleep(prng.int(2000, 6000));
    if (!running()) break;
    if (round.length === 0) round = [...(o.kinds ?? FAULT_KINDS)].sort(() => prng.next() - 0.5);
    const kind = round.shift() as Kind;
    const reachable = hosts.filter((h) => !faults.partitioned.has(h));
    const cutMs = o.hostGraceMs + prng.int(6000, 10_000);
    try {
      if (kind === 'agent') await faults.agent(prng.pick(reachable));
      else if (kind === 'server') await faults.server(prng.int(0, 1));
      else if (kind === 'etcd') await faults.etcd(prng.int(0, 2));
      else if (kind === 'malformed') await sendMalformed(s, api, rec, prng, reachable);
      else if (kind === 'docker') await sendDockerMalformed(s, api, rec, prng, reachable);
      else if (cuttable.length && end - Date.now() > cutMs + 20_000) {
        const host = prng.pick(cuttable);
        try {
          const healed = await faults.partition(host, cutMs);
          await partitionAftermath(api, rec, work, host, healed, faults.healedAt.get(host) ?? Date.now());
        } finally {
          faults.partitioned.delete(host);
        }
      }
    } catch (e) {
      rec.violation(`fault ${kind}`, (e as Error).stack ?? String(e));
    }
  }
}

/** The end: the stream was never cut, the probes still hold, every container removed, then no endpoint left. */
async function finish(api: LabApi, rec: Recorder, work: Workload, stream: Stream, probes: Probes, atRisk: ReadonlySet<number>): Promise<void> {
  const st = await stream.stop();
  rec.check('stream never cut', st.cut === undefined && st.received > 0, () => `sa -> sb: ${st.cut ?? 'no echo'} after ${st.received} echoes`);
  rec.event(`stream: ${st.received} echoes, longest silence ${st.maxGap} ms`);
  rec.check('stream never stalled > 5 s', st.maxGap <= 5000, () => `longest silence ${st.maxGap} ms`);
  await checkAllocations(api, rec, work, atRisk);
  await checkKernel(rec, [...work.live.values()], work);
  await probes.round();
  work.stopListeners();
  const all = () => [...work.live.values(), ...work.undeleted.values()];
  await within(30_000, async () => {
    for (const c of all()) await work.remove(c);
    return all().length === 0;
  }, 1000);
  rec.check('every container deleted (CNI DEL succeeded)', all().length === 0, () => `not deleted: ${all().map((c) => c.name).join(', ')}`);
  let left: string[] = [];
  const gone = await within(20_000, async () => {
    const eps = await listEndpoints(api, rec);
    left = eps ? eps.map((e) => `${e.containerId} ${e.ip} on ${e.host}`) : ['(no list)'];
    return eps !== undefined && eps.length === 0;
  }, 1000);
  rec.check('no endpoint without a container after GC', gone >= 0, () => `left: ${left.join(', ')}`);
}
