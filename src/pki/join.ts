import { randomBytes } from 'node:crypto';
import { WeftError } from '../model/index.js';

/**
 * A join token: `weftjoin1.<CA sha256 hex>.<host name>.<secret>`. The CA digest lets the joining agent
 * check it talks to the right server before it sends anything (Swarm's and kubeadm's pin); the host name
 * binds the token to the one host it was made for; the secret (32 random bytes) is stored only hashed.
 */
export interface JoinToken { caHash: string; host: string; secret: string }

const PATTERN = /^weftjoin1\.([0-9a-f]{64})\.([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)\.([A-Za-z0-9_-]{43})$/;

export function newJoinSecret(): string {
  return randomBytes(32).toString('base64url');
}

export function formatJoinToken(t: JoinToken): string {
  return `weftjoin1.${t.caHash.replace(/^sha256:/, '')}.${t.host}.${t.secret}`;
}

/** Parses a join token; `field` names where it came from (`--join`, `token`) in the error. */
export function parseJoinToken(text: string, field = 'token'): JoinToken {
  const m = PATTERN.exec(text.trim());
  if (!m) throw new WeftError('WEFT_INVALID_FIELD', `${field}: not a Weft join token (weftjoin1.<CA hash>.<host>.<secret>, from \`weft host add NAME\`)`, { field });
  return { caHash: `sha256:${m[1]}`, host: m[2] as string, secret: m[4] as string };
}
