import { lstatSync, realpathSync, statSync } from 'node:fs';
import { join, sep } from 'node:path';
import { WeftError } from '../model/plain.js';

/**
 * Under `--root DIR`, a path of the layout must stay below DIR: a directory on the way that is (or leads
 * through) a symbolic link out of DIR would make root write, read or remove the host's own files
 * (`DIR/etc` → `/etc`). Links inside DIR that stay inside it are followed, as the target system would.
 * `/` is its own root: nothing leaves it.
 *
 * This is checked when a plan is checked, and again just before every change (narrowing, not closing,
 * the window in which whoever owns DIR could swap a directory for a link: Node has no openat()).
 */

/** Why `path` (as the target sees it) is not confined to `root`, or undefined if it is. Ancestors only: the last component is the caller's (it must be a file or a directory, never a link). */
export function escapes(root: string, path: string): string | undefined {
  if (root === '/') return undefined;
  const realRoot = realpathSync(root);
  const parts = path.split('/').filter(Boolean);
  for (let i = 1; i < parts.length; i++) {
    const p = `/${parts.slice(0, i).join('/')}`;
    const at = join(root, p);
    let link: boolean;
    try {
      link = lstatSync(at).isSymbolicLink();
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
    let real: string;
    try {
      real = realpathSync(at);
    } catch {
      return `${p} is a symbolic link that leads nowhere`;
    }
    if (real !== realRoot && !real.startsWith(realRoot + sep)) return `${p} ${link ? 'is a symbolic link' : 'leads'} out of ${root} (to ${real})`;
    if (!statSync(at).isDirectory()) return `${p} is not a directory`;
  }
  return undefined;
}

/** Throws unless `path` stays below `root` (see escapes). */
export function confine(root: string, path: string, verb: string): void {
  const why = escapes(root, path);
  if (why !== undefined) throw new WeftError('WEFT_INVALID_VALUE', `${verb}: refused ${path}: ${why}; a --root install never writes, reads or removes outside its root`);
}
