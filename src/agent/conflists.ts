import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import type { Group, Network } from '../model/index.js';

export const CNI_VERSION = '1.0.0';
export const PLUGIN_TYPE = 'weft';

/** One conflist per group, and one per network for containers outside any group: `weft-<tenant>-<name>`. */
export function desiredConflists(networks: readonly Network[], groups: readonly Group[], agentSocket: string): Map<string, string> {
  const out = new Map<string, string>();
  const add = (tenant: string, name: string, network: string, group?: string) => {
    const listName = `weft-${tenant}-${name}`;
    if (out.has(listName)) return; // tenant "a-b"/group "c" and tenant "a"/group "b-c" collide: first wins
    const plugin = {
      type: PLUGIN_TYPE, tenant, network, ...(group ? { group } : {}), agentSocket,
      capabilities: { portMappings: true, ips: true, mac: true },
    };
    out.set(listName, `${JSON.stringify({ cniVersion: CNI_VERSION, name: listName, plugins: [plugin] }, null, 2)}\n`);
  };
  for (const g of groups) add(g.tenant, g.name, g.network, g.name);
  for (const n of networks) add(n.tenant, n.name, n.name);
  return out;
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
    if (!f.startsWith('weft-') || !f.endsWith('.conflist') || wanted.has(f.slice(0, -'.conflist'.length))) continue;
    const text = readFileSync(join(dir, f), 'utf8');
    if (!text.includes(`"type": "${PLUGIN_TYPE}"`)) continue;
    rmSync(join(dir, f), { force: true });
    removed++;
  }
  return { written, removed };
}
