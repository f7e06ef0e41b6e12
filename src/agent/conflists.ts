import { closeSync, fstatSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync, renameSync, type BigIntStats } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { NAME_PATTERN, ambiguousShortNames, conflistName, shortConflistName, type Group, type Network } from '../model/index.js';

const NAME = new RegExp(NAME_PATTERN);

export const CNI_VERSION = '1.0.0';
export const PLUGIN_TYPE = 'weft';

/**
 * One conflist per group, and one per network for containers outside any group, under the unambiguous
 * name `weft.<tenant>.<name>`, and under the short `weft-<tenant>-<name>` too while no other group or
 * network of any tenant has the same short name (model/conflists.ts).
 */
export function desiredConflists(networks: readonly Network[], groups: readonly Group[], agentSocket: string): Map<string, string> {
  const out = new Map<string, string>();
  const ambiguous = ambiguousShortNames([...groups, ...networks]);
  const add = (tenant: string, name: string, network: string, group?: string) => {
    const plugin = {
      type: PLUGIN_TYPE, tenant, network, ...(group ? { group } : {}), agentSocket,
      capabilities: { portMappings: true, ips: true, mac: true },
    };
    const short = shortConflistName(tenant, name);
    for (const listName of [conflistName(tenant, name), ...(ambiguous.has(short) ? [] : [short])]) {
      out.set(listName, `${JSON.stringify({ cniVersion: CNI_VERSION, name: listName, plugins: [plugin] }, null, 2)}\n`);
    }
  };
  // Names come from the server; one that is not a Weft name (a path separator, `..`) would name a file
  // outside the conf dir: left out, never written.
  const valid = (...xs: unknown[]) => xs.every((x) => typeof x === 'string' && NAME.test(x));
  for (const g of groups) if (valid(g.tenant, g.name, g.network)) add(g.tenant, g.name, g.network, g.name);
  for (const n of networks) if (valid(n.tenant, n.name)) add(n.tenant, n.name, n.name);
  return out;
}

/** Files this agent writes (and may remove): `weft.*` and `weft-*` conflists whose plugin is `weft`. */
export function isWeftConflist(file: string, text: () => string): boolean {
  return (file.startsWith('weft.') || file.startsWith('weft-')) && file.endsWith('.conflist') && text().includes(`"type": "${PLUGIN_TYPE}"`);
}

/**
 * Each conflist as this agent last read or wrote it, with the file's identity then (taken on the file it
 * read or wrote, not by name afterwards): a resync (every two seconds) reads only the files whose device,
 * inode, size, mtime or ctime changed since (a pass over 500 networks read 500 files each time, ~40 ms),
 * and every file again after REREAD_MS whatever its stat says (a kernel with coarse timestamps may keep
 * both times across an edit made within one tick of the agent's write).
 */
const lastSeen = new Map<string, { text: string; stat: BigIntStats; at: number }>();
const REREAD_MS = 60_000;
const sameFile = (a: BigIntStats, b: BigIntStats) => a.dev === b.dev && a.ino === b.ino && a.size === b.size && a.mtimeNs === b.mtimeNs && a.ctimeNs === b.ctimeNs;

/** A file's text and the identity of the file it came from, or undefined when there is none. */
function readWithStat(file: string): { text: string; stat: BigIntStats } | undefined {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch {
    return undefined;
  }
  try {
    return { stat: fstatSync(fd, { bigint: true }), text: readFileSync(fd, 'utf8') };
  } finally {
    closeSync(fd);
  }
}

/**
 * Writes changed conflists atomically (temp file + rename, so a runtime never reads half a file) and
 * removes weft conflists that are no longer wanted. Files of other plugins are never touched.
 */
export function syncConflists(dir: string, wanted: ReadonlyMap<string, string>): { written: number; removed: number } {
  mkdirSync(dir, { recursive: true });
  let written = 0;
  let removed = 0;
  const now = Date.now();
  for (const [name, text] of wanted) {
    const file = join(dir, `${name}.conflist`);
    const seen = lastSeen.get(file);
    const st = seen && now - seen.at < REREAD_MS ? statSync(file, { bigint: true, throwIfNoEntry: false }) : undefined;
    if (seen && st && seen.text === text && sameFile(seen.stat, st)) continue;
    lastSeen.delete(file);
    const current = readWithStat(file);
    if (current?.text === text) {
      lastSeen.set(file, { text, stat: current.stat, at: now });
      continue;
    }
    // Made anew (O_EXCL): whatever is at the temporary name (a symlink someone placed) is removed, never written through.
    rmSync(`${file}.tmp`, { force: true });
    const fd = openSync(`${file}.tmp`, 'wx', 0o644);
    let stat: BigIntStats;
    try {
      writeFileSync(fd, text);
      stat = fstatSync(fd, { bigint: true });
    } finally {
      closeSync(fd);
    }
    renameSync(`${file}.tmp`, file);
    written++;
    // The rename changed the file's ctime: the next pass reads it once more and keeps what it finds then.
    lastSeen.set(file, { text, stat, at: now });
  }
  const here = dirname(join(dir, 'x'));
  for (const file of lastSeen.keys()) {
    if (dirname(file) === here && !wanted.has(basename(file).slice(0, -'.conflist'.length))) lastSeen.delete(file);
  }
  for (const f of readdirSync(dir)) {
    if (wanted.has(f.slice(0, -'.conflist'.length)) || !isWeftConflist(f, () => readFileSync(join(dir, f), 'utf8'))) continue;
    rmSync(join(dir, f), { force: true });
    lastSeen.delete(join(dir, f));
    removed++;
  }
  return { written, removed };
}
