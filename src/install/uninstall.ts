import { join } from 'node:path';
import type { Runner } from '../exec/index.js';
import { WeftError } from '../model/plain.js';
import { confine } from './confine.js';
import { nodeFs, type InstallFs } from './fs.js';
import { LAYOUT } from './layout.js';
import { parseManifest, sha256, type Manifest } from './manifest.js';
import { disableUnits, reloadUnits } from './systemd.js';

export interface UninstallOptions {
  root: string;
  /** Remove changed files too. */
  force?: boolean;
  /** Remove the data and state directories with everything in them. */
  purge?: boolean;
  fs?: InstallFs;
  /** The running systemd (root `/` only): the units are stopped and disabled first. */
  systemd?: Runner;
  /**
   * Content that is ours though install did not write it, by path (its sha256): the agent rewrites the
   * CNI plugin at every start from the package it runs, so after an upgrade the plugin is the new
   * package's relay, not a change of anyone's.
   */
  alsoOurs?: ReadonlyMap<string, string>;
}

/** What an uninstall does to each path of the manifest; `--dry-run` prints it. */
export interface UninstallPlan {
  manifest: Manifest;
  remove: string[];
  keep: Array<{ path: string; why: string }>;
  gone: string[];
  purge: string[];
  /** Directories install made, deepest first: each removed if it is empty by then. */
  dirs: string[];
}

export interface UninstallReport {
  removed: string[];
  kept: Array<{ path: string; why: string }>;
  stopped: string[];
  /** What systemctl said when it failed (units already gone, say): shown, not fatal. */
  problems: string[];
}

/**
 * The manifest below `root`: refused if the way to it leaves the root, or if it is a link, not a regular
 * file, or a file with other names (read with O_NOFOLLOW; its content is never quoted in an error).
 */
export function readManifest(root: string, fs: InstallFs = nodeFs): Manifest {
  const at = join(root, LAYOUT.manifest);
  confine(root, LAYOUT.manifest, 'weft uninstall');
  const e = fs.entry(at);
  if (!e) throw new WeftError('WEFT_NOT_FOUND', `nothing to uninstall: no ${at} (weft install writes it)`);
  if (e.kind !== 'file') throw new WeftError('WEFT_INVALID_VALUE', `${at} is ${e.kind === 'link' ? 'a symbolic link' : 'not a regular file'}, not the manifest weft install writes; nothing removed`);
  let text: string;
  try {
    text = fs.read(at).toString('utf8');
  } catch (err) {
    throw new WeftError('WEFT_INVALID_VALUE', `${at}: could not be read as the manifest weft install writes (${(err as NodeJS.ErrnoException).code ?? 'error'}); nothing removed`);
  }
  return parseManifest(text, at);
}

/** Decides, from the manifest and what is on disk now, what goes and what stays. Changes nothing. */
export function planUninstall(o: UninstallOptions): UninstallPlan {
  const fs = o.fs ?? nodeFs;
  const manifest = readManifest(o.root, fs);
  const plan: UninstallPlan = { manifest, remove: [], keep: [], gone: [], purge: o.purge ? manifest.data : [], dirs: [] };
  // Every path it names must stay below the root (checked before anything is removed, and again before each removal).
  for (const p of [...manifest.files.map((f) => f.path), ...manifest.dirs.map((d) => d.path), ...plan.purge]) confine(o.root, p, 'weft uninstall (nothing removed)');
  for (const f of manifest.files) {
    const at = join(o.root, f.path);
    const e = fs.entry(at);
    if (e === undefined) plan.gone.push(f.path);
    else if (e.kind !== 'file') plan.keep.push({ path: f.path, why: 'no longer a regular file' });
    else if (o.force || [f.sha256, o.alsoOurs?.get(f.path)].includes(hashOf(fs, at))) plan.remove.push(f.path);
    else plan.keep.push({ path: f.path, why: 'changed since weft install wrote it (--force removes it)' });
  }
  plan.dirs = manifest.dirs.map((d) => d.path).sort((a, b) => b.split('/').length - a.split('/').length);
  return plan;
}

/**
 * Takes an install back: stops and disables its units (root `/`), removes its files whose content is
 * unchanged, then the manifest, then (with --purge) the data and state directories, then every directory
 * install made that is empty by then. What stays is named, with why.
 */
export async function applyUninstall(o: UninstallOptions): Promise<UninstallReport> {
  const fs = o.fs ?? nodeFs;
  const plan = planUninstall(o);
  const report: UninstallReport = { removed: [], kept: [...plan.keep], stopped: [], problems: [] };
  if (o.systemd) {
    report.problems.push(...(await disableUnits(o.systemd, plan.manifest.units)));
    report.stopped.push(...plan.manifest.units);
  }
  for (const p of [...plan.remove, LAYOUT.manifest]) {
    confine(o.root, p, 'weft uninstall');
    fs.unlink(join(o.root, p));
    report.removed.push(p);
  }
  for (const p of plan.purge) {
    confine(o.root, p, 'weft uninstall');
    const e = fs.entry(join(o.root, p));
    if (!e) continue;
    if (e.kind !== 'dir') {
      report.kept.push({ path: p, why: 'not a directory (a link?): not purged' });
      continue;
    }
    fs.removeTree(join(o.root, p));
    report.removed.push(p);
  }
  const data: readonly string[] = plan.manifest.data;
  for (const p of plan.dirs) {
    const at = join(o.root, p);
    confine(o.root, p, 'weft uninstall');
    const e = fs.entry(at);
    if (e === undefined) continue;
    if (e.kind !== 'dir') {
      report.kept.push({ path: p, why: 'no longer a directory: left as it is' });
      continue;
    }
    if (fs.list(at).length === 0) {
      fs.rmdir(at);
      report.removed.push(p);
    } else {
      report.kept.push({ path: p, why: data.includes(p) ? 'holds data or state (--purge removes it)' : 'not empty' });
    }
  }
  if (o.systemd) report.problems.push(...(await reloadUnits(o.systemd)));
  return report;
}

/** A file's sha256, or undefined if it cannot be read as one regular file (a hard link to another, say): then it is kept. */
function hashOf(fs: InstallFs, at: string): string | undefined {
  try {
    return sha256(fs.read(at));
  } catch {
    return undefined;
  }
}
