import { lstatSync, readdirSync, realpathSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { WeftError } from '../model/plain.js';

/**
 * The units run the package's dist/bin/weft.cjs and node by path, as root, at every boot: whoever can
 * change either, or any directory on the way to them, becomes root. So (as sshd's StrictModes) each
 * component of those paths, and of the paths their links lead to, must belong to root and be writable
 * by no group and no one else (a link itself has no mode of its own: it counts by its owner and what it
 * leads to). `trustedUids` is root's only, outside tests: a test running without root passes its own
 * uid (never from the command line).
 */
export interface TrustOptions { trustedUids?: readonly number[] }

/** The paths whose owners and modes are checked for a package in `packageDir` run by `nodePath`: node, and the package's whole tree (its node_modules too: all of it is loaded as root). */
export function trustedPaths(packageDir: string, nodePath: string): { files: string[]; trees: string[] } {
  return { files: [join(packageDir, 'dist', 'bin', 'weft.cjs'), nodePath], trees: [packageDir] };
}

/** Throws, naming the first path anyone but a trusted uid could change, and its owner or mode. */
export function checkTrusted(paths: { files: readonly string[]; trees?: readonly string[] }, o: TrustOptions = {}): void {
  const trusted = o.trustedUids ?? [0];
  const seen = new Set<string>();
  const refuse = (at: string, why: string, runs: string) => new WeftError('WEFT_INVALID_VALUE', `weft install: ${at} ${why}: the units would run ${runs} as root at every boot, so whoever can change ${at} would become root; every directory up to / and the files themselves must be root's and writable by no group or other user (chown root, chmod go-w), or install the package where they are (npm i -g as root)`, { field: 'packageDir' });
  const judge = (at: string, runs: string, above = false): boolean => {
    const s = lstatSync(at);
    // A sticky directory (/tmp, 1777) above the package or node is no hole: others may add entries to it,
    // never rename or remove root's, so a root-owned, unwritable path below it stays root's (the next
    // component is judged). Inside the package it is one: what others add there could be loaded.
    const sticky = above && s.isDirectory() && (s.mode & 0o1000) !== 0;
    const why = !trusted.includes(s.uid) ? `is owned by uid ${s.uid}` : !s.isSymbolicLink() && !sticky && (s.mode & 0o022) !== 0 ? `has mode ${(s.mode & 0o7777).toString(8).padStart(4, '0')} (writable by its group or by everyone)` : undefined;
    if (why !== undefined) throw refuse(at, why, runs);
    return s.isSymbolicLink();
  };
  /** `p` and every directory above it; a link on the way, also where it leads. */
  const chain = (p: string, runs: string): void => {
    for (let at = p; ; at = dirname(at)) {
      if (!seen.has(at)) {
        seen.add(at);
        if (judge(at, runs, at !== p)) chain(realpathSync(at), runs);
      }
      if (at === '/') return;
    }
  };
  const walked = new Set<string>();
  /** Everything below `dir`, links followed to where they lead (once). */
  const tree = (dir: string, runs: string): void => {
    const real = realpathSync(dir);
    if (walked.has(real)) return;
    walked.add(real);
    chain(dir, runs);
    if (real !== dir) chain(real, runs);
    const walk = (d: string): void => {
      for (const e of readdirSync(d, { withFileTypes: true })) {
        const at = join(d, e.name);
        if (judge(at, runs)) {
          const to = realpathSync(at);
          chain(to, runs);
          if (statSync(to).isDirectory()) tree(to, runs);
        } else if (e.isDirectory()) walk(at);
      }
    };
    walk(real);
  };
  for (const t of paths.trees ?? []) tree(t, `the package in ${t}`);
  for (const p of paths.files) chain(p, p);
}
