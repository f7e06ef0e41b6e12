import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic, writeFileIfAbsent } from '../pki/index.js';

const KEY = /^[0-9a-f]{64}$/;

/** What a seal covers: everything that decides where the agent would wire the endpoint. */
type Sealed = { id: string; tenant: string; network: string; ifname: string; netns?: string };

/**
 * The agent's seal on the endpoints it creates: an HMAC with a key kept 0600 in its state dir, never sent.
 * The repair loop re-wires only endpoints whose seal checks, so an endpoint record written by anyone else
 * (an admin, a stolen host certificate) can never make this agent wire a veth into a namespace it chose.
 */
export class Sealer {
  private constructor(private readonly key: Buffer) {}

  /** Reads the key from `dir/seal.key`, making it on first use. */
  static load(dir: string): Sealer {
    const file = join(dir, 'seal.key');
    const text = existsSync(file) ? readFileSync(file, 'utf8').trim() : undefined;
    // A key that is not 64 hex digits (a file truncated by a power loss, garbage) would be a short or empty
    // HMAC key anyone can compute: a new one is made. Endpoints sealed with the lost key are then never
    // re-wired by maintenance (fail closed) until made again.
    if (text !== undefined && KEY.test(text)) {
      chmodSync(file, 0o600);
      return new Sealer(Buffer.from(text, 'hex'));
    }
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const key = randomBytes(32).toString('hex');
    // None yet: made only if still none, so two agents starting at once both use the one that stands
    // (a rename over it let one run with a key that was not on disk, its seals lost at its restart).
    if (text === undefined) {
      if (writeFileIfAbsent(file, key, 0o600)) return new Sealer(Buffer.from(key, 'hex'));
      const other = readFileSync(file, 'utf8').trim();
      if (KEY.test(other)) return new Sealer(Buffer.from(other, 'hex'));
    }
    writeFileAtomic(file, key, 0o600);
    return new Sealer(Buffer.from(key, 'hex'));
  }

  seal(e: Sealed): string {
    return createHmac('sha256', this.key).update(JSON.stringify([e.id, e.tenant, e.network, e.ifname, e.netns ?? ''])).digest('hex');
  }

  verify(e: Sealed & { seal?: string }): boolean {
    if (!e.seal || !/^[0-9a-f]{64}$/.test(e.seal)) return false;
    return timingSafeEqual(Buffer.from(e.seal, 'hex'), Buffer.from(this.seal(e), 'hex'));
  }
}
