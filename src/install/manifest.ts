import { createHash } from 'node:crypto';
import { WeftError } from '../model/plain.js';
import { LAYOUT } from './layout.js';

/**
 * /etc/weft/install.json: what an install made, so an uninstall removes exactly that. Paths as the target
 * system sees them (not prefixed by --root), so an image built with --root uninstalls on the machine.
 */
export interface Manifest {
  weft: string;
  units: string[];
  /** Directories the install made (they did not exist), parents first. */
  dirs: Array<{ path: string; mode: string }>;
  /** Every file written, with the sha256 of what was written: a file changed since is someone's edit. */
  files: Array<{ path: string; mode: string; sha256: string }>;
  /** Data and state directories: `--purge` removes them whole, whoever made them. */
  data: string[];
}

export const sha256 = (data: string | Uint8Array): string => createHash('sha256').update(data).digest('hex');

export const octal = (mode: number): string => `0${mode.toString(8)}`;

export function renderManifest(m: Manifest): string {
  return `${JSON.stringify(m, null, 2)}\n`;
}

/** The manifest's text, checked here once: uninstall removes what it names, so a malformed one removes nothing. */
export function parseManifest(text: string, where: string): Manifest {
  const bad = (why: string) => new WeftError('WEFT_INVALID_VALUE', `${where}: not a manifest of weft install (${why}); nothing removed`);
  let m: unknown;
  try {
    m = JSON.parse(text);
  } catch (e) {
    throw bad((e as Error).message);
  }
  const o = m as Partial<Manifest> | null;
  const absolute = (p: unknown): p is string => typeof p === 'string' && p.startsWith('/') && !p.split('/').includes('..');
  const mode = (x: unknown) => typeof x === 'string' && /^0[0-7]{1,4}$/.test(x);
  if (!o || typeof o !== 'object' || typeof o.weft !== 'string') throw bad('no "weft" version');
  if (!Array.isArray(o.units) || !o.units.every((u) => typeof u === 'string' && /^[a-z0-9@._-]+\.service$/.test(u))) throw bad('"units"');
  if (!Array.isArray(o.dirs) || !o.dirs.every((d) => absolute(d?.path) && mode(d?.mode))) throw bad('"dirs"');
  if (!Array.isArray(o.files) || !o.files.every((f) => absolute(f?.path) && mode(f?.mode) && /^[0-9a-f]{64}$/.test(String(f?.sha256)))) throw bad('"files"');
  // --purge removes these whole: only Weft's own two, whatever a manifest says.
  const purgeable: readonly string[] = [LAYOUT.dataDir, LAYOUT.stateDir];
  if (!Array.isArray(o.data) || !o.data.every((d) => purgeable.includes(d))) throw bad(`"data" may name only ${purgeable.join(' and ')}`);
  return { weft: o.weft, units: o.units, dirs: o.dirs, files: o.files, data: o.data };
}
