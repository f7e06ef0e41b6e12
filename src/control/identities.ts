import { createHash, timingSafeEqual } from 'node:crypto';
import { WeftError } from '../model/index.js';
import { createCa, fingerprint, formatJoinToken, newJoinSecret, parseJoinToken, signCsr, summarize, type KeyPair } from '../pki/index.js';
import type { Store } from '../store/index.js';
import { keys } from './keys.js';

/** Where the CA comes from: Weft's own (kept in the store, shared by every server) or one brought with flags. */
export interface CaSource {
  /** The CA certificate; its key only if this server may issue host certificates. */
  get(): Promise<{ certPem: string; keyPem?: string }>;
}

/** A joined (or invited) host: who added it, its pending join token, and the serials it may present. */
export interface StoredIdentity {
  name: string;
  addedBy: string;
  addedAt: string;
  /** The one-time join token, hashed, while it has not been used. */
  join?: { hash: string; expiresAt: string };
  joinedAt?: string;
  /** The valid certificates, newest last; at most two (the previous one stays valid through a rotation). */
  certs: Array<{ serial: string; notAfter: string }>;
}

export interface HostIdentityView {
  name: string;
  state: 'invited' | 'joined';
  addedBy: string;
  addedAt: string;
  joinExpiresAt?: string;
  joinedAt?: string;
  certSerial?: string;
  certExpiresAt?: string;
}

export const DEFAULT_JOIN_TTL_MS = 3_600_000;
export const DEFAULT_HOST_CERT_TTL_MS = 30 * 86_400_000;

const sha256 = (s: string) => createHash('sha256').update(s).digest();

/** Weft's own CA lives in the store (`pki/ca`): the first server makes it, the others find it. */
export class StoreCa implements CaSource {
  private cached: KeyPair | undefined;
  constructor(private readonly store: Store) {}

  async get(): Promise<KeyPair> {
    if (this.cached) return this.cached;
    const existing = await this.store.get(keys.ca());
    if (existing) return (this.cached = existing.value as KeyPair);
    const made = await createCa(`Weft CA ${new Date().toISOString().slice(0, 10)}`);
    const r = await this.store.transact('system', async (tx) => {
      const cur = await tx.get(keys.ca());
      if (cur) return cur.value as KeyPair;
      tx.put(keys.ca(), made);
      return made;
    });
    return (this.cached = r.value);
  }
}

function view(i: StoredIdentity): HostIdentityView {
  const cur = i.certs[i.certs.length - 1];
  return {
    name: i.name, state: i.joinedAt ? 'joined' : 'invited', addedBy: i.addedBy, addedAt: i.addedAt,
    ...(i.join && !i.joinedAt ? { joinExpiresAt: i.join.expiresAt } : {}),
    ...(i.joinedAt ? { joinedAt: i.joinedAt } : {}),
    ...(cur ? { certSerial: cur.serial, certExpiresAt: cur.notAfter } : {}),
  };
}

/**
 * Per-host identity (the Swarm/kubeadm pattern): an admin invites a host by name and gets a one-time join
 * token pinning the CA; the host redeems it once with a CSR for a client certificate `CN=host:NAME`, and
 * renews that certificate with the certificate itself before it expires. Removing the identity revokes
 * every certificate of the host at once (the server checks serials against it on every request).
 */
export class HostIdentities {
  constructor(
    private readonly store: Store,
    private readonly now: () => Date,
    private readonly ca: CaSource,
    private readonly certTtlMs = DEFAULT_HOST_CERT_TTL_MS,
  ) {}

  async list(): Promise<HostIdentityView[]> {
    return (await this.store.list(keys.hostIds())).entries.map((e) => view(e.value as StoredIdentity));
  }

  async get(name: string): Promise<StoredIdentity | undefined> {
    return (await this.store.get(keys.hostId(name)))?.value as StoredIdentity | undefined;
  }

  /**
   * The identity as every request of the host reads it (the server checks its certificate's serial each
   * time): the store's shared value where it has one, parsed once while the identity is unchanged.
   * Never to be changed.
   */
  async current(name: string): Promise<Readonly<StoredIdentity> | undefined> {
    const key = keys.hostId(name);
    return (await (this.store.getShared ? this.store.getShared(key) : this.store.get(key)))?.value as StoredIdentity | undefined;
  }

  /** The CA with its key, or the reason this server cannot sign hosts. */
  private async signer(): Promise<KeyPair> {
    const ca = await this.ca.get();
    if (!ca.keyPem) throw new WeftError('WEFT_INVALID_VALUE', 'this server cannot issue host certificates: it was given --tls-ca without --tls-ca-key');
    return { certPem: ca.certPem, keyPem: ca.keyPem };
  }

  /** Invites a host: a new one-time join token (replacing an unused one); refused once the host has joined. */
  async invite(actor: string, name: string, ttlMs = DEFAULT_JOIN_TTL_MS): Promise<{ token: string; expiresAt: string }> {
    const ca = await this.signer();
    const secret = newJoinSecret();
    const now = this.now();
    const expiresAt = new Date(now.getTime() + ttlMs).toISOString();
    await this.store.transact(actor, async (tx) => {
      const cur = (await tx.get(keys.hostId(name)))?.value as StoredIdentity | undefined;
      if (cur?.joinedAt) throw new WeftError('WEFT_EXISTS', `host ${name} has already joined; \`weft host rm ${name}\` revokes it first`, { field: 'name' });
      tx.put(keys.hostId(name), { name, addedBy: actor, addedAt: now.toISOString(), join: { hash: sha256(secret).toString('hex'), expiresAt }, certs: [] } satisfies StoredIdentity);
    });
    return { token: formatJoinToken({ caHash: fingerprint(ca.certPem), host: name, secret }), expiresAt };
  }

  /**
   * Redeems a join token for a certificate. Every failure is the same 401 (a wrong secret, an unknown or
   * already joined host, an expired token), so the answer tells a guesser nothing.
   */
  async redeem(token: string, csrPem: string): Promise<{ certificate: string; ca: string; host: string }> {
    const t = parseJoinToken(token);
    const ca = await this.signer();
    const refused = new WeftError('WEFT_UNAUTHENTICATED', 'the join token is not valid (used, expired, revoked or never issued): ask an admin for a new one with `weft host add NAME`', { field: 'token' });
    const usable = (cur: StoredIdentity | undefined): cur is StoredIdentity => {
      const want = cur?.join && Buffer.from(cur.join.hash, 'hex');
      const ok = want !== undefined && want.length === 32 && timingSafeEqual(want, sha256(t.secret));
      return ok && !cur?.joinedAt && Date.parse(cur?.join?.expiresAt ?? '') >= this.now().getTime();
    };
    // Checked before signing (nobody makes the server sign for free) and again in the transaction (once only).
    if (t.caHash !== fingerprint(ca.certPem) || !usable(await this.get(t.host))) throw refused;
    const certificate = await signCsr(ca, csrPem, { commonName: `host:${t.host}`, usage: 'client', ttlMs: this.certTtlMs });
    const sum = summarize(certificate);
    await this.store.transact(`host:${t.host}`, async (tx) => {
      const cur = (await tx.get(keys.hostId(t.host)))?.value as StoredIdentity | undefined;
      if (!usable(cur)) throw refused;
      const { join: _used, ...rest } = cur;
      tx.put(keys.hostId(t.host), { ...rest, joinedAt: this.now().toISOString(), certs: [{ serial: sum.serial, notAfter: sum.notAfter.toISOString() }] } satisfies StoredIdentity);
    });
    return { certificate, ca: ca.certPem, host: t.host };
  }

  /** A joined host renews its certificate with a new key; the previous certificate stays valid until it expires. */
  async renew(name: string, csrPem: string): Promise<{ certificate: string; ca: string }> {
    const ca = await this.signer();
    const certificate = await signCsr(ca, csrPem, { commonName: `host:${name}`, usage: 'client', ttlMs: this.certTtlMs });
    const sum = summarize(certificate);
    await this.store.transact(`host:${name}`, async (tx) => {
      const cur = (await tx.get(keys.hostId(name)))?.value as StoredIdentity | undefined;
      if (!cur?.joinedAt) throw new WeftError('WEFT_UNAUTHENTICATED', `host ${name} is not joined (revoked?)`);
      const now = this.now().getTime();
      const live = cur.certs.filter((c) => Date.parse(c.notAfter) > now).slice(-1);
      tx.put(keys.hostId(name), { ...cur, certs: [...live, { serial: sum.serial, notAfter: sum.notAfter.toISOString() }] } satisfies StoredIdentity);
    });
    return { certificate, ca: ca.certPem };
  }

  /** Revokes a host: its identity goes, and with it every certificate it holds. Returns whether it existed. */
  async revoke(actor: string, name: string): Promise<boolean> {
    const r = await this.store.transact(actor, async (tx) => {
      if (!(await tx.get(keys.hostId(name)))) return false;
      tx.delete(keys.hostId(name));
      return true;
    });
    return r.value;
  }

}
