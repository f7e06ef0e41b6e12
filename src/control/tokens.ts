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

/** What a user's index entry of a token holds (usertokens/USER/HASH): enough to count it live or not. */
interface IndexedToken { expiresAt?: string }

/**
 * Tokens a user may hold at once, live or expired and not yet forgotten: a user (or a stolen token) minting
 * tokens in a loop otherwise grew the store without bound. Past it the user's expired tokens are forgotten
 * first (EXPIRED_FORGOTTEN_PER_ISSUE at a time), and a new one is refused only if the rest are live. Small
 * enough that revoking them all (a password change, the user removed) is one etcd transaction (at most
 * 128 operations): a stolen token must not be able to mint its victim out of changing its password.
 */
export const MAX_TOKENS_PER_USER = 100;
const EXPIRED_FORGOTTEN_PER_ISSUE = 40;
/**
 * Index entries written per transaction at start, tokens forgotten per transaction by the sweep: on etcd
 * each is a put or two deletes, plus a guard per user they name (at most 128 operations).
 */
const INDEXED_PER_TXN = 40;
const SWEPT_PER_TXN = 20;

export interface Issued {
  id: string;
  token: string;
  expiresAt: string | null;
}

export class Tokens {
  constructor(private readonly store: Store, private readonly clock: () => Date) {}

  /**
   * Mints a token inside the caller's transaction; the secret is returned once and never stored. Refused
   * (WEFT_QUOTA_EXCEEDED) when the user holds MAX_TOKENS_PER_USER live ones.
   */
  async issueIn(tx: Txn, user: string, description: string, ttlMs: number | null): Promise<Issued> {
    await this.makeRoom(tx, user);
    const token = newToken();
    const hash = hashToken(token);
    const now = this.clock();
    const expiresAt = ttlMs === null ? null : new Date(now.getTime() + ttlMs).toISOString();
    const t: StoredToken = { user, createdAt: now.toISOString(), description, ...(expiresAt ? { expiresAt } : {}) };
    tx.put(keys.token(hash), t);
    tx.put(keys.userToken(user, hash), (expiresAt ? { expiresAt } : {}) satisfies IndexedToken);
    return { id: tokenIdOf(hash), token, expiresAt };
  }

  /** Below the cap, or the user's oldest expired tokens forgotten to get there, or refused. */
  private async makeRoom(tx: Txn, user: string): Promise<void> {
    const held = await tx.list(keys.userTokens(user));
    if (held.length < MAX_TOKENS_PER_USER) return;
    const now = this.clock().getTime();
    const expired = held
      .map((e) => ({ key: e.key, at: Date.parse(String((e.value as IndexedToken | undefined)?.expiresAt)) }))
      .filter((x) => x.at <= now)
      .sort((a, b) => a.at - b.at);
    // Live ones refuse; expired ones only take room, a few given back per token (a data dir from before
    // the cap may hold many more than it).
    if (held.length - expired.length >= MAX_TOKENS_PER_USER) {
      throw new WeftError('WEFT_QUOTA_EXCEEDED', `user ${user} holds ${held.length - expired.length} live tokens (at most ${MAX_TOKENS_PER_USER}): revoke some first (\`weft token ls\`, \`weft token revoke ID\`) or let them expire`);
    }
    for (const x of expired.slice(0, EXPIRED_FORGOTTEN_PER_ISSUE)) {
      tx.delete(x.key);
      tx.delete(keys.token(x.key.slice(keys.userTokens(user).length)));
    }
  }

  /**
   * At every start: every stored token in its user's index (a data dir from before the index, an older
   * server's tokens), index entries of tokens gone dropped. One listing of the tokens per start.
   */
  async reindex(): Promise<number> {
    const tokens = (await this.store.list('tokens/')).entries;
    const indexed = new Set((await this.store.list(keys.allUserTokens())).entries.map((e) => e.key));
    const want = new Map<string, IndexedToken>();
    for (const e of tokens) {
      const t = e.value as Partial<StoredToken> | undefined;
      if (typeof t?.user !== 'string' || t.user.includes('/')) continue;
      const key = keys.userToken(t.user, e.key.slice('tokens/'.length));
      if (!indexed.delete(key)) want.set(key, typeof t.expiresAt === 'string' ? { expiresAt: t.expiresAt } : {});
    }
    const writes = [...want.keys(), ...indexed];
    let n = 0;
    for (let k = 0; k < writes.length; k += INDEXED_PER_TXN) {
      // Each as the token stands in this transaction: one issued or revoked (another server) since the
      // listings above is not indexed or dropped on their word.
      const r = await this.store.transact('system', async (tx) => {
        let done = 0;
        for (const key of writes.slice(k, k + INDEXED_PER_TXN)) {
          const [, user = '', hash = ''] = key.split('/');
          const t = (await tx.get(keys.token(hash)))?.value as Partial<StoredToken> | undefined;
          const there = (await tx.get(key)) !== undefined;
          if (t?.user === user && !there) tx.put(key, typeof t.expiresAt === 'string' ? { expiresAt: t.expiresAt } : {});
          else if (t?.user !== user && there) tx.delete(key);
          else continue;
          done++;
        }
        return done;
      });
      n += r.value;
    }
    return n;
  }

  async issue(actor: string, user: string, description: string, ttlMs: number | null): Promise<Issued> {
    return (await this.store.transact(actor, (tx) => this.issueIn(tx, user, description, ttlMs))).value;
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
      this.forget(tx, found.key, found.token.user);
    });
  }

  /** A token and its index entry deleted. */
  private forget(tx: Txn, key: string, user: unknown): void {
    tx.delete(key);
    if (typeof user === 'string' && !user.includes('/')) tx.delete(keys.userToken(user, key.slice('tokens/'.length)));
  }

  /**
   * Inside a user transaction: removes the user's tokens except `keepId` (a password change, a deleted
   * user), found through its index. On etcd each token is a guarded delete (one operation and one key
   * compared), and the index goes as one range: MAX_TOKENS_PER_USER stays within one transaction.
   */
  async revokeAllOf(tx: Txn, user: string, keepId?: string): Promise<number> {
    const prefix = keys.userTokens(user);
    let n = 0;
    let kept: { key: string; value: unknown } | undefined;
    for (const e of await tx.list(prefix)) {
      const hash = e.key.slice(prefix.length);
      if (keepId !== undefined && tokenIdOf(hash) === keepId) {
        kept = { key: e.key, value: e.value };
        continue;
      }
      tx.delete(keys.token(hash));
      n++;
    }
    tx.deletePrefix(prefix);
    if (kept) tx.put(kept.key, kept.value);
    return n;
  }

  /**
   * Whether `user` holds a token other than `exceptKey` that still authenticates: its index says which
   * have not expired, and the first of those that is stored and not marked expired answers (a read or two,
   * not one per token).
   */
  async hasOtherLiveToken(tx: Txn, user: string, exceptKey: string): Promise<boolean> {
    const prefix = keys.userTokens(user);
    const now = this.clock().getTime();
    for (const e of await tx.list(prefix)) {
      const key = keys.token(e.key.slice(prefix.length));
      const at = (e.value as IndexedToken | undefined)?.expiresAt;
      if (key === exceptKey || (at !== undefined && !(Date.parse(at) > now))) continue;
      const t = (await tx.get(key))?.value as StoredToken | undefined;
      if (t?.user === user && !this.isExpired(t)) return true;
    }
    return false;
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
    for (let k = 0; k < old.length; k += SWEPT_PER_TXN) {
      await this.store.transact('system', async (tx) => {
        for (const e of old.slice(k, k + SWEPT_PER_TXN)) if (await tx.get(e.key)) this.forget(tx, e.key, (e.value as StoredToken).user);
      });
    }
    return old.length;
  }
}
