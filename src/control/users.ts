import { randomBytes, scrypt as scryptCb, timingSafeEqual } from 'node:crypto';
import { promisify } from 'node:util';
import { WeftError, badReference, notFound, parseDuration, type Role, type TokenInput, type User, type UserInput } from '../model/index.js';
import type { Store, Txn } from '../store/index.js';
import { keys, withRevision } from './keys.js';
import { Tokens, type Issued } from './tokens.js';

const scrypt = promisify(scryptCb) as (pw: string, salt: Buffer, len: number) => Promise<Buffer>;

/**
 * Who is asking, resolved on every request: a user (from a bearer token) or a host (from its client
 * certificate, `user` = `host:NAME`, role `host`: see server/hostgate.ts for what it may do).
 */
export interface Principal {
  user: string;
  role: Role | 'host';
  tenants: string[];
  /** What authenticated the request, for the audit log: a token id, or `cert:SERIAL`. */
  credential: string;
  /** Set for host certificates: the one host this principal may act for. */
  host?: string;
  /** When the credential ends (a token's expiry, a certificate's end): long-lived streams end then. */
  expiresAt?: string;
}


interface StoredUser extends Omit<User, 'revision' | 'hasPassword'> {
  passwordHash?: string;
}

export { hashToken, newToken } from './tokens.js';

export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const hash = await scrypt(password, salt, 32);
  return `scrypt$${salt.toString('base64')}$${hash.toString('base64')}`;
}

export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const [scheme, salt, hash] = stored.split('$');
  if (scheme !== 'scrypt' || !salt || !hash) return false;
  const want = Buffer.from(hash, 'base64');
  const got = await scrypt(password, Buffer.from(salt, 'base64'), want.length);
  return timingSafeEqual(got, want);
}

export interface UsersOptions {
  /** Lifetime of tokens minted by login, and the default for created ones; null: they never expire. */
  tokenTtlMs?: number | null;
}
export const DEFAULT_TOKEN_TTL_MS = 12 * 3_600_000;

/**
 * The scrypt hash of a random password nobody kept, with the same parameters as real ones: login runs
 * scrypt against it for unknown users and users without a password, so all failures cost the same.
 * Matching it lets no one in (such users are refused whatever scrypt says).
 */
const DUMMY_HASH = 'scrypt$0Bh29cne+yo2bhvyz5/qKg==$yIqXuD5hI5HekCCllFIFx4HgAoSG8Hi7foVGxQQHrOI=';

/** Never hand out the password hash. */
export function publicUser(e: { value: unknown; modRevision: number }): User {
  const { passwordHash, ...u } = e.value as StoredUser;
  return { ...u, hasPassword: passwordHash !== undefined, revision: e.modRevision };
}

export class Users {
  readonly tokens: Tokens;
  private readonly now: () => string;
  private readonly tokenTtlMs: number | null;

  constructor(private readonly store: Store, private readonly clock: () => Date, options: UsersOptions = {}) {
    this.now = () => clock().toISOString();
    this.tokens = new Tokens(store, clock);
    this.tokenTtlMs = options.tokenTtlMs === undefined ? DEFAULT_TOKEN_TTL_MS : options.tokenTtlMs;
  }

  async list(): Promise<{ items: User[]; revision: number }> {
    const l = await this.store.list(keys.users());
    return { items: l.entries.map(publicUser), revision: l.revision };
  }

  async get(name: string): Promise<User> {
    const e = await this.store.get(keys.user(name));
    if (!e) throw notFound(`user ${name}`);
    return publicUser(e);
  }

  async create(actor: string, input: UserInput): Promise<User> {
    const passwordHash = input.password === undefined ? undefined : await hashPassword(input.password);
    const r = await this.store.transact(actor, async (tx) => {
      if (await tx.get(keys.user(input.name))) throw new WeftError('WEFT_EXISTS', `user ${input.name} already exists`, { field: 'name' });
      const tenants = await this.checkTenants(tx, input);
      const at = this.now();
      const u: StoredUser = { name: input.name, role: input.role, tenants, ...(passwordHash ? { passwordHash } : {}), createdAt: at, updatedAt: at };
      tx.put(keys.user(input.name), u);
      return u;
    });
    return publicUser({ value: r.value, modRevision: r.revision });
  }

  private async checkTenants(tx: { get(k: string): Promise<unknown> }, input: Pick<UserInput, 'role' | 'tenants'>): Promise<string[]> {
    const tenants = input.tenants ?? [];
    if (input.role === 'tenant' && tenants.length === 0) {
      throw new WeftError('WEFT_INVALID_VALUE', 'tenants: a user with role tenant needs at least one tenant', { field: 'tenants' });
    }
    // An admin or ops user sees every tenant: a list would read as a limit it is not.
    if (input.role !== 'tenant' && tenants.length > 0) {
      throw new WeftError('WEFT_INVALID_VALUE', `tenants: a user with role ${input.role} sees every tenant; only a tenant user has a list of tenants`, { field: 'tenants' });
    }
    for (const [i, t] of tenants.entries()) if (!(await tx.get(keys.tenant(t)))) throw badReference(`tenants.${i}`, `tenant ${t}`);
    return tenants;
  }

  /**
   * A new password revokes every other token of the user (whoever knew the old one may have minted
   * some); `keepCredential` is the token making the request when users change their own password.
   */
  async update(actor: string, name: string, input: Partial<UserInput>, keepCredential?: string): Promise<User> {
    const passwordHash = input.password === undefined ? undefined : await hashPassword(input.password);
    const r = await this.store.transact(actor, async (tx) => {
      const e = await tx.get(keys.user(name));
      if (!e) throw notFound(`user ${name}`);
      const cur = e.value as StoredUser;
      const role = input.role ?? cur.role;
      // A tenant user made admin or ops keeps no list (it sees every tenant now), unless the change names one.
      const tenants = await this.checkTenants(tx, { role, tenants: input.tenants ?? (role === 'tenant' ? cur.tenants : []) });
      if (cur.role === 'admin' && role !== 'admin') await this.keepOneAdmin(tx, name);
      const u: StoredUser = { ...cur, role, tenants, ...(passwordHash ? { passwordHash } : {}), updatedAt: this.now() };
      tx.put(keys.user(name), u);
      if (passwordHash) await this.tokens.revokeAllOf(tx, name, keepCredential);
      return u;
    });
    return publicUser({ value: r.value, modRevision: r.revision });
  }

  async remove(actor: string, name: string): Promise<void> {
    await this.store.transact(actor, async (tx) => {
      const e = await tx.get(keys.user(name));
      if (!e) throw notFound(`user ${name}`);
      if ((e.value as StoredUser).role === 'admin') await this.keepOneAdmin(tx, name);
      tx.delete(keys.user(name));
      await this.tokens.revokeAllOf(tx, name);
    });
  }

  private async keepOneAdmin(tx: { list(p: string): Promise<Array<{ value: unknown }>> }, leaving: string): Promise<void> {
    const admins = (await tx.list(keys.users())).map((e) => e.value as StoredUser).filter((u) => u.role === 'admin' && u.name !== leaving);
    if (admins.length === 0) throw new WeftError('WEFT_IN_USE', `user ${leaving} is the last admin; create another admin first`);
  }

  /** Refuses (403, field currentPassword) unless `password` is the user's current password; as slow as a login. */
  async checkPassword(name: string, password: string | undefined): Promise<void> {
    const u = (await this.store.get(keys.user(name)))?.value as StoredUser | undefined;
    const matches = await verifyPassword(password ?? '', u?.passwordHash ?? DUMMY_HASH);
    if (!u?.passwordHash || password === undefined || !matches) {
      const why = u && !u.passwordHash ? 'you have no password yet; an admin sets the first one' : 'give your current password (currentPassword) to set a new one';
      throw new WeftError('WEFT_FORBIDDEN', `currentPassword: ${why}`, { field: 'currentPassword' });
    }
  }

  /**
   * Exchanges a password for a new token. Unknown users, users without a password and wrong passwords
   * get the same error after the same work (one scrypt), so timing does not tell which it was.
   */
  async login(username: string, password: string): Promise<Issued> {
    const e = await this.store.get(keys.user(username));
    const u = e?.value as StoredUser | undefined;
    const matches = await verifyPassword(password, u?.passwordHash ?? DUMMY_HASH);
    if (!u?.passwordHash || !matches) throw new WeftError('WEFT_UNAUTHENTICATED', 'wrong user name or password');
    return this.tokens.issue(username, username, 'login', this.tokenTtlMs);
  }

  /**
   * `POST /tokens`: a token for yourself (or, for an admin, for anyone). A token may not outlive the one
   * that creates it, or a stolen short-lived token could mint itself a permanent one; without an explicit
   * ttl the server's default is cut to that limit.
   */
  async createToken(caller: Principal, input: TokenInput): Promise<Issued> {
    const user = input.user ?? caller.user;
    if (user !== caller.user && caller.role !== 'admin') {
      throw new WeftError('WEFT_FORBIDDEN', `user ${caller.user} (role ${caller.role}) may create tokens only for itself`, { field: 'user' });
    }
    const asked = input.ttl === undefined ? undefined : parseDuration(input.ttl, 'ttl');
    const r = await this.store.transact(caller.user, async (tx) => {
      if (!(await tx.get(keys.user(user)))) throw badReference('user', `user ${user}`);
      const ttl = this.withinParent(await this.tokens.find(tx, caller.credential), asked);
      return this.tokens.issueIn(tx, user, input.description ?? `made by ${caller.user}`, ttl);
    });
    return r.value;
  }

  private withinParent(parent: { token: { expiresAt?: string } } | undefined, asked: number | null | undefined): number | null {
    const limit = parent?.token.expiresAt;
    const want = asked === undefined ? this.tokenTtlMs : asked;
    if (limit === undefined) return want;
    const left = Math.max(0, Date.parse(limit) - this.clock().getTime());
    if (asked !== undefined && (asked === null || asked > left)) {
      throw new WeftError('WEFT_INVALID_VALUE', `ttl: may not outlive the token making the request, which expires at ${limit}`, { field: 'ttl' });
    }
    return want === null ? left : Math.min(want, left);
  }

  /** Revokes token `id`: its owner or an admin may; anyone else is told it does not exist. */
  async revokeToken(caller: Principal, id: string): Promise<void> {
    const may = (owner: string) => owner === caller.user || caller.role === 'admin';
    await this.tokens.revoke(caller.user, id, may, (tx, owner, key) => this.keepAdminWayIn(tx, owner, key));
  }

  /** Refuses to revoke the last token by which any admin can still get in (no admin with a password or another live token). */
  private async keepAdminWayIn(tx: Txn, owner: string, key: string): Promise<void> {
    const admins = (await tx.list(keys.users())).map((e) => e.value as StoredUser).filter((u) => u.role === 'admin');
    if (!admins.some((a) => a.name === owner)) return;
    for (const a of admins) if (a.passwordHash || (await this.tokens.hasOtherLiveToken(tx, a.name, key))) return;
    throw new WeftError('WEFT_IN_USE', `token ${key.slice('tokens/'.length, 'tokens/'.length + 16)} is the last way in for any admin: set a password (weft user passwd) or create another admin token first`);
  }

  /** On an empty store: creates user `admin` and returns its first token (shown once, never expires); otherwise undefined. */
  async bootstrapAdmin(): Promise<string | undefined> {
    const created = await this.store.transact('system', async (tx) => {
      if ((await tx.list(keys.users())).length > 0) return undefined;
      const at = this.now();
      tx.put(keys.user('admin'), { name: 'admin', role: 'admin', tenants: [], createdAt: at, updatedAt: at } satisfies StoredUser);
      return (await this.tokens.issueIn(tx, 'admin', 'first admin token', null)).token;
    });
    return created.value;
  }

  /** Two keyed reads per request (the token, its user): O(1) in the number of tokens and users. */
  async authenticate(token: string): Promise<Principal> {
    const t = await this.tokens.check(token);
    const u = await this.store.get(keys.user(t.user));
    if (!u) throw new WeftError('WEFT_UNAUTHENTICATED', 'the token is not valid (log in again with `weft login`)');
    const user = withRevision<User>(u);
    return { user: user.name, role: user.role, tenants: user.tenants, credential: t.id, ...(t.expiresAt ? { expiresAt: t.expiresAt } : {}) };
  }
}
