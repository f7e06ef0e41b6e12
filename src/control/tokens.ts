import { createHash, randomBytes } from 'node:crypto';
import { WeftError, notFound, type TokenView } from '../model/index.js';
import type { Store, Txn } from '../store/index.js';
import { keys } from './keys.js';

/**
 * Bearer tokens. Only a token's sha256 is stored (`tokens/<sha256>`), so the store never holds a secret;
 * its public id is the first 16 hex characters of that hash, which finds it by a prefix read
 * without another index, and keeps stores made before ids existed valid as they are.
 */
export interface StoredToken {
  user: string;
  createdAt: string;
  description: string;
  /** Absent: never expires (the first admin token, or `--token-ttl never`). */
  expiresAt?: string;
  /** Set by the first refusal after expiry, so a server whose clock runs behind refuses it too. */
  expired?: true;
}

export const hashToken = (token: string) => createHash('sha256').update(token).digest('hex');
export const newToken = () => `weft_${randomBytes(32).toString('base64url')}`;
export const tokenIdOf = (hash: string) => hash.slice(0, 16);

/** A refused credential that was recognised: the audit log names it by its id. */
export class CredentialRefused extends WeftError {
  constructor(readonly credential: string, detail: string) {
    super('WEFT_UNAUTHENTICATED', detail);
  }
}

export interface Issued {
  id: string;
  token: string;
  expiresAt: string | null;
}

export class Tokens {
  constructor(private readonly store: Store, private readonly clock: () => Date) {}

  /** Mints a token inside the caller's transaction; the secret is returned once and never stored. */
  issueIn(tx: Txn, user: string, description: string, ttlMs: number | null): Issued {
    const token = newToken();
    const hash = hashToken(token);
    const now = this.clock();
    const expiresAt = ttlMs === null ? null : new Date(now.getTime() + ttlMs).toISOString();
    const t: StoredToken = { user, createdAt: now.toISOString(), description, ...(expiresAt ? { expiresAt } : {}) };
    tx.put(keys.token(hash), t);
    return { id: tokenIdOf(hash), token, expiresAt };
  }

  async issue(actor: string, user: string, description: string, ttlMs: number | null): Promise<Issued> {
    return (await this.store.transact(actor, async (tx) => this.issueIn(tx, user, description, ttlMs))).value;
  }

  /** One keyed read per request. Returns the owner and the token's id, or refuses (401) saying why. */
  async check(token: string): Promise<{ id: string; user: string; expiresAt?: string }> {
    const hash = hashToken(token);
    const e = await this.store.get(keys.token(hash));
    if (!e) throw new WeftError('WEFT_UNAUTHENTICATED', 'the token is not valid (log in again with `weft login`)');
    const t = e.value as StoredToken;
    const id = tokenIdOf(hash);
    if (this.isExpired(t)) {
      // Best effort: if the mark cannot be written now, the next refusal tries again; the answer is 401 either way.
      if (!t.expired) await this.markExpired(hash).catch(() => undefined);
      throw new CredentialRefused(id, `the token ${id} expired at ${t.expiresAt} (log in again with \`weft login\`)`);
    }
    return { id, user: t.user, ...(t.expiresAt ? { expiresAt: t.expiresAt } : {}) };
  }

  private isExpired(t: StoredToken): boolean {
    return t.expired === true || (t.expiresAt !== undefined && Date.parse(t.expiresAt) <= this.clock().getTime());
  }

  private async markExpired(hash: string): Promise<void> {
    await this.store.transact('system', async (tx) => {
      const cur = await tx.get(keys.token(hash));
      if (cur && !(cur.value as StoredToken).expired) tx.put(keys.token(hash), { ...(cur.value as StoredToken), expired: true });
    });
  }

  /** Every token, or one user's; `current` marks the one with id `currentId`. Never a secret or a hash. */
  async list(user: string | undefined, currentId: string): Promise<TokenView[]> {
    const { entries } = await this.store.list('tokens/');
    const out: TokenView[] = [];
    for (const e of entries) {
      const t = e.value as StoredToken;
      if (user !== undefined && t.user !== user) continue;
      const id = tokenIdOf(e.key.slice('tokens/'.length));
      out.push({
        id, user: t.user, description: t.description, createdAt: t.createdAt, ...(t.expiresAt ? { expiresAt: t.expiresAt } : {}),
        state: this.isExpired(t) ? 'expired' : 'active', current: id === currentId,
      });
    }
    return out.sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.id.localeCompare(b.id));
  }

  /** The stored token with this id, or undefined. */
  async find(tx: Txn, id: string): Promise<{ key: string; token: StoredToken } | undefined> {
    // An empty or short id would be a prefix of many hashes: only a whole id names a token.
    if (!/^[0-9a-f]{16}$/.test(id)) return undefined;
    const [e] = await tx.list(keys.token(id));
    return e && { key: e.key, token: e.value as StoredToken };
  }

  /** Deletes the token `id` if `mayRevoke(owner)`; otherwise it does not exist for this caller (404). */
  async revoke(actor: string, id: string, mayRevoke: (owner: string) => boolean, guard: (tx: Txn, owner: string, key: string) => Promise<void>): Promise<void> {
    await this.store.transact(actor, async (tx) => {
      const found = await this.find(tx, id);
      if (!found || !mayRevoke(found.token.user)) throw notFound(`token ${id}`);
      await guard(tx, found.token.user, found.key);
      tx.delete(found.key);
    });
  }

  /** Inside a user transaction: removes the user's tokens except `keepId` (a password change, a deleted user). */
  async revokeAllOf(tx: Txn, user: string, keepId?: string): Promise<number> {
    let n = 0;
    for (const e of await tx.list('tokens/')) {
      if ((e.value as StoredToken).user !== user || tokenIdOf(e.key.slice('tokens/'.length)) === keepId) continue;
      tx.delete(e.key);
      n++;
    }
    return n;
  }

  /** Whether `user` holds a token other than `exceptKey` that still authenticates. */
  async hasOtherLiveToken(tx: Txn, user: string, exceptKey: string): Promise<boolean> {
    return (await tx.list('tokens/')).some((e) => e.key !== exceptKey && (e.value as StoredToken).user === user && !this.isExpired(e.value as StoredToken));
  }

  /** Forgets tokens that expired more than `retentionMs` ago (until then `weft token ls` shows them as expired). */
  async sweep(retentionMs: number): Promise<number> {
    const cutoff = this.clock().getTime() - retentionMs;
    const { entries } = await this.store.list('tokens/');
    const old = entries.filter((e) => {
      const at = (e.value as StoredToken).expiresAt;
      return at !== undefined && Date.parse(at) < cutoff;
    });
    if (old.length === 0) return 0;
    await this.store.transact('system', async (tx) => {
      for (const e of old) if (await tx.get(e.key)) tx.delete(e.key);
    });
    return old.length;
  }
}
