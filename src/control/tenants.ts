import { MAX_TENANT_ID, WeftError, notFound, type Tenant, type TenantInput, type User } from '../model/index.js';
import type { Entry, Store, Txn } from '../store/index.js';
import { checkRevision, listNames } from './crud.js';
import { COLLECTIONS, KIND_OF, keys, withRevision } from './keys.js';
import { endpointsWhere } from './shared.js';
import { stampOwners, type Quota } from './quota.js';

export const DEFAULT_TENANT = 'default';

/** Tenants: each its own routing domain; `default` exists from the start. */
export class Tenants {
  constructor(private readonly store: Store, private readonly now: () => string, private readonly quota: Quota) {}

  async list(): Promise<{ items: Tenant[]; revision: number }> {
    const l = await this.store.list(keys.tenants());
    return { items: l.entries.map((e) => withRevision<Tenant>(e)), revision: l.revision };
  }

  async get(name: string): Promise<Tenant> {
    const e = await this.store.get(keys.tenant(name));
    if (!e) throw notFound(`tenant ${name}`);
    return withRevision<Tenant>(e);
  }

  /**
   * The store revision that created the tenant now under this name (undefined: there is none). It tells
   * one tenant from another made later under the same name, which an update never changes.
   */
  async createdAt(name: string): Promise<number | undefined> {
    return (await this.store.get(keys.tenant(name)))?.createRevision;
  }

  async create(actor: string, input: TenantInput): Promise<Tenant> {
    const r = await this.store.transact(actor, (tx) => this.createIn(tx, actor, input));
    return { ...r.value, revision: r.revision };
  }

  /** Creates the tenant in the caller's transaction (409 if it exists). */
  async createIn(tx: Txn, actor: string, input: TenantInput): Promise<Omit<Tenant, 'revision'>> {
    if (await tx.get(keys.tenant(input.name))) throw new WeftError('WEFT_EXISTS', `tenant ${input.name} already exists`, { field: 'name' });
    const used = new Set((await tx.list(keys.tenants())).map((e) => (e.value as Tenant).id));
    let id = 1;
    while (used.has(id)) id++;
    if (id > MAX_TENANT_ID) throw new WeftError('WEFT_POOL_EXHAUSTED', `no tenant id left (at most ${MAX_TENANT_ID} tenants)`);
    const at = this.now();
    const t = stampOwners({ name: input.name, id, defaultAction: input.defaultAction ?? 'allow', createdAt: at, updatedAt: at }, undefined, actor);
    await this.quota.settle(tx, undefined, t);
    tx.put(keys.tenant(input.name), t);
    return t;
  }

  /**
   * `weft apply`'s write of a tenant, in the caller's transaction. A default action left out keeps the
   * tenant's (as PATCH does): a document that only names a tenant must not open a locked one.
   * `mayCreate`: whether the caller may create tenants (admin and ops users).
   */
  async upsertIn(tx: Txn, actor: string, input: TenantInput, mayCreate: boolean): Promise<'created' | 'updated' | 'unchanged'> {
    const e = await tx.get(keys.tenant(input.name));
    if (!e) {
      if (!mayCreate) throw new WeftError('WEFT_FORBIDDEN', `tenant ${input.name} does not exist, and only admin and ops users may create tenants`);
      await this.createIn(tx, actor, input);
      return 'created';
    }
    const cur = withRevision<Tenant>(e);
    if (input.defaultAction === undefined || input.defaultAction === cur.defaultAction) return 'unchanged';
    tx.put(keys.tenant(input.name), this.changed(cur, input.defaultAction, actor));
    return 'updated';
  }

  private changed(cur: Tenant, defaultAction: Tenant['defaultAction'], actor: string): Omit<Tenant, 'revision'> {
    return stampOwners({ name: cur.name, id: cur.id, defaultAction, createdAt: cur.createdAt, updatedAt: this.now() }, cur, actor);
  }

  /** Creates `default` if missing; run at every server start. */
  async ensureDefault(): Promise<void> {
    if (!(await this.store.get(keys.tenant(DEFAULT_TENANT)))) {
      await this.create('system', { name: DEFAULT_TENANT }).catch((e: unknown) => {
        if (!(e instanceof WeftError && e.code === 'WEFT_EXISTS')) throw e;
      });
    }
  }

  async update(actor: string, name: string, input: Partial<TenantInput>, ifMatch?: number): Promise<Tenant> {
    if (input.name !== undefined && input.name !== name) {
      throw new WeftError('WEFT_INVALID_FIELD', `name: the body names '${input.name}' but the path names '${name}'`, { field: 'name' });
    }
    const r = await this.store.transact(actor, async (tx) => {
      const e = await tx.get(keys.tenant(name));
      if (!e) throw notFound(`tenant ${name}`);
      const cur = withRevision<Tenant>(e);
      checkRevision(cur.revision, ifMatch, `tenant ${name}`);
      const t = this.changed(cur, input.defaultAction ?? cur.defaultAction, actor);
      tx.put(keys.tenant(name), t);
      return t;
    });
    return { ...r.value, revision: r.revision };
  }

  async remove(actor: string, name: string, ifMatch?: number): Promise<void> {
    await this.store.transact(actor, async (tx) => {
      const e = await tx.get(keys.tenant(name));
      if (!e) throw notFound(`tenant ${name}`);
      checkRevision(e.modRevision, ifMatch, `tenant ${name}`);
      await this.removeExisting(tx, e);
    });
  }

  async existsIn(tx: Txn, name: string): Promise<boolean> {
    return (await tx.get(keys.tenant(name))) !== undefined;
  }

  /** Deletes an empty tenant in the caller's transaction; false if there is none. */
  async removeIn(tx: Txn, name: string): Promise<boolean> {
    const e = await tx.get(keys.tenant(name));
    if (!e) return false;
    await this.removeExisting(tx, e);
    return true;
  }

  private async removeExisting(tx: Txn, e: Entry): Promise<void> {
    const name = withRevision<Tenant>(e).name;
    const deps: string[] = [];
    for (const c of COLLECTIONS) {
      for (const o of await tx.list(keys.scopedPrefix(c, name))) deps.push(`${KIND_OF[c]} ${o.key.slice(c.length + 1)}`);
    }
    deps.push(...(await endpointsWhere(tx, (ep) => ep.tenant === name)).map((ep) => `endpoint ${ep.id}`));
    for (const u of await tx.list(keys.users())) {
      if (withRevision<User>(u).tenants.includes(name)) deps.push(`user ${withRevision<User>(u).name}`);
    }
    if (deps.length > 0) throw new WeftError('WEFT_IN_USE', `tenant ${name} is in use by ${listNames(deps)}; remove those first`);
    await this.quota.settle(tx, withRevision<Tenant>(e), undefined);
    tx.delete(keys.tenant(name));
  }
}
