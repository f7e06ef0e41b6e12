import { closeSync, fchmodSync, fsyncSync, openSync, renameSync, rmSync, writeFileSync } from 'node:fs';

/**
 * Writes a key or certificate file whole or not at all (a temporary file renamed over it), with `mode`
 * set even where the file existed with another (writeFileSync's mode applies only to new files).
 */
export function writeFileAtomic(path: string, text: string, mode: number): void {
  const tmp = `${path}.tmp`;
  // Made anew (O_EXCL): whatever stands at the temporary name (a symlink someone placed) is removed, never
  // written through; on disk before the rename, so a power loss leaves the old file or the new one whole.
  rmSync(tmp, { force: true });
  const fd = openSync(tmp, 'wx', mode);
  try {
    writeFileSync(fd, text);
    fchmodSync(fd, mode);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}
