import { closeSync, constants, fchmodSync, fchownSync, fstatSync, lstatSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmdirSync, rmSync, statSync, unlinkSync, writeSync } from 'node:fs';

/**
 * What a path is, without following a link (a link where a file was written is not that file); for a
 * link, what it leads to.
 */
export interface Entry { kind: 'file' | 'dir' | 'link' | 'other'; mode: number; uid: number; leadsToDir?: boolean }

/**
 * The file operations an install and an uninstall use, as a port: tests wrap it to fail midway and
 * check that nothing is left. Synchronous: a CLI run that does a few dozen of them, in order.
 */
export interface InstallFs {
  entry(path: string): Entry | undefined;
  read(path: string): Buffer;
  /**
   * Creates `path`, which must not exist (O_CREAT|O_EXCL|O_NOFOLLOW: a file or link planted there is an
   * error, never written through), with `mode` (not reduced by the umask) and, given, `owner`: both set
   * through the open descriptor, so nothing put at `path` meanwhile is changed.
   */
  write(path: string, data: string | Uint8Array, mode: number, owner?: { uid: number; gid: number }): void;
  rename(from: string, to: string): void;
  unlink(path: string): void;
  /** One directory, its parent existing; `mode` exactly and, given, `owner` (set through a descriptor opened without following a link). */
  mkdir(path: string, mode: number, owner?: { uid: number; gid: number }): void;
  rmdir(path: string): void;
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

/**
 * A regular file's content, read without following a link at `path` (ELOOP) and without blocking on a
 * FIFO; anything but a regular file with one name is refused, saying what it is and never what it holds.
 */
export function readNoFollow(path: string): Buffer {
  const fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  try {
    const s = fstatSync(fd);
    if (!s.isFile()) throw Object.assign(new Error(`${path} is not a regular file`), { code: 'EINVAL' });
    if (s.nlink !== 1) throw Object.assign(new Error(`${path} has ${s.nlink} names (a hard link): not read`), { code: 'EINVAL' });
    return readFileSync(fd);
  } finally {
    closeSync(fd);
  }
}

export const nodeFs: InstallFs = {
  entry(path) {
    try {
      const s = lstatSync(path);
      const kind = s.isSymbolicLink() ? 'link' : s.isDirectory() ? 'dir' : s.isFile() ? 'file' : 'other';
      return { kind, mode: s.mode & 0o7777, uid: s.uid, ...(kind === 'link' ? { leadsToDir: leadsToDir(path) } : {}) };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
  },
  read: (path) => readNoFollow(path),
  write(path, data, mode, owner) {
    const fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
    try {
      fchmodSync(fd, 0o600);
      if (owner) fchownSync(fd, owner.uid, owner.gid);
      const buf = typeof data === 'string' ? Buffer.from(data) : data;
      for (let off = 0; off < buf.length;) off += writeSync(fd, buf, off, buf.length - off);
      // The mode last: a set-id or wider mode only once the owner and content are the planned ones.
      fchmodSync(fd, mode);
    } finally {
      closeSync(fd);
    }
  },
  rename: (from, to) => renameSync(from, to),
  unlink: (path) => unlinkSync(path),
  mkdir(path, mode, owner) {
    mkdirSync(path, { mode: 0o700 });
    try {
      const fd = openSync(path, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
      try {
        if (owner) fchownSync(fd, owner.uid, owner.gid);
        fchmodSync(fd, mode);
      } finally {
        closeSync(fd);
      }
    } catch (e) {
      // Not made, as far as the caller knows: nothing left behind.
      rmdirSync(path);
      throw e;
    }
  },
  rmdir: (path) => rmdirSync(path),
  list: (path) => readdirSync(path),
  removeTree: (path) => rmSync(path, { recursive: true, force: true }),
};
