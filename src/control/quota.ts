import { LIMIT_DEFAULTS, WeftError, notFound } from '../model/index.js';
import type { Store, Txn } from '../store/index.js';
import { keys } from './keys.js';

/**
 * Per-user quotas. A user owns the objects it created (tenants and tenant-scoped objects, `owner` on the
 * object) and the rules it added (`owner` on each rule, whoever owns the policy). Usage is a counter per
 * user, `quota/USER`, changed in the same store transaction as the write it pays for: concurrent creates
 * (on etcd, over several servers) conflict on that key and retry, so none slips past the limit. Admins are
 * counted but never limited: they set the limits. Hosts and users without a record get the defaults.
 */
export interface QuotaLimits {
  objects: number;
  rules: number;
}
export type QuotaKind = keyof QuotaLimits;
export const DEFAULT_QUOTA: QuotaLimits = { objects: LIMIT_DEFAULTS.quotaObjects, rules: LIMIT_DEFAULTS.quotaRules };
/** The server flag that sets each default, named in every refusal. */
export const QUOTA_FLAG: Record<QuotaKind, string> = { objects: '--quota-objects', rules: '--quota-rules' };

interface QuotaRecord {
  used: QuotaLimits;
  /** Set by an admin for this user; replaces the server's default for that kind. */
  override?: Partial<QuotaLimits>;
}
export interface QuotaView {
  user: string;
  used: QuotaLimits;
  limits: QuotaLimits;
  override: Partial<QuotaLimits>;
  /** Admins are counted but not limited. */
  limited: boolean;
}

/** What pays for what: an object's owner one object, each rule's owner one rule. */
export interface Owned {
  owner?: string;
  rules?: ReadonlyArray<{ owner?: string }>;
  /** The rules a Kubernetes policy expands to, its owner's (they have no rule objects of their own). */
  weight?: number;
}
export type Deltas = Map<string, QuotaLimits>;

/** How much each user's holdings change when `before` becomes `after` (either undefined: create, delete). */
export function quotaDeltas(before: Owned | undefined, after: Owned | undefined): Deltas {
  const out: Deltas = new Map();
  const add = (user: string | undefined, kind: QuotaKind, n: number) => {
    if (user === undefined) return; // made before quotas existed: nobody pays, nobody is refunded
    const d = out.get(user) ?? { objects: 0, rules: 0 };
    d[kind] += n;
    out.set(user, d);
  };
  for (const [o, sign] of [[before, -1], [after, 1]] as const) {
    if (!o) continue;
    add(o.owner, 'objects', sign);
    if (o.weight) add(o.owner, 'rules', sign * o.weight);
    for (const r of o.rules ?? []) add(r.owner, 'rules', sign);
  }
  return out;
}

/** Stamps owners: the object keeps its owner (the creator), each rule keeps its own, new rules are `actor`'s. */
export function stampOwners<O extends object>(object: O, previous: object | undefined, actor: string): O {
  const obj = object as Owned;
  const existing = previous as Owned | undefined;
  const owners = new Map((existing?.rules ?? []).map((r) => [(r as { id?: string }).id, r.owner]));
  const owner = existing ? existing.owner : actor;
  const rules = obj.rules?.map((r) => {
    const id = (r as { id?: string }).id;
    const by = owners.has(id) ? owners.get(id) : actor;
    const { owner: _o, ...rest } = r;
    return by === undefined ? rest : { ...rest, owner: by };
  });
  const { owner: _o, ...rest } = obj;
  return { ...rest, ...(owner !== undefined ? { owner } : {}), ...(rules ? { rules } : {}) } as unknown as O;
}

export class Quota {
  constructor(readonly defaults: QuotaLimits = DEFAULT_QUOTA) {}

  /** Applies the change from `before` to `after` to every owner's usage inside `tx`; refuses growth past a limit. */
  async settle(tx: Txn, before: object | undefined, after: object | undefined): Promise<void> {
    for (const [user, d] of quotaDeltas(before as Owned | undefined, after as Owned | undefined)) await this.charge(tx, user, d);
  }

  private async charge(tx: Txn, user: string, delta: QuotaLimits): Promise<void> {
    if (delta.objects === 0 && delta.rules === 0) return;
    const rec = await readRecord(tx, user);
    const used = { objects: Math.max(0, rec.used.objects + delta.objects), rules: Math.max(0, rec.used.rules + delta.rules) };
    if (delta.objects > 0 || delta.rules > 0) {
      if (await isLimited(tx, user)) this.check(user, rec, used, delta);
    }
    tx.put(keys.quota(user), { ...rec, used } satisfies QuotaRecord);
  }

  /** Only growth is refused: a user over a lowered limit may still change and delete what it has. */
  private check(user: string, rec: QuotaRecord, used: QuotaLimits, delta: QuotaLimits): void {
    for (const kind of ['objects', 'rules'] as const) {
      const limit = rec.override?.[kind] ?? this.defaults[kind];
      if (delta[kind] <= 0 || used[kind] <= limit) continue;
      const source = rec.override?.[kind] !== undefined
        ? `the admin's override for ${user}; the server default is ${QUOTA_FLAG[kind]} ${this.defaults[kind]}`
        : `${QUOTA_FLAG[kind]} ${limit}`;
      throw new WeftError('WEFT_QUOTA_EXCEEDED',
        `${kind}: user ${user} owns ${used[kind] - delta[kind]} ${kind} and this would add ${delta[kind]}, past the limit of ${limit} (${source}); ` +
        `delete some, or ask an admin to raise it: weft user quota ${user} --${kind} N`, { field: kind });
    }
  }

  async view(store: Store, user: string): Promise<QuotaView> {
    return (await store.transact('read', async (tx) => this.viewIn(tx, user))).value;
  }

  private async viewIn(tx: Txn, user: string): Promise<QuotaView> {
    const rec = await readRecord(tx, user);
    const override = rec.override ?? {};
    return { user, used: rec.used, limits: { ...this.defaults, ...override }, override, limited: await isLimited(tx, user) };
  }

  /** An admin's per-user override; `null` for a kind returns it to the server default. */
  async setOverride(store: Store, actor: string, user: string, change: { [K in QuotaKind]?: number | null }): Promise<QuotaView> {
    const r = await store.transact(actor, async (tx) => {
      if (!(await tx.get(keys.user(user)))) throw notFound(`user ${user}`);
      const rec = await readRecord(tx, user);
      const override: Partial<QuotaLimits> = { ...rec.override };
      for (const kind of ['objects', 'rules'] as const) {
        const v = change[kind];
        if (v === null) delete override[kind];
        else if (v !== undefined) override[kind] = v;
      }
      const next: QuotaRecord = { used: rec.used, ...(Object.keys(override).length ? { override } : {}) };
      tx.put(keys.quota(user), next);
      return this.viewIn(tx, user);
    });
    return r.value;
  }
}

async function readRecord(tx: Txn, user: string): Promise<QuotaRecord> {
  const e = await tx.get(keys.quota(user));
  return (e?.value as QuotaRecord | undefined) ?? { used: { objects: 0, rules: 0 } };
}

async function isLimited(tx: Txn, user: string): Promise<boolean> {
  const u = await tx.get(keys.user(user));
  return (u?.value as { role?: string } | undefined)?.role !== 'admin';
}
