import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync, renameSync, type BigIntStats } from 'node:fs';
import { join } from 'node:path';
import { ambiguousShortNames, conflistName, shortConflistName, type Group, type Network } from '../model/index.js';

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
  for (const g of groups) add(g.tenant, g.name, g.network, g.name);
  for (const n of networks) add(n.tenant, n.name, n.name);
  return out;
}

/** Files this agent writes (and may remove): `weft.*` and `weft-*` conflists whose plugin is `weft`. */
export function isWeftConflist(file: string, text: () => string): boolean {
  return (file.startsWith('weft.') || file.startsWith('weft-')) && file.endsWith('.conflist') && text().includes(`"type": "${PLUGIN_TYPE}"`);
}

/**
 * Each conflist as this agent last read or wrote it, with the file's identity then: a resync (every two
 * seconds) reads only the files that changed since, by inode, size and modification time in nanoseconds
 * (a pass over 500 networks read 500 files each time, ~40 ms).
 */
const lastSeen = new Map<string, { text: string; stat: BigIntStats }>();
const sameFile = (a: BigIntStats, b: BigIntStats) => a.ino === b.ino && a.size === b.size && a.mtimeNs === b.mtimeNs && a.ctimeNs === b.ctimeNs;

/**
 * Writes changed conflists atomically (temp file + rename, so a runtime never reads half a file) and
 * removes weft conflists that are no longer wanted. Files of other plugins are never touched.
 */
export function syncConflists(dir: string, wanted: ReadonlyMap<string, string>): { written: number; removed: number } {
  mkdirSync(dir, { recursive: true });
  let written = 0;
  let removed = 0;
  for (const [name, text] of wanted) {
    const file = join(dir, `${name}.conflist`);
    const seen = lastSeen.get(file);
    const st = statSync(file, { bigint: true, throwIfNoEntry: false });
    if (seen && st && seen.text === text && sameFile(seen.stat, st)) continue;
    let current: string | undefined;
    try {
      current = readFileSync(file, 'utf8');
    } catch {
      current = undefined;
    }
    if (current !== text) {
      writeFileSync(`${file}.tmp`, text, { mode: 0o644 });
      renameSync(`${file}.tmp`, file);
      written++;
    }
    const now = statSync(file, { bigint: true, throwIfNoEntry: false });
    if (now) lastSeen.set(file, { text, stat: now });
    else lastSeen.delete(file);
  }
  for (const f of readdirSync(dir)) {
    if (wanted.has(f.slice(0, -'.conflist'.length)) || !isWeftConflist(f, () => readFileSync(join(dir, f), 'utf8'))) continue;
    rmSync(join(dir, f), { force: true });
    lastSeen.delete(join(dir, f));
    removed++;
  }
  return { written, removed };
}
