import { randomBytes } from 'node:crypto';
import { closeSync, fchmodSync, fsyncSync, linkSync, openSync, renameSync, rmSync, writeFileSync } from 'node:fs';

/**
 * A temporary file of this writer's own, on disk: a fresh random name made with O_EXCL, so nothing
 * standing there (a symlink someone placed) is written through, and a second process writing the same
 * file at the same moment neither removes it nor fails on it (EEXIST, ENOENT at the rename).
 */
function writeTemporary(path: string, text: string, mode: number): string {
  const tmp = `${path}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  const fd = openSync(tmp, 'wx', mode);
  try {
    writeFileSync(fd, text);
    fchmodSync(fd, mode);
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw e;
  }
  closeSync(fd);
  return tmp;
}

/**
 * Writes a key or certificate file whole or not at all (a temporary file renamed over it), with `mode`
 * set even where the file existed with another (writeFileSync's mode applies only to new files). Two
 * writers at once: each file is whole, the last rename wins.
 */
export function writeFileAtomic(path: string, text: string, mode: number): void {
  const tmp = writeTemporary(path, text, mode);
  try {
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}

/**
 * Writes `path` whole only if nothing is there (link(2) never replaces): false when another writer's file
 * stood or came first, which the caller then reads (two agents starting at once agree on one key).
 */
export function writeFileIfAbsent(path: string, text: string, mode: number): boolean {
  const tmp = writeTemporary(path, text, mode);
  try {
    linkSync(tmp, path);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw e;
  } finally {
    rmSync(tmp, { force: true });
  }
}
