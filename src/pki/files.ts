import { chmodSync, renameSync, writeFileSync } from 'node:fs';

/**
 * Writes a key or certificate file whole or not at all (a temporary file renamed over it), with `mode`
 * set even where the file existed with another (writeFileSync's mode applies only to new files).
 */
export function writeFileAtomic(path: string, text: string, mode: number): void {
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, text, { mode });
  chmodSync(tmp, mode);
  renameSync(tmp, path);
}
