import { createHash } from 'node:crypto';
import { WeftError } from '../model/plain.js';
import { LAYOUT, UNITS } from './layout.js';

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

/** The files an install may make, as the target sees them: a manifest naming any other file is refused. */
export const OUR_FILES: readonly string[] = [
  LAYOUT.launcher, `${LAYOUT.unitDir}/${UNITS.server}`, `${LAYOUT.unitDir}/${UNITS.agent}`, LAYOUT.joinToken, `${LAYOUT.cniBinDir}/weft`,
];

/** The directories an install may make: the layout's and their parents (`/etc`, `/var/lib`, `/opt/cni`...). */
export const OUR_DIRS: readonly string[] = (() => {
  const dirs = [LAYOUT.configDir, LAYOUT.dataDir, LAYOUT.stateDir, LAYOUT.unitDir, LAYOUT.cniBinDir, LAYOUT.cniConfDir, ...OUR_FILES.map((f) => f.slice(0, f.lastIndexOf('/')))];
  const all = new Set<string>();
  for (const d of dirs) {
    const parts = d.split('/').filter(Boolean);
    for (let i = 1; i <= parts.length; i++) all.add(`/${parts.slice(0, i).join('/')}`);
  }
  return [...all];
})();

/**
 * The manifest's text, checked here once: uninstall removes what it names, so a malformed one removes
 * nothing, and one naming a path, a unit or a data dir outside the fixed layout is refused whole. Its
 * text is never quoted back (it may not be what install wrote); a refused path is named only once it
 * has parsed as one of the manifest's paths.
 */
export function parseManifest(text: string, where: string): Manifest {
  const bad = (why: string) => new WeftError('WEFT_INVALID_VALUE', `${where}: not a manifest of weft install (${why}); nothing removed`);
  let m: unknown;
  try {
    m = JSON.parse(text);
  } catch {
    throw bad('not JSON');
  }
  const o = m as Partial<Manifest> | null;
  const absolute = (p: unknown): p is string => typeof p === 'string' && p.startsWith('/') && !p.split('/').includes('..');
  const mode = (x: unknown) => typeof x === 'string' && /^0[0-7]{1,4}$/.test(x);
  const named = (p: unknown) => (typeof p === 'string' && /^\/[A-Za-z0-9._+@/-]{0,200}$/.test(p) ? p : 'a path that is not a plain one');
  if (!o || typeof o !== 'object' || typeof o.weft !== 'string') throw bad('no "weft" version');
  const units: readonly string[] = Object.values(UNITS);
  if (!Array.isArray(o.units) || !o.units.every((u) => typeof u === 'string' && units.includes(u))) throw bad(`"units" may name only ${units.join(' and ')}`);
  if (!Array.isArray(o.dirs) || !o.dirs.every((d) => absolute(d?.path) && mode(d?.mode))) throw bad('"dirs"');
  if (!Array.isArray(o.files) || !o.files.every((f) => absolute(f?.path) && mode(f?.mode) && /^[0-9a-f]{64}$/.test(String(f?.sha256)))) throw bad('"files"');
  const strayDir = o.dirs.find((d) => !OUR_DIRS.includes(d.path));
  if (strayDir) throw bad(`"dirs" names ${named(strayDir.path)}, which is not a directory of Weft's layout`);
  const strayFile = o.files.find((f) => !OUR_FILES.includes(f.path));
  if (strayFile) throw bad(`"files" names ${named(strayFile.path)}, which is not a file of Weft's layout`);
  // --purge removes these whole: only Weft's own two, whatever a manifest says.
  const purgeable: readonly string[] = [LAYOUT.dataDir, LAYOUT.stateDir];
  if (!Array.isArray(o.data) || !o.data.every((d) => purgeable.includes(d))) throw bad(`"data" may name only ${purgeable.join(' and ')}`);
  return { weft: o.weft, units: o.units, dirs: o.dirs, files: o.files, data: o.data };
}
