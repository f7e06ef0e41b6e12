import { fillEtcd, freeEtcd } from '../testkit/etcd-space.js';
import type { LabState } from '../lab/index.js';
import type { LabApi } from './api.js';
import { callCni, runner } from './cni.js';
import { BACK_MS, etcdUrl, within } from './faults.js';
import type { Prng } from './prng.js';
import type { Recorder } from './recorder.js';
import { NETWORK, type Workload } from './workload.js';

/** The lab's etcd quota: small, so a fill takes seconds; far above what a run's own writes reach between fills. */
export const CHAOS_ETCD_QUOTA = 32 * 1024 * 1024;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * The full disk, on the etcd store: etcd filled to its space quota (its NOSPACE alarm: every write
 * refused), held past the host grace, then freed the way an operator does (delete, compact, defragment,
 * disarm). While full: an API write is refused as WEFT_STORE_FULL (503), reads answer, a CNI ADD answers
 * code 11 (try again). After: a CNI ADD succeeds within BACK_MS of the space coming back; the periodic
 * allocation check meanwhile holds every acknowledged allocation (none released for the silence the
 * full store forced on the heartbeats).
 */
export async function diskFull(s: LabState, api: LabApi, rec: Recorder, prng: Prng, work: Workload, holdMs: number, hosts: number[]): Promise<void> {
  const urls = [0, 1, 2].map((i) => etcdUrl(s.dir, i));
  rec.fault('store full (etcd NOSPACE) past the host grace', `held ${(holdMs / 1000).toFixed(1)} s`);
  const filled = await fillEtcd(urls[0] as string);
  const t0 = Date.now();
  rec.event(`etcd full after ${filled.keys} filler keys (${(filled.bytes / 2 ** 20).toFixed(0)} MiB)`);
  try {
    const name = `full${t0 % 100_000}`;
    const w = await api.call('POST', '/api/v1/tenants/default/groups', { name, network: NETWORK });
    rec.check('full store: a write is refused as WEFT_STORE_FULL (503)', w.status === 503 && w.json?.code === 'WEFT_STORE_FULL', () => `POST group: ${w.status} ${w.text.slice(0, 200)}`);
    const r = await api.call('GET', '/api/v1/endpoints');
    rec.check('full store: reads answer', r.status === 200, () => `GET endpoints: ${r.status} ${r.text.slice(0, 200)}`);
    await refusedAdd(s, rec, prng.pick(hosts), name);
    await sleep(Math.max(0, holdMs - (Date.now() - t0)));
  } finally {
    await freeEtcd(urls);
  }
  const t1 = Date.now();
  rec.event(`etcd freed after ${((t1 - t0) / 1000).toFixed(1)} s full`);
  const host = prng.pick(hosts);
  const back = await within(BACK_MS, async () => (await work.add(host, prng.pick(['a', 'b', 'c'] as const))) !== undefined, 500);
  rec.check('store writable again (ADD served) <= 10 s after space is freed', back >= 0, () => `no ADD on host${host + 1} succeeded within ${BACK_MS / 1000} s of freeing etcd`);
  rec.event(`after the full store: ADD on host${host + 1} served ${Date.now() - t1} ms after etcd was freed`);
}

/** A CNI ADD while the store is full: code 11 (the runtime retries), and nothing left of it. */
async function refusedAdd(s: LabState, rec: Recorder, host: number, name: string): Promise<void> {
  const ns = `${s.prefix}-c-${name}`;
  await runner.run(['ip', 'netns', 'add', ns]);
  try {
    const conflist = 'weft-default-a';
    const r = await callCni(s, host, 'ADD', { conflist, id: name, netns: `/run/netns/${ns}` });
    rec.check('full store: CNI ADD answers code 11 (try again)', r.code !== 0 && r.json?.code === 11, () => `ADD on host${host + 1}: exit ${r.code}, ${r.stdout.slice(0, 200)}`);
    await callCni(s, host, 'DEL', { conflist, id: name, netns: `/run/netns/${ns}` });
  } finally {
    await runner.run(['ip', 'netns', 'del', ns], { allowFailure: true });
  }
}
