import { createPrivateKey, createPublicKey, generateKeyPairSync } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../pki/index.js';

const FILE = 'wireguard.key';

/** base64url (JWK) to the standard base64 that WireGuard tools read and print. */
const b64 = (url: string) => Buffer.from(url, 'base64url').toString('base64');

/**
 * This host's WireGuard key pair (X25519), made once in the agent's state dir (0600) and kept across
 * restarts; the private half never leaves the file, the public half goes into the host's registration so
 * the other hosts can make it their peer. Returns both as WireGuard writes them (base64 of 32 bytes).
 */
export function wireguardKey(stateDir: string): { privateKey: string; publicKey: string } {
  const path = join(stateDir, FILE);
  if (!existsSync(path)) {
    const { privateKey } = generateKeyPairSync('x25519');
    writeFileAtomic(path, `${b64(privateKey.export({ format: 'jwk' }).d as string)}\n`, 0o600);
  }
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
