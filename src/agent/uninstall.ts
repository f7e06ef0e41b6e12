import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Runner } from '../exec/index.js';
import { HOST_TABLE, NETNS_DIR, names } from '../datapath/index.js';
import { PLUGIN_TYPE, isWeftConflist } from './conflists.js';

export interface UninstallOptions {
  nsPrefix: string;
  cniConfDir: string;
  cniBinDirs: string[];
  runDir: string;
  /** The Docker plugin socket, left behind if the agent was killed. */
  dockerSocket?: string;
}

/**
 * Removes what an agent built on this host: its tenant namespaces (and with them every bridge, veth and
 * table inside), their uplinks, the host table (NAT and filter), Weft's conflists and plugin binaries, and the run
 * directory, and the Docker plugin socket. Run it with the agent stopped; containers wired through Weft lose their network.
 */
export async function uninstall(runner: Runner, o: UninstallOptions): Promise<string[]> {
  const done: string[] = [];
  const pattern = new RegExp(`^${o.nsPrefix.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}t([0-9]+)$`);
  for (const ns of existsSync(NETNS_DIR) ? readdirSync(NETNS_DIR) : []) {
    const m = pattern.exec(ns);
    if (!m) continue;
    await runner.run(['ip', 'link', 'del', names.uplinkHost(Number(m[1]))], { allowFailure: true });
    await runner.run(['ip', 'netns', 'del', ns], { allowFailure: true });
    done.push(`namespace ${ns}`);
  }
  // inet: the host table; ip: where it lived before it filtered (an agent of that version never ran since).
  for (const family of ['inet', 'ip']) {
    if ((await runner.run(['nft', 'delete', 'table', family, HOST_TABLE], { allowFailure: true })).code === 0) done.push(`nft table ${family} ${HOST_TABLE}`);
  }
  for (const f of existsSync(o.cniConfDir) ? readdirSync(o.cniConfDir) : []) {
    const file = join(o.cniConfDir, f);
    if (isWeftConflist(f, () => readFileSync(file, 'utf8'))) {
      rmSync(file, { force: true });
      done.push(file);
    }
  }
  for (const d of o.cniBinDirs) {
    const file = join(d, PLUGIN_TYPE);
    if (existsSync(file)) {
      rmSync(file, { force: true });
      done.push(file);
    }
  }
  if (o.dockerSocket && existsSync(o.dockerSocket)) {
    rmSync(o.dockerSocket, { force: true });
    done.push(o.dockerSocket);
  }
  if (existsSync(o.runDir)) {
    rmSync(o.runDir, { recursive: true, force: true });
    done.push(o.runDir);
  }
  return done;
}
