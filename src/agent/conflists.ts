import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync, renameSync } from 'node:fs';
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
 * Writes changed conflists atomically (temp file + rename, so a runtime never reads half a file) and
 * removes weft conflists that are no longer wanted. Files of other plugins are never touched.
 */
export function syncConflists(dir: string, wanted: ReadonlyMap<string, string>): { written: number; removed: number } {
  mkdirSync(dir, { recursive: true });
  let written = 0;
  let removed = 0;
  for (const [name, text] of wanted) {
    const file = join(dir, `${name}.conflist`);
    let current: string | undefined;
    try {
      current = readFileSync(file, 'utf8');
    } catch {
      current = undefined;
    }
    if (current === text) continue;
    writeFileSync(`${file}.tmp`, text, { mode: 0o644 });
    renameSync(`${file}.tmp`, file);
    written++;
  }
  for (const f of readdirSync(dir)) {
    if (wanted.has(f.slice(0, -'.conflist'.length)) || !isWeftConflist(f, () => readFileSync(join(dir, f), 'utf8'))) continue;
    rmSync(join(dir, f), { force: true });
    removed++;
  }
  return { written, removed };
}
