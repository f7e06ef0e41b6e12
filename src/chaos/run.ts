import { cpSync, lstatSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { labDown, labUp, type LabState } from '../lab/index.js';
import { LabApi } from './api.js';
import { Faults, within } from './faults.js';
import { checkAllocations, checkDockerKernel, checkKernel, checkLeaks, listEndpoints, rootSnapshot } from './invariants.js';
import { DockerWork } from './dockerd.js';
import { CHAOS_ETCD_QUOTA, diskFull } from './disk.js';
import { sendMalformed } from './malformed.js';
import { sendDockerMalformed } from './docker.js';
import { Prng } from './prng.js';
import { Recorder } from './recorder.js';
import { Stream, type StreamStatus } from './stream.js';
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
  /** Kinds run first, in this order, before the seeded rounds: a short run on a slow machine still meets them. */
  first?: readonly Kind[];
  /** Set by Ctrl-C: the run stops its workload and tears down. */
  abort?: AbortSignal;
  out?: (line: string) => void;
}

export const FAULT_KINDS = ['agent', 'server', 'etcd', 'partition', 'malformed', 'docker', 'dockerd', 'disk'] as const;
export type Kind = (typeof FAULT_KINDS)[number];
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** The lab, the workload and the faults; returns the record (violations in it) after tearing everything down. */
export async function runChaos(o: ChaosOptions): Promise<{ rec: Recorder; summary: string }> {
  const rec = new Recorder(o.seed, o.out);
  rec.event(`chaos: seed ${o.seed}, ${o.minutes} min, ${o.hosts} hosts, host grace ${o.hostGraceMs} ms (replay: --seed ${o.seed})`);
  const dir = mkdtempSync(join(tmpdir(), 'weft-chaos-'));
  const before = await rootSnapshot(o.prefix);
  const started: number[] = [];
  let docker: DockerWork | undefined;
  try {
    const s = await labUp({ hosts: o.hosts, dir, prefix: o.prefix, store: 'etcd', dockerPlugin: true, serverArgs: ['--host-grace', String(o.hostGraceMs)], etcdArgs: ['--quota-backend-bytes', String(CHAOS_ETCD_QUOTA)], log: (l) => rec.event(`lab: ${l}`) });
    // dockerd on host2: never a host whose uplink is cut (hosts past the second), so its containers stay held.
    docker = new DockerWork(s, 1, rec, new Prng(o.seed ^ 0x2545f491));
    await drive(s, o, rec, started, docker);
  } catch (e) {
    rec.violation('the run itself', (e as Error).stack ?? String(e));
  } finally {
    await docker?.stop().catch((e: Error) => rec.violation('stopping dockerd', e.message));
    // Before `lab down`, which removes the directory.
    if (rec.violations.length) keepLogs(dir, rec);
    const down = await labDown({ dir }).catch((e: Error) => ({ error: e.message }));
    rec.event(`lab down: ${JSON.stringify(down)}`);
    await checkLeaks(rec, o.prefix, dir, before, started);
    rmSync(dir, { recursive: true, force: true });
  }
  const summary = rec.summary({ minutes: o.minutes, hosts: o.hosts, machine: `${cpus().length} × ${cpus()[0]?.model.trim()}, Node ${process.version}` });
  return { rec, summary };
}

/** On a violation the daemons' logs (servers, agents, etcd, dockerd) outlive the lab, for the replay. */
function keepLogs(dir: string, rec: Recorder): void {
  const kept = mkdtempSync(join(tmpdir(), `weft-chaos-logs-${rec.seed}-`));
  const wanted = (src: string) => {
    if (/\/dockerd\/(data|exec)/.test(src)) return false;
    try {
      const st = lstatSync(src);
      return st.isDirectory() || (st.isFile() && src.endsWith('.log'));
    } catch {
      return false;
    }
  };
  try {
    cpSync(dir, kept, { recursive: true, filter: wanted });
  } catch (e) {
    rec.event(`keeping the logs failed: ${(e as Error).message}`);
  }
  rec.event(`logs kept in ${kept}`);
}

async function drive(s: LabState, o: ChaosOptions, rec: Recorder, started: number[], docker: DockerWork): Promise<void> {
  const api = new LabApi(s.serverUrl.split(','), s.token, readFileSync(s.caFile, 'utf8'));
  const work = new Workload(s, api, rec, new Prng(o.seed ^ 0x5bd1e995));
  const prng = new Prng(o.seed);
  const faults = new Faults(s.dir, api, rec, prng, work);
  await work.setup();
  await docker.start();
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
  const d0 = await docker.add(true, 'd0');
  if (!d0 || (await within(10_000, () => docker.answers(d0), 300)) < 0) throw new Error('the fixed Docker container d0 did not start or does not answer from inside');
  const probes = new Probes(work, rec, { sa, sb, pa, pc, d0 });
  await probes.provenListening();
  const streams = [new Stream(s.dir, sa, sb, ALLOWED_PORT), new Stream(s.dir, sa, d0, ALLOWED_PORT)];
  for (const st of streams) await st.start();
  rec.event('workload running: streams sa -> sb and sa -> docker d0, probes, CNI and Docker churn, policy flips');

  const end = Date.now() + o.minutes * 60_000;
  const running = () => Date.now() < end && !o.abort?.aborted;
  const atRisk = faults.partitioned;
  const loops = [
    (async () => { while (running()) { await work.churn((h) => !faults.partitioned.has(h)).catch((e: Error) => rec.event(`churn: ${e.message}`)); await sleep(300); } })(),
    (async () => { while (running()) { await docker.churn().catch((e: Error) => rec.event(`docker churn: ${e.message}`)); await sleep(1500); } })(),
    (async () => { while (running()) { await probes.round(); await sleep(700); } })(),
    (async () => { while (running()) { await sleep(10_000); if (running()) await probes.flip(); } })(),
    (async () => {
      while (running()) {
        await sleep(3000);
        await checkAllocations(api, rec, work, atRisk, docker);
        for (const st of streams) streamCheck(rec, st, st.status(), false);
        const live = [...work.live.values()].filter((c) => !atRisk.has(c.host));
        await checkKernel(rec, live.slice(0, 4), work);
        await checkDockerKernel(rec, docker);
      }
    })(),
    faultLoop(s, o, rec, prng, api, work, faults, docker, end, running),
  ];
  await Promise.all(loops);
  rec.event('workload stopping: final checks');
  await finish(api, rec, work, docker, streams, probes, atRisk);
}

/** A stream is never cut; at the end also: it echoed, and never went silent for more than 5 s. */
function streamCheck(rec: Recorder, stream: Stream, st: StreamStatus, end: boolean): void {
  rec.check('stream never cut', st.cut === undefined && (!end || st.received > 0), () => `${stream.name}: ${st.cut ?? 'no echo'} after ${st.received} echoes`);
  if (!end) return;
  rec.event(`stream ${stream.name}: ${st.received} echoes, longest silence ${st.maxGap} ms`);
  rec.check('stream never stalled > 5 s', st.maxGap <= 5000, () => `${stream.name}: longest silence ${st.maxGap} ms`);
}

async function faultLoop(s: LabState, o: ChaosOptions, rec: Recorder, prng: Prng, api: LabApi, work: Workload, faults: Faults, docker: DockerWork, end: number, running: () => boolean): Promise<void> {
  // Rounds of every kind in a seeded order, so even a short run meets each kind.
  const hosts = s.hosts.map((_, i) => i);
  const cuttable = hosts.filter((i) => i >= 2);
  let round: Kind[] = [...(o.first ?? [])];
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
      else if (kind === 'docker') await docker.exclusive(() => sendDockerMalformed(s, api, rec, prng, reachable, () => docker.running()));
      else if (kind === 'dockerd') await docker.crash();
      else if (kind === 'disk') {
        const holdMs = o.hostGraceMs + prng.int(3000, 8000);
        if (end - Date.now() > holdMs + 20_000) await diskFull(s, api, rec, prng, work, holdMs, reachable);
      } else if (cuttable.length && end - Date.now() > cutMs + 20_000) {
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

/** The end: the streams were never cut, the probes still hold, every container removed, then no endpoint left. */
async function finish(api: LabApi, rec: Recorder, work: Workload, docker: DockerWork, streams: Stream[], probes: Probes, atRisk: ReadonlySet<number>): Promise<void> {
  for (const st of streams) streamCheck(rec, st, await st.stop(), true);
  await checkAllocations(api, rec, work, atRisk, docker);
  await checkKernel(rec, [...work.live.values()], work);
  await checkDockerKernel(rec, docker);
  await probes.round();
  const notRemoved = await docker.removeAll();
  rec.check('every Docker container removed (docker rm -f succeeded)', notRemoved.length === 0, () => `not removed: ${notRemoved.join(', ')}`);
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
