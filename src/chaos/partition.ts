import type { LabApi } from './api.js';
import { kernelAddress, listEndpoints } from './invariants.js';
import type { Recorder } from './recorder.js';
import type { Workload } from './workload.js';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * After a host's uplink was cut past the host grace and healed. The servers may have released its
 * endpoints (that is what the grace means: the host is presumed dead), so its containers' allocations
 * are not held to "never lost"; what must hold: the host's agent is back within 30 s (its heartbeat
 * period plus TCP's retransmission backoff after the cut), and an address released under a container
 * is never in use by that container and another endpoint at once. An ADD acknowledged after the heal is
 * held to "never lost" like any other.
 */
export async function partitionAftermath(api: LabApi, rec: Recorder, work: Workload, host: number, healedMs: number, healAt: number): Promise<void> {
  rec.check('cut-off host back (heartbeat) <= 30 s after the heal', healedMs >= 0, () => `host${host + 1} sent no heartbeat within 30 s of its uplink coming back`);
  // One resync for its agent to act on what it learned after the heal.
  await sleep(4000);
  // Every container on the host now was there during the cut (churn skips a cut host), an ADD that was
  // in flight when the link went down included: taken at the cut's start, it was missed (seed 3, 25.4 s).
  const held = [...work.live.values()].filter((c) => c.host === host);
  const eps = await listEndpoints(api, rec);
  if (!eps) return;
  let kept = 0;
  const released: string[] = [];
  for (const c of held) {
    if (work.live.get(c.name) !== c) continue;
    if (eps.some((e) => e.containerId === c.name && e.ip === c.ip)) { kept++; continue; }
    // An ADD acknowledged after the heal (one in flight across the cut) proves the host alive: the
    // grace is no excuse for losing it.
    rec.check('acknowledged allocation still held', c.at <= healAt, () => `${c.name} ${c.ip} on host${host + 1}: its ADD succeeded ${c.at - healAt} ms after the heal, and its endpoint is gone`);
    const inKernel = await kernelAddress(c);
    const other = eps.find((e) => e.ip === c.ip && e.containerId !== c.name);
    rec.check('released address not in use twice after the heal', !(inKernel === c.ip && other), () => `${c.name} on host${host + 1} still has ${c.ip} on eth0, which the servers gave to ${other?.containerId} on ${other?.host}`);
    released.push(`${c.name} ${c.ip}${inKernel ? ` (eth0 still ${inKernel})` : ' (eth0 gone)'}`);
    // The runtime's view: its container lost its network; it deletes it (DEL is idempotent).
    await work.remove(c);
  }
  rec.event(`host${host + 1} after the cut: ${kept} container(s) kept their endpoint, ${released.length} released by the host grace${released.length ? `: ${released.join(', ')}` : ''}`);
}
