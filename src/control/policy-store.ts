import { WeftError, type Policy, type Rule, type RuleSegment } from '../model/index.js';
import type { Entry, Store, Txn } from '../store/index.js';
import { keys, type Stored } from './keys.js';
import { keyOf, packRules, publicRule, rulesInOrder, type StoredRule } from './segments.js';
import { retryTorn } from './shared.js';

/** What `policies/T/P` holds: the policy without its rules, and where they are (docs/decisions.md). */
export interface PolicyHead {
  tenant: string;
  name: string;
  createdAt: string;
  updatedAt: string;
  owner?: string;
  /** Audit mode (absent: enforce). */
  mode?: 'audit';
  /** The generation of segments that holds the rules (`rules/T/P/GEN/`); a bulk write starts the next. */
  gen: number;
  /** How many rules there are: a read that tore between the head and its segments does not add up. */
  count: number;
  /** The place (`pos`) the next added rule takes: after every rule the policy has had. */
  next: number;
}

/** A head in the layout before segments: the whole policy, its rules inside. Migrated at start. */
type LegacyPolicy = Omit<PolicyHead, 'gen' | 'count' | 'next'> & { rules: Rule[] };
export const isLegacy = (v: unknown): v is LegacyPolicy => Array.isArray((v as { rules?: unknown } | undefined)?.rules);

const torn = (what: string) => new WeftError('WEFT_STORE_CONFLICT', `${what} changed while it was read; retry`);

/**
 * Writes `rules` as a new generation of segments, deleting the generation they replace (one prefix
 * delete, whatever its size), and the head last: watchers apply a policy's segments when its head comes.
 */
export function writePolicy(tx: Txn, fields: Omit<PolicyHead, 'gen' | 'count' | 'next'>, rules: readonly StoredRule[], previousGen?: number): PolicyHead {
  const { tenant, name } = fields;
  if (previousGen !== undefined) tx.deletePrefix(keys.ruleGen(tenant, name, previousGen));
  const gen = (previousGen ?? 0) + 1;
  for (const seg of packRules(rules)) tx.put(keys.ruleGen(tenant, name, gen) + keyOf(seg), { rules: seg } satisfies RuleSegment);
  const head: PolicyHead = { ...fields, gen, count: rules.length, next: rules.reduce((n, r) => Math.max(n, r.pos + 1), 0) };
  tx.put(keys.scoped('policies', tenant, name), head);
  return head;
}

/** Rewrites a head of the old layout as head plus segments, in `tx`; keeps owners, times and order. */
export function migrateLegacy(tx: Txn, legacy: LegacyPolicy): PolicyHead {
  const { rules, ...fields } = legacy;
  return writePolicy(tx, fields, rules.map((r, pos) => ({ ...r, pos })));
}

/** The policy as the API shows it, from its head and its rules in order. */
function assemble(head: Entry, rules: readonly StoredRule[]): Policy {
  const { tenant, name, createdAt, updatedAt, owner, mode } = head.value as PolicyHead;
  return { tenant, name, rules: rules.map(publicRule), createdAt, updatedAt, ...(owner !== undefined ? { owner } : {}), ...(mode === 'audit' ? { mode } : {}), revision: head.modRevision };
}

/** The whole policy whose head is `head`, its segments read in `tx`. */
export function readPolicy(tx: Txn, head: Entry): Promise<Policy> {
  return policyOf(head, (prefix) => tx.list(prefix));
}

/** The policy whose head is `head`, its segments read with `list`. */
async function policyOf(head: Entry, list: (prefix: string) => Promise<readonly Entry[]>): Promise<Policy> {
  const v = head.value;
  if (isLegacy(v)) return assemble(head, v.rules.map((r, pos) => ({ ...r, pos })));
  const h = v as PolicyHead;
  const rules = rulesInOrder((await list(keys.ruleGen(h.tenant, h.name, h.gen))).map((e) => e.value as RuleSegment));
  if (rules.length !== h.count) throw torn(`policy ${h.tenant}/${h.name}`);
  return assemble(head, rules);
}

/**
 * Every policy of a tenant: its heads, then its segments (one listing each). The revision is the heads'
 * listing's, never later than what was read, so a watch from it replays anything newer.
 */
export async function listPolicies(store: Store, tenant: string): Promise<{ items: Policy[]; revision: number }> {
  return retryTorn(async () => {
    const heads = await store.list(keys.scopedPrefix('policies', tenant));
    const bySegment = new Map<string, RuleSegment[]>();
    for (const e of (await store.list(keys.tenantRules(tenant))).entries) {
      const [, , policy, gen] = e.key.split('/');
      const at = `${policy}/${gen}`;
      const list = bySegment.get(at) ?? [];
      list.push(e.value as RuleSegment);
      bySegment.set(at, list);
    }
    const items = heads.entries.map((e) => {
      if (isLegacy(e.value)) return assemble(e, e.value.rules.map((r, pos) => ({ ...r, pos })));
      const h = e.value as PolicyHead;
      const rules = rulesInOrder(bySegment.get(`${h.name}/${h.gen}`) ?? []);
      if (rules.length !== h.count) throw torn(`policy ${tenant}/${h.name}`);
      return assemble(e, rules);
    });
    return { items, revision: heads.revision };
  });
}

/** Every rule of a tenant with its policy's name, for "who names this group" (one listing). */
export async function rulesOfTenant(tx: Txn, tenant: string): Promise<Array<{ policy: string; rule: Rule }>> {
  const out: Array<{ policy: string; rule: Rule }> = [];
  for (const e of await tx.list(keys.tenantRules(tenant))) {
    const policy = e.key.split('/')[2] ?? '';
    for (const r of (e.value as RuleSegment).rules) out.push({ policy, rule: publicRule(r) });
  }
  for (const e of await tx.list(keys.scopedPrefix('policies', tenant))) {
    if (isLegacy(e.value)) for (const rule of e.value.rules) out.push({ policy: e.value.name, rule });
  }
  return out;
}

/**
 * Migrates every policy still in the old layout, one transaction each (see migrateLegacy). Idempotent:
 * a head already migrated is skipped, also when another server migrated it meanwhile. Returns how many.
 */
export async function migratePolicies(store: Store): Promise<number> {
  let n = 0;
  for (const e of (await store.list('policies/')).entries) {
    if (!isLegacy(e.value)) continue;
    const { value: migrated } = await store.transact('system', async (tx) => {
      const cur = await tx.get(e.key);
      if (!cur || !isLegacy(cur.value)) return false;
      migrateLegacy(tx, cur.value);
      return true;
    });
    if (migrated) n++;
  }
  return n;
}

/** The stored head fields of a policy object (what writePolicy keeps besides the rules). */
export function headFields(p: Stored<Policy>): Omit<PolicyHead, 'gen' | 'count' | 'next'> {
  const { tenant, name, createdAt, updatedAt, owner, mode } = p;
  return { tenant, name, createdAt, updatedAt, ...(owner !== undefined ? { owner } : {}), ...(mode === 'audit' ? { mode } : {}) };
}

/**
 * A tenant's policies as listPolicies gives them, read a policy at a time with `pause()` between (the
 * server's flow evaluator: one listing of 50,000 rules held its event loop 50-140 ms, and every API call
 * behind it), and a policy whose head has the revision it has in `had` taken from there unread. Every
 * rule change rewrites its policy's head, so a policy whose head is unchanged from the listing before its
 * read to a listing after it was read whole; those that moved (or came) are read again (after three
 * rounds, one listing). Each policy is consistent, and they are all of one moment: the last listing's.
 */
export async function policiesYielding(store: Store, tenant: string, had: ReadonlyMap<string, Policy>, pause: () => Promise<void>): Promise<Policy[]> {
  const known = new Map(had);
  let heads = (await store.list(keys.scopedPrefix('policies', tenant))).entries;
  for (let round = 0; round < 3; round++) {
    for (const e of heads) {
      const name = (e.value as PolicyHead).name;
      if (known.get(name)?.revision === e.modRevision) continue;
      try {
        known.set(name, await policyOf(e, async (prefix) => (await store.list(prefix)).entries));
      } catch (err) {
        // Torn (the policy changed between its head and its segments): read again next round.
        if (!(err instanceof WeftError && err.code === 'WEFT_STORE_CONFLICT')) throw err;
        known.delete(name);
      }
      await pause();
    }
    // A head's revision is unique to its write: one that stands in this listing as it was read (or as
    // `had` holds it) did not move since, so what was read of it is what it holds now.
    const after = (await store.list(keys.scopedPrefix('policies', tenant))).entries;
    const all = after.map((e) => known.get((e.value as PolicyHead).name)).filter((p, i) => p?.revision === after[i]?.modRevision);
    if (all.length === after.length) return all as Policy[];
    heads = after;
  }
  return (await listPolicies(store, tenant)).items;
}
