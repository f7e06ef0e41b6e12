import { randomBytes } from 'node:crypto';
import { basename, dirname, join } from 'node:path';
import type { Runner } from '../exec/index.js';
import { WeftError } from '../model/plain.js';
import { confine, escapes } from './confine.js';
import { nodeFs, type Entry, type InstallFs } from './fs.js';
import { octal, parseManifest, renderManifest, sha256, type Manifest } from './manifest.js';
import type { InstallPlan, Owner } from './plan.js';
import { disableUnits, enableUnits, reloadUnits } from './systemd.js';

export interface ApplyOptions {
  /** Absolute; `/` is this system. */
  root: string;
  /** Recorded in the manifest. */
  version: string;
  /** Overwrite regular files in the way, and install over an earlier install. */
  force?: boolean;
  fs?: InstallFs;
  /** The running systemd (root `/` only): the units are enabled and started once written. */
  systemd?: Runner;
  /** Give made paths their planned owner (only root can). */
  chown?: boolean;
}

export interface InstallCheck {
  /** Files that exist and were not made by this install: refused without --force. */
  conflicts: string[];
  /** In the way even with --force: a directory where a file goes, a file or link where a directory goes. */
  blocked: string[];
  /** An earlier install's manifest, if there is one. */
  previous?: Manifest;
  notes: string[];
}

export interface InstallReport { made: string[]; notes: string[]; started: string[] }

/** Undo steps, newest last: what this run made, and what it replaced (with --force). */
type Done = { kind: 'dir' | 'file'; at: string } | { kind: 'replaced'; at: string; content: Buffer; mode: number };

/** What carrying out `plan` under `o.root` would meet; changes nothing (also `--dry-run`'s answer). */
export function checkInstall(plan: InstallPlan, o: ApplyOptions): InstallCheck {
  const fs = o.fs ?? nodeFs;
  const at = (p: string) => join(o.root, p);
  const check: InstallCheck = { conflicts: [], blocked: [], notes: [] };
  // Under --root, nothing on the way to a planned path may lead out of the root (DIR/etc → /etc).
  const outside = new Set<string>();
  for (const p of [...plan.dirs.map((d) => d.path), ...plan.files.map((f) => f.path), plan.manifest]) {
    const why = escapes(o.root, p);
    if (why !== undefined && !outside.has(why)) outside.add(why);
  }
  if (outside.size) {
    check.blocked.push(...outside);
    return check;
  }
  const manifest = fs.entry(at(plan.manifest));
  if (manifest?.kind === 'file') {
    check.previous = parseManifest(fs.read(at(plan.manifest)).toString('utf8'), at(plan.manifest));
    if (!o.force) check.conflicts.push(plan.manifest);
  } else if (manifest) check.blocked.push(`${plan.manifest} (${what(manifest)} where the manifest goes)`);
  // Who the directories for secrets (join token, keys, the CA) must belong to: root, or (an install by
  // someone else under --root, which cannot give files away) the installing user.
  const owner = o.chown ? 0 : (process.getuid?.() ?? 0);
  const seen = new Set<string>();
  for (const d of plan.dirs) {
    for (const p of [...ancestors(d.path), d.path]) {
      const e = fs.entry(at(p));
      if (e === undefined || seen.has(p)) continue;
      seen.add(p);
      // Under another root an absolute link leads out of it, onto this machine: never followed there.
      const isDir = e.kind === 'dir' || (e.kind === 'link' && e.leadsToDir === true && o.root === '/');
      if (!isDir) check.blocked.push(`${p} (${what(e)} where a directory goes)`);
      else if (p === d.path && d.mode === 0o700 && (e.kind !== 'dir' || (e.mode & 0o077) !== 0 || e.uid !== owner)) {
        check.blocked.push(`${p} (exists with mode ${octal(e.mode)} and owner uid ${e.uid}; it holds secrets, so it must be uid ${owner}'s and 0700: chown ${owner} and chmod 700 it, or move it away)`);
      } else if (p === d.path && e.kind === 'dir' && e.mode !== d.mode) check.notes.push(`${p} exists with mode ${octal(e.mode)} (planned ${octal(d.mode)}): left as it is`);
    }
  }
  for (const f of plan.files) {
    const e = fs.entry(at(f.path));
    if (e === undefined) continue;
    if (e.kind !== 'file') check.blocked.push(`${f.path} (${what(e)} where a file goes)`);
    else if (!o.force) check.conflicts.push(f.path);
  }
  return check;
}

/**
 * Carries `plan` out under `o.root`: directories (missing parents 0755), files (each written beside its
 * place and renamed there, so none is ever half-written), then the manifest; with `o.systemd`, enables and
 * starts the units. Any failure undoes everything this run did, newest first, and reports what could
 * not be undone.
 */
export async function applyInstall(plan: InstallPlan, o: ApplyOptions): Promise<InstallReport> {
  const fs = o.fs ?? nodeFs;
  const check = checkInstall(plan, o);
  refuseConflicts(check, o.root);
  const done: Done[] = [];
  const dirs: string[] = [];
  try {
    for (const d of plan.dirs) dirs.push(...makeDirs(fs, o, d.path, d.mode, d.owner, done));
    for (const f of plan.files) writeFile(fs, o, f.path, f.content, f.mode, f.owner, done);
    const manifest = manifestOf(plan, o.version, dirs, check.previous, fs, o.root);
    writeFile(fs, o, plan.manifest, renderManifest(manifest), 0o600, ROOT, done);
  } catch (e) {
    throw failed(`writing under ${o.root} failed: ${(e as Error).message}`, undo(fs, done), e);
  }
  if (o.systemd) {
    try {
      await enableUnits(o.systemd, plan.units);
    } catch (e) {
      const left = [...(await disableUnits(o.systemd, plan.units)), ...undo(fs, done), ...(await reloadUnits(o.systemd))];
      throw failed(`starting ${plan.units.join(', ')} failed: ${(e as Error).message}`, left, e);
    }
  }
  return { made: [...dirs, ...plan.files.map((f) => f.path), plan.manifest], notes: check.notes, started: o.systemd ? plan.units : [] };
}

const ROOT: Owner = { uid: 0, gid: 0 };

function refuseConflicts(check: InstallCheck, root: string): void {
  const where = root === '/' ? '' : ` under ${root}`;
  if (check.blocked.length) throw new WeftError('WEFT_EXISTS', `in the way${where}: ${check.blocked.join('; ')}; nothing was changed`);
  if (check.previous && check.conflicts.length) {
    throw new WeftError('WEFT_EXISTS', `Weft is already installed${where} (${check.conflicts[0]}): \`weft uninstall\` first, or --force to install over it; nothing was changed`);
  }
  if (check.conflicts.length) {
    throw new WeftError('WEFT_EXISTS', `these exist${where} and were not made by weft install: ${check.conflicts.join(', ')}; move them away or give --force to overwrite them; nothing was changed`);
  }
}

function makeDirs(fs: InstallFs, o: ApplyOptions, path: string, mode: number, owner: Owner, done: Done[]): string[] {
  const made: string[] = [];
  for (const p of [...ancestors(path), path]) {
    const at = join(o.root, p);
    confine(o.root, p, 'weft install');
    if (fs.entry(at)) continue;
    fs.mkdir(at, p === path ? mode : 0o755, o.chown ? owner : undefined);
    done.push({ kind: 'dir', at });
    made.push(p);
  }
  return made;
}

function writeFile(fs: InstallFs, o: ApplyOptions, path: string, content: string | Uint8Array, mode: number, owner: Owner, done: Done[]): void {
  const at = join(o.root, path);
  confine(o.root, path, 'weft install');
  const old = fs.entry(at);
  // Only with --force (checkInstall refused it otherwise): kept to be put back if this run fails.
  if (old) done.push({ kind: 'replaced', at, content: fs.read(at), mode: old.mode });
  place(fs, at, content, mode, o.chown ? owner : undefined, done);
  if (!old) done.push({ kind: 'file', at });
}

/**
 * Writes a new file beside `at` under a name no one can guess (created exclusively, never through a
 * link planted there), then renames it onto `at`: so no file is ever half-written, and a link at `at`
 * is replaced, not followed.
 */
function place(fs: InstallFs, at: string, content: string | Uint8Array, mode: number, owner: Owner | undefined, done: Done[]): void {
  const tmp = join(dirname(at), `.${basename(at)}.weft-install-${randomBytes(8).toString('hex')}`);
  done.push({ kind: 'file', at: tmp });
  fs.write(tmp, content, mode, owner);
  fs.rename(tmp, at);
  done.pop();
}

/** This run's paths, and (over an earlier install, with --force) what that one made and this one did not replace. */
function manifestOf(plan: InstallPlan, version: string, madeDirs: readonly string[], previous: Manifest | undefined, fs: InstallFs, root: string): Manifest {
  const planned = new Map(plan.dirs.map((d) => [d.path, d.mode]));
  const dirs = madeDirs.map((p) => ({ path: p, mode: octal(planned.get(p) ?? 0o755) }));
  const files = plan.files.map((f) => ({ path: f.path, mode: octal(f.mode), sha256: sha256(f.content) }));
  for (const d of previous?.dirs ?? []) if (!dirs.some((x) => x.path === d.path) && fs.entry(join(root, d.path))) dirs.push(d);
  for (const f of previous?.files ?? []) if (!files.some((x) => x.path === f.path)) files.push(f);
  dirs.sort((a, b) => depth(a.path) - depth(b.path));
  const units = [...new Set([...plan.units, ...(previous?.units ?? [])])];
  return { weft: version, units, dirs, files, data: plan.dirs.filter((d) => d.data).map((d) => d.path) };
}

/** Undoes `done`, newest first; returns what could not be undone (and empties `done`). */
function undo(fs: InstallFs, done: Done[]): string[] {
  const left: string[] = [];
  for (const d of done.splice(0).reverse()) {
    try {
      if (d.kind === 'replaced') place(fs, d.at, d.content, d.mode, undefined, []);
      else if (d.kind === 'dir') fs.rmdir(d.at);
      else if (fs.entry(d.at)) fs.unlink(d.at);
    } catch (e) {
      left.push(`${d.at}: ${(e as Error).message}`);
    }
  }
  return left;
}

function failed(what: string, left: readonly string[], cause: unknown): WeftError {
  const undone = left.length ? `; could NOT undo: ${left.join('; ')}` : '; everything this run made was removed again';
  return new WeftError('WEFT_INTERNAL', `weft install: ${what}${undone}`, { cause });
}

/** `/var/lib/weft` → `/var`, `/var/lib`. */
export function ancestors(path: string): string[] {
  const parts = path.split('/').filter(Boolean);
  return parts.slice(0, -1).map((_, i) => `/${parts.slice(0, i + 1).join('/')}`);
}

const depth = (p: string) => p.split('/').length;

function what(e: Entry): string {
  return e.kind === 'link' ? 'a symbolic link' : e.kind === 'dir' ? 'a directory' : e.kind === 'file' ? 'a file' : 'a special file';
}
