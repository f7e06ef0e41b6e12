import { isDeepStrictEqual } from 'node:util';
import { WeftError, notFound, type Meta } from '../model/index.js';
import type { Entry, Store, Txn } from '../store/index.js';
import { KIND_OF, keys, withRevision, type Collection, type Stored } from './keys.js';
import { stampOwners, type Quota } from './quota.js';
import { retryTorn } from './shared.js';

export interface Scoped extends Meta {
  tenant: string;
  name: string;
}

export interface BuildContext<O> {
  tx: Txn;
  tenant: string;
  /** The object being replaced, or undefined on create. */
  existing: O | undefined;
}

/** What makes one tenant-scoped kind different from another; the CRUD around it is shared. */
export interface KindDef<I extends { name: string }, O extends Scoped> {
  collection: Collection;
  /** Validates `input` against the store and returns the object to store (without timestamps). */
  build(input: I, ctx: BuildContext<O>): Promise<Omit<Stored<O>, 'createdAt' | 'updatedAt'>>;
  /** Human names of objects that depend on `obj` and block its deletion. */
  dependants(tx: Txn, obj: O): Promise<string[]>;
  /** Records what a new `obj` adds beside itself (a group's pool in its network's index), after it is stored. */
  created?(tx: Txn, obj: Stored<O>): Promise<void>;
  /** Frees what `obj` holds (addresses, address books) when it is deleted. */
  release?(tx: Txn, obj: O): Promise<void>;
  /** For a kind stored as more than its one key (a policy: a head and rule segments). */
  storage?: KindStorage<O>;
}

/** How a kind stored as several keys is read and written whole; its head stays at the kind's key. */
export interface KindStorage<O extends Scoped> {
  /** The whole object whose head is `head`, the rest read in `tx`. */
  read(tx: Txn, head: Entry): Promise<O>;
  /** Every object of a tenant, with a revision no later than what was read. */
  list(store: Store, tenant: string): Promise<{ items: O[]; revision: number }>;
  /** Stores `obj` whole over whatever was there, its head last. */
  write(tx: Txn, obj: Stored<O>): Promise<void>;
  /** Deletes every key of `obj`. */
  remove(tx: Txn, obj: O): void;
}

export const label = (c: Collection, t: string, n: string) => `${KIND_OF[c]} ${t}/${n}`;

export async function requireTenant(tx: Txn, tenant: string): Promise<void> {
  // Only whether it exists: the shared entry (SQLite parses a row once for all such readers).
  if (!(await tx.getShared(keys.tenant(tenant)))) throw notFound(`tenant ${tenant}`);
}

export function checkRevision(current: number, ifMatch: number | undefined, what: string): void {
  if (ifMatch !== undefined && ifMatch !== current) {
    throw new WeftError('WEFT_STALE_REVISION', `${what} is at revision ${current}, not ${ifMatch}: re-read it and retry`);
  }
}

export class Crud<I extends { name: string }, O extends Scoped> {
  constructor(private readonly store: Store, private readonly def: KindDef<I, O>, private readonly now: () => string, private readonly quota: Quota) {}

  private get c(): Collection {
    return this.def.collection;
  }

  async list(tenant: string): Promise<{ items: O[]; revision: number }> {
    if (this.def.storage) return this.def.storage.list(this.store, tenant);
    const l = await this.store.list(keys.scopedPrefix(this.c, tenant));
    return { items: l.entries.map((e) => withRevision<O>(e)), revision: l.revision };
  }

  async get(tenant: string, name: string): Promise<O> {
    return retryTorn(async () => (await this.store.transact('read', (tx) => this.readScoped(tx, tenant, name))).value);
  }

  private async readScoped(tx: Txn, tenant: string, name: string): Promise<O> {
    const o = await this.findIn(tx, tenant, name);
    if (!o) throw notFound(label(this.c, tenant, name));
    return o;
  }

  private async persist(tx: Txn, obj: Stored<O>): Promise<void> {
    if (this.def.storage) await this.def.storage.write(tx, obj);
    else tx.put(keys.scoped(this.c, obj.tenant, obj.name), obj);
  }

  async create(actor: string, tenant: string, input: I): Promise<O> {
    return this.write(actor, (tx) => this.createIn(tx, actor, tenant, input));
  }

  /** Creates `input` in the caller's transaction (409 if it exists). */
  async createIn(tx: Txn, actor: string, tenant: string, input: I): Promise<Stored<O>> {
    await requireTenant(tx, tenant);
    const key = keys.scoped(this.c, tenant, input.name);
    if (await tx.get(key)) throw new WeftError('WEFT_EXISTS', `${label(this.c, tenant, input.name)} already exists`, { field: 'name' });
    const at = this.now();
    const obj = stampOwners({ ...(await this.def.build(input, { tx, tenant, existing: undefined })), createdAt: at, updatedAt: at }, undefined, actor);
    await this.quota.settle(tx, undefined, obj);
    await this.persist(tx, obj as Stored<O>);
    await this.def.created?.(tx, obj as Stored<O>);
    return obj as Stored<O>;
  }

  /** The object as stored now in the caller's transaction, or undefined (its tenant must exist). */
  async findIn(tx: Txn, tenant: string, name: string): Promise<O | undefined> {
    await requireTenant(tx, tenant);
    const e = await tx.get(keys.scoped(this.c, tenant, name));
    if (!e) return undefined;
    return this.def.storage ? this.def.storage.read(tx, e) : withRevision<O>(e);
  }

  /**
   * `weft apply`'s write, in the caller's transaction: creates `input`, replaces what is stored with it,
   * or leaves it as it is when replacing would store the same object (no write, no new revision).
   */
  async upsertIn(tx: Txn, actor: string, tenant: string, input: I): Promise<'created' | 'updated' | 'unchanged'> {
    const existing = await this.findIn(tx, tenant, input.name);
    if (!existing) {
      await this.createIn(tx, actor, tenant, input);
      return 'created';
    }
    const built = await this.def.build(input, { tx, tenant, existing });
    const candidate = stampOwners({ ...built, createdAt: existing.createdAt, updatedAt: existing.updatedAt }, existing, actor);
    const { revision: _r, ...stored } = existing;
    if (sameContent(candidate, stored)) return 'unchanged';
    await this.rewrite(tx, actor, existing, input);
    return 'updated';
  }

  async replace(actor: string, tenant: string, name: string, input: I, ifMatch?: number): Promise<O> {
    if (input.name !== name) {
      throw new WeftError('WEFT_INVALID_FIELD', `name: the body names '${input.name}' but the path names '${name}'`, { field: 'name' });
    }
    return this.write(actor, async (tx) => {
      const existing = await this.readScoped(tx, tenant, name);
      checkRevision(existing.revision, ifMatch, label(this.c, tenant, name));
      return this.rewrite(tx, actor, existing, input);
    });
  }

  /** Stores `input` over `existing`: owners carried over, usage settled, in the caller's transaction. */
  private async rewrite(tx: Txn, actor: string, existing: O, input: I): Promise<Stored<O>> {
    const { tenant, name } = existing;
    const built = { ...(await this.def.build(input, { tx, tenant, existing })), createdAt: existing.createdAt, updatedAt: this.now() };
    const obj = stampOwners(built, existing, actor);
    await this.quota.settle(tx, existing, obj);
    await this.persist(tx, obj as Stored<O>);
    return obj as Stored<O>;
  }

  /** Merges `partial` over the stored fields and replaces; fields set to null are not supported (use PUT). */
  async patch(actor: string, tenant: string, name: string, partial: Partial<I>, ifMatch?: number): Promise<O> {
    const current = await this.get(tenant, name);
    const { tenant: _t, revision: _r, createdAt: _c, updatedAt: _u, ...fields } = current;
    const merged = { ...fields, ...partial, name } as unknown as I;
    return this.replace(actor, tenant, name, merged, ifMatch ?? current.revision);
  }

  /** `allowed`: throws unless the caller may delete the object as this transaction read it. */
  async remove(actor: string, tenant: string, name: string, ifMatch?: number, allowed?: (existing: O) => void): Promise<void> {
    await this.store.transact(actor, async (tx) => {
      const existing = await this.readScoped(tx, tenant, name);
      allowed?.(existing);
      checkRevision(existing.revision, ifMatch, label(this.c, tenant, name));
      await this.removeExisting(tx, existing);
    });
  }

  /** Deletes the object in the caller's transaction (refused while something depends on it); false if there is none. */
  async removeIn(tx: Txn, tenant: string, name: string): Promise<boolean> {
    const existing = await this.findIn(tx, tenant, name);
    if (!existing) return false;
    await this.removeExisting(tx, existing);
    return true;
  }

  private async removeExisting(tx: Txn, existing: O): Promise<void> {
    const deps = await this.def.dependants(tx, existing);
    if (deps.length > 0) {
      throw new WeftError('WEFT_IN_USE', `${label(this.c, existing.tenant, existing.name)} is in use by ${listNames(deps)}; remove those first`);
    }
    await this.def.release?.(tx, existing);
    await this.quota.settle(tx, existing, undefined);
    if (this.def.storage) this.def.storage.remove(tx, existing);
    else tx.delete(keys.scoped(this.c, existing.tenant, existing.name));
  }

  private async write(actor: string, fn: (tx: Txn) => Promise<unknown>): Promise<O> {
    const r = await this.store.transact(actor, fn);
    return { ...(r.value as object), revision: r.revision } as O;
  }
}

/** Whether `candidate`, once stored (as JSON: undefined fields dropped), would equal `stored`, whatever the order of their keys. */
export function sameContent(candidate: unknown, stored: unknown): boolean {
  return isDeepStrictEqual(JSON.parse(JSON.stringify(candidate)), stored);
}

/** `a, b, c and 4 more`: keeps messages readable when thousands of endpoints depend on something. */
export function listNames(names: readonly string[], max = 5): string {
  const shown = names.slice(0, max).join(', ');
  return names.length > max ? `${shown} and ${names.length - max} more` : shown;
}

/** Reads every object of a collection in a tenant inside a transaction. */
export async function listIn<O>(tx: Txn, c: Collection, tenant: string): Promise<O[]> {
  return (await tx.list(keys.scopedPrefix(c, tenant))).map((e) => withRevision<O>(e));
}

export async function findIn<O>(tx: Txn, c: Collection, tenant: string, name: string): Promise<O | undefined> {
  const e = await tx.get(keys.scoped(c, tenant, name));
  return e && withRevision<O>(e);
}

/**
 * findIn for a reader that changes nothing it gets (an allocation reading its network and group): a
 * shallow copy of the store's shared entry, whose nested objects are frozen (Txn.getShared).
 */
export async function findShared<O>(tx: Txn, c: Collection, tenant: string, name: string): Promise<O | undefined> {
  const e = await tx.getShared(keys.scoped(c, tenant, name));
  return e && withRevision<O>(e);
}
