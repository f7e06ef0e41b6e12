import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../pki/index.js';

const FILE = 'instance.id';

/**
 * This installation's random id, made once in the agent's state dir and sent with every registration:
 * the server refuses a second agent under a live host's name by it (a restart keeps the id; a new state
 * dir, as on a reinstalled or a different machine, makes a new one). Not a secret: it tells installations
 * apart, it proves nothing, which is what host certificates are for.
 */
export function agentInstance(stateDir: string): string {
  const path = join(stateDir, FILE);
  if (!existsSync(path)) {
    mkdirSync(stateDir, { recursive: true, mode: 0o700 });
    writeFileAtomic(path, `${randomBytes(16).toString('hex')}\n`, 0o600);
  }
  const id = readFileSync(path, 'utf8').trim();
  if (!/^[0-9a-f]{32}$/.test(id)) throw new Error(`${path}: not an agent instance id (32 hex digits); remove it to make a new one`);
  return id;
}
