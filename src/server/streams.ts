import type { Change } from '../store/index.js';
import type { Principal } from '../control/index.js';

interface OpenStream {
  principal: Principal;
  /** Re-authenticates with the credential the stream was opened with; false once it no longer holds. */
  stillValid: () => Promise<boolean>;
  end: () => void;
}

/**
 * Long-lived streams (watch) and the credentials they were opened with. A request is authenticated once,
 * so without this a revoked host or token would keep receiving changes on a stream it already had. When a
 * change touches what a stream's credential rests on (the host's identity, the user, its tokens), the
 * stream re-authenticates and ends if that fails.
 */
export class Streams {
  private readonly open = new Set<OpenStream>();

  add(s: OpenStream): () => void {
    this.open.add(s);
    return () => this.open.delete(s);
  }

  get size(): number {
    return this.open.size;
  }

  /**
   * Called with every committed change (of any server sharing the store). Only the streams whose
   * credential the change touches re-authenticate: a host's, by its identity; a person's, by its token
   * (tokens/HASH: the id is the hash's first 16 characters) or its user record. A user minting tokens in a
   * loop used to make every person's stream re-authenticate at each one.
   */
  onChanges(changes: readonly Change[]): void {
    const hosts = new Set<string>();
    const tokens = new Set<string>();
    const users = new Set<string>();
    for (const c of changes) {
      if (c.key.startsWith('hostids/')) hosts.add(c.key.slice('hostids/'.length));
      else if (c.key.startsWith('tokens/')) tokens.add(c.key.slice('tokens/'.length, 'tokens/'.length + 16));
      else if (c.key.startsWith('users/')) users.add(c.key.slice('users/'.length));
    }
    if (hosts.size === 0 && tokens.size === 0 && users.size === 0) return;
    for (const s of this.open) {
      const p = s.principal;
      if (p.host !== undefined ? hosts.has(p.host) : tokens.has(p.credential) || users.has(p.user)) void this.recheck(s);
    }
  }

  /** After changes were lost (a revocation may be among them): every stream re-authenticates. */
  recheckAll(): void {
    for (const s of this.open) void this.recheck(s);
  }

  private async recheck(s: OpenStream): Promise<void> {
    if (!(await s.stillValid().catch(() => false))) {
      this.open.delete(s);
      s.end();
    }
  }
}
