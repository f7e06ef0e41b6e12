import { existsSync, readFileSync } from 'node:fs';
import { get } from 'node:http';

/** Whether the etcd member at `url` (plain http on loopback) answers /health with 200: it is in a cluster with a leader. */
export function healthy(url: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = get(`${url}/health`, { timeout: 2000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
  });
}

const tail = (file: string) => (existsSync(file) ? readFileSync(file, 'utf8').trim().split('\n').slice(-3).join(' / ') : 'no log');

/**
 * Waits until every member answers /health. Returns undefined then, or why not: a member that exited
 * (most often a port picked free and taken by another program before etcd bound it: the member exits, and
 * the two left still make a cluster, so without this the lab came up on two of three), or none healthy in
 * `withinMs`. Each member's log's last lines are in the reason.
 */
export async function membersUp(members: Array<{ url: string; pid: number; log: string }>, alive: (pid: number) => boolean, withinMs = 30_000): Promise<string | undefined> {
  const until = Date.now() + withinMs;
  for (;;) {
    const dead = members.findIndex((m) => !alive(m.pid));
    if (dead >= 0) return `etcd member ${dead + 1} (pid ${members[dead]?.pid}) exited: ${tail(members[dead]?.log as string)}`;
    const ok = await Promise.all(members.map((m) => healthy(m.url)));
    if (ok.every(Boolean)) return undefined;
    if (Date.now() > until) {
      return `not every member healthy in ${withinMs / 1000} s: ${members.map((m, i) => `member ${i + 1} ${ok[i] ? 'healthy' : `not (${tail(m.log)})`}`).join('; ')}`;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}
