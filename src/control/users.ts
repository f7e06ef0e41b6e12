import { createHash, randomBytes, scrypt as scryptCb, timingSafeEqual } from 'node:crypto';
import { promisify } from 'node:util';
import { WeftError, badReference, notFound, type Role, type User, type UserInput } from '../model/index.js';
import type { Store } from '../store/index.js';
import { keys, withRevision } from './keys.js';

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
}

/** The public id of a token: the start of its hash (the hash of 256 random bits reveals nothing). */
export const tokenId = (token: string) => hashToken(token).slice(0, 16);

interface StoredUser extends Omit<User, 'revision' | 'hasPassword'> {
  passwordHash?: string;
}
interface StoredToken { user: string; createdAt: string; description: string }

export const hashToken = (token: string) => createHash('sha256').update(token).digest('hex');
export const newToken = () => `weft_${randomBytes(32).toString('base64url')}`;

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

/** Never hand out the password hash. */
export function publicUser(e: { value: unknown; modRevision: number }): User {
  const { passwordHash, ...u } = e.value as StoredUser;
  return { ...u, hasPassword: passwordHash !== undefined, revision: e.modRevision };
}

export class Users {
  constructor(private readonly store: Store, private readonly now: () => string) {}

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
    for (const [i, t] of tenants.entries()) if (!(await tx.get(keys.tenant(t)))) throw badReference(`tenants.${i}`, `tenant ${t}`);
    return tenants;
  }

  async update(actor: string, name: string, input: Partial<UserInput>): Promise<User> {
    const passwordHash = input.password === undefined ? undefined : await hashPassword(input.password);
    const r = await this.store.transact(actor, async (tx) => {
      const e = await tx.get(keys.user(name));
      if (!e) throw notFound(`user ${name}`);
      const cur = e.value as StoredUser;
      const role = input.role ?? cur.role;
      const tenants = await this.checkTenants(tx, { role, tenants: input.tenants ?? cur.tenants });
      if (cur.role === 'admin' && role !== 'admin') await this.keepOneAdmin(tx, name);
      const u: StoredUser = { ...cur, role, tenants, ...(passwordHash ? { passwordHash } : {}), updatedAt: this.now() };
      tx.put(keys.user(name), u);
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
      for (const t of await tx.list('tokens/')) if ((t.value as StoredToken).user === name) tx.delete(t.key);
    });
  }

  private async keepOneAdmin(tx: { list(p: string): Promise<Array<{ value: unknown }>> }, leaving: string): Promise<void> {
    const admins = (await tx.list(keys.users())).map((e) => e.value as StoredUser).filter((u) => u.role === 'admin' && u.name !== leaving);
    if (admins.length === 0) throw new WeftError('WEFT_IN_USE', `user ${leaving} is the last admin; create another admin first`);
  }

  /** Exchanges a password for a new token. The same error for unknown users and wrong passwords. */
  async login(username: string, password: string): Promise<string> {
    const e = await this.store.get(keys.user(username));
    const u = e?.value as StoredUser | undefined;
    if (!u?.passwordHash || !(await verifyPassword(password, u.passwordHash))) {
      throw new WeftError('WEFT_UNAUTHENTICATED', 'wrong user name or password');
    }
    return this.issueToken(username, 'login', username);
  }

  async issueToken(actor: string, description: string, user: string): Promise<string> {
    const token = newToken();
    await this.store.transact(actor, async (tx) => {
      tx.put(keys.token(hashToken(token)), { user, createdAt: this.now(), description } satisfies StoredToken);
    });
    return token;
  }

  /** On an empty store: creates user `admin` and returns its first token (shown once); otherwise undefined. */
  async bootstrapAdmin(): Promise<string | undefined> {
    const created = await this.store.transact('system', async (tx) => {
      if ((await tx.list(keys.users())).length > 0) return false;
      const at = this.now();
      tx.put(keys.user('admin'), { name: 'admin', role: 'admin', tenants: [], createdAt: at, updatedAt: at } satisfies StoredUser);
      return true;
    });
    return created.value ? this.issueToken('system', 'first admin token', 'admin') : undefined;
  }

  async authenticate(token: string): Promise<Principal> {
    const t = await this.store.get(keys.token(hashToken(token)));
    const u = t && (await this.store.get(keys.user((t.value as StoredToken).user)));
    if (!u) throw new WeftError('WEFT_UNAUTHENTICATED', 'the token is not valid (log in again with `weft login`)');
    const user = withRevision<User>(u);
    return { user: user.name, role: user.role, tenants: user.tenants, credential: tokenId(token) };
  }
}
