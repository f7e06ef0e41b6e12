import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

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
    if (!existsSync(file)) {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      writeFileSync(file, randomBytes(32).toString('hex'), { mode: 0o600, flag: 'wx' });
    }
    chmodSync(file, 0o600);
    return new Sealer(Buffer.from(readFileSync(file, 'utf8').trim(), 'hex'));
  }

  seal(e: Sealed): string {
    return createHmac('sha256', this.key).update(JSON.stringify([e.id, e.tenant, e.network, e.ifname, e.netns ?? ''])).digest('hex');
  }

  verify(e: Sealed & { seal?: string }): boolean {
    if (!e.seal || !/^[0-9a-f]{64}$/.test(e.seal)) return false;
    return timingSafeEqual(Buffer.from(e.seal, 'hex'), Buffer.from(this.seal(e), 'hex'));
  }
}
