import { chmodSync, chownSync, lstatSync, mkdirSync, readdirSync, readFileSync, renameSync, rmdirSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';

/**
 * What a path is, without following a link (a link where a file was written is not that file); for a
 * link, what it leads to.
 */
export interface Entry { kind: 'file' | 'dir' | 'link' | 'other'; mode: number; leadsToDir?: boolean }

/**
 * The file operations an install and an uninstall use, as a port: tests wrap it to fail midway and
 * check that nothing is left. Synchronous: a CLI run that does a few dozen of them, in order.
 */
export interface InstallFs {
  entry(path: string): Entry | undefined;
  read(path: string): Buffer;
  /** Creates or truncates `path` with `mode` (not reduced by the umask). */
  write(path: string, data: string | Uint8Array, mode: number): void;
  rename(from: string, to: string): void;
  unlink(path: string): void;
  /** One directory, its parent existing; `mode` exactly. */
  mkdir(path: string, mode: number): void;
  rmdir(path: string): void;
  chown(path: string, uid: number, gid: number): void;
  list(path: string): string[];
  removeTree(path: string): void;
}

function leadsToDir(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

export const nodeFs: InstallFs = {
  entry(path) {
    try {
      const s = lstatSync(path);
      const kind = s.isSymbolicLink() ? 'link' : s.isDirectory() ? 'dir' : s.isFile() ? 'file' : 'other';
      return { kind, mode: s.mode & 0o7777, ...(kind === 'link' ? { leadsToDir: leadsToDir(path) } : {}) };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
  },
  read: (path) => readFileSync(path),
  write(path, data, mode) {
    writeFileSync(path, data, { mode });
    chmodSync(path, mode);
  },
  rename: (from, to) => renameSync(from, to),
  unlink: (path) => unlinkSync(path),
  mkdir(path, mode) {
    mkdirSync(path, { mode });
    chmodSync(path, mode);
  },
  rmdir: (path) => rmdirSync(path),
  chown: (path, uid, gid) => chownSync(path, uid, gid),
  list: (path) => readdirSync(path),
  removeTree: (path) => rmSync(path, { recursive: true, force: true }),
};
