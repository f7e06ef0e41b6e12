import { createPrivateKey, createPublicKey, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../pki/index.js';

const FILE = 'wireguard.key';
/** The last `rotateKey` request (the host's count) this host's key answered. */
const ROTATED = 'wireguard.rotated';

export const wireguardKeyPath = (stateDir: string) => join(stateDir, FILE);

/** base64url (JWK) to the standard base64 that WireGuard tools read and print. */
const b64 = (url: string) => Buffer.from(url, 'base64url').toString('base64');

/**
 * This host's WireGuard key pair (X25519), made once in the agent's state dir (0600) and kept across
 * restarts; the private half never leaves the file, the public half goes into the host's registration so
 * the other hosts can make it their peer. Returns both as WireGuard writes them (base64 of 32 bytes).
 */
export function wireguardKey(stateDir: string): { privateKey: string; publicKey: string } {
  const path = join(stateDir, FILE);
  if (!existsSync(path)) makeKey(path);
  const text = readFileSync(path, 'utf8').trim();
  const raw = Buffer.from(text, 'base64');
  if (raw.length !== 32) throw new Error(`${path}: not a WireGuard private key (32 bytes in base64); remove it to make a new one`);
  return { privateKey: text, publicKey: b64(derivePublic(raw)) };
}

/** The public half of a raw X25519 private key, through a PKCS#8 wrapping (Node takes no bare scalar). */
function derivePublic(raw: Buffer): string {
  const pkcs8 = Buffer.concat([Buffer.from('302e020100300506032b656e04220420', 'hex'), raw]);
  return createPublicKey(createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' })).export({ format: 'jwk' }).x as string;
}

/**
 * A new private key as `wg genkey` makes one: 32 random bytes, clamped (RFC 7748). Not through
 * generateKeyPairSync + export: on Node 20 a garbage collection inside that export can run the key
 * generation job's destructor, which takes the lock the export holds, and the process hangs for good
 * (bench:scale's worker making 500 keys froze that way; a loop of them hangs within ~5,000).
 */
export function newPrivateKey(): Buffer {
  const k = randomBytes(32);
  k[0] = (k[0] ?? 0) & 248;
  k[31] = ((k[31] ?? 0) & 127) | 64;
  return k;
}

/** A new key pair as WireGuard writes them (base64 of 32 bytes), made in memory. */
export function newKeyPair(): { privateKey: string; publicKey: string } {
  const raw = newPrivateKey();
  return { privateKey: raw.toString('base64'), publicKey: b64(derivePublic(raw)) };
}

function makeKey(path: string): void {
  writeFileAtomic(path, `${newKeyPair().privateKey}\n`, 0o600);
}

/**
 * Whether the key is due for a new one: the host's `rotateKey` count is not the one it last answered
 * (a host removed and joined again starts counting anew, so any difference counts)
 * (`weft host rotate-key`), or the key is older than `maxAgeDays` (0: never by age). A state dir that
 * has answered no request yet records the current count without rotating: its key is new anyway.
 */
export function keyDue(stateDir: string, requested: number, maxAgeDays: number, now = Date.now()): boolean {
  const rotated = join(stateDir, ROTATED);
  if (!existsSync(rotated)) {
    writeFileAtomic(rotated, `${requested}\n`, 0o600);
    return false;
  }
  const answered = Number(readFileSync(rotated, 'utf8').trim());
  if (!Number.isInteger(answered) || requested !== answered) return true;
  const path = join(stateDir, FILE);
  return maxAgeDays > 0 && existsSync(path) && now - statSync(path).mtimeMs > maxAgeDays * 86_400_000;
}

/** Replaces the key pair (atomically, 0600) and records the request it answers; returns the new pair. */
export function rotateWireguardKey(stateDir: string, requested: number): { privateKey: string; publicKey: string } {
  makeKey(join(stateDir, FILE));
  writeFileAtomic(join(stateDir, ROTATED), `${requested}\n`, 0o600);
  return wireguardKey(stateDir);
}
