import type { Client } from '../client/index.js';
import type { Fleet } from './scale-fleet.js';
import { TENANT, endpointBody } from './scale-setup.js';
import { wallMs } from './scale-protocol.js';

/** The changes issue 13 names: a rule added, changed and deleted, a group changed, an endpoint added on one host. */
export const KINDS = ['rule-add', 'rule-change', 'group-change', 'endpoint-add', 'rule-delete'] as const;
export type Kind = (typeof KINDS)[number];

const rules = `/api/v1/tenants/${TENANT}/policies/pol/rules`;
const rule = (i: number, port: number) => ({ id: `bench-${i}`, direction: 'in', action: 'allow', protocol: 'tcp', ports: String(port), fromCidr: `192.168.${i % 256}.0/24`, priority: 10 });

/** Who writes: the admin for policy and groups, a host (its own certificate) for its endpoint. */
export interface Writers { admin: Client; host(i: number): { name: string; client: Client } }

/** Makes change `kind` of round `i`; answers the revision it committed at. */
async function change(w: Writers, kind: Kind, i: number): Promise<number> {
  switch (kind) {
    case 'rule-add': return (await w.admin.request<{ revision: number }>('POST', rules, rule(i, 8000 + i))).revision;
    case 'rule-change': return (await w.admin.request<{ revision: number }>('PUT', `${rules}/bench-${i}`, rule(i, 9000 + i))).revision;
    case 'group-change': return (await w.admin.request<{ revision: number }>('PATCH', `/api/v1/tenants/${TENANT}/groups/g1`, { labels: { round: String(i) } })).revision;
    case 'endpoint-add': {
      const h = w.host(i);
      return (await h.client.request<{ revision: number }>('POST', '/api/v1/endpoints', endpointBody(h.name, 1000 + i, 'g2'))).revision;
    }
    case 'rule-delete': {
      // DELETE answers 204 without a revision; nothing else writes the policy, so its revision is the delete's.
      await w.admin.request('DELETE', `${rules}/bench-${i}`);
      return (await w.admin.request<{ revision: number }>('GET', `/api/v1/tenants/${TENANT}/policies/pol`)).revision;
    }
  }
}

/** A change and how long until every agent had it; `error`: the write itself failed (nothing to wait for). */
export interface Seen { kind: Kind; ms: number; missing: number; revision: number; error?: string }

/**
 * `rounds` rounds of every kind, one change at a time: each is timed from just before its request until
 * the last simulated agent has applied its revision (`timeoutMs` at most); a pause of 50-150 ms between.
 * `round0` keeps rule ids and endpoint names fresh across calls.
 */
export async function timedChanges(w: Writers, fleet: Fleet, rounds: number, round0: number, timeoutMs: number): Promise<Seen[]> {
  const out: Seen[] = [];
  for (let r = round0; r < round0 + rounds; r++) {
    for (const kind of KINDS) {
      const t0 = wallMs();
      const revision = await change(w, kind, r).catch((e: Error) => e);
      if (revision instanceof Error) {
        out.push({ kind, ms: NaN, missing: 0, revision: NaN, error: `${((wallMs() - t0) / 1000).toFixed(1)} s: ${revision.message}` });
        continue;
      }
      const s = await fleet.seen('weft', revision, timeoutMs);
      out.push({ kind, ms: s.last - t0, missing: s.missing, revision });
      await new Promise((res) => setTimeout(res, 50 + Math.random() * 100));
    }
  }
  return out;
}

/** The same changes with nobody watching: the server's cost of the writes alone, against which fan-out is read. */
export async function untimedChanges(w: Writers, rounds: number, round0: number): Promise<number> {
  let n = 0;
  for (let r = round0; r < round0 + rounds; r++) {
    for (const kind of KINDS) {
      await change(w, kind, r);
      n++;
    }
  }
  return n;
}
