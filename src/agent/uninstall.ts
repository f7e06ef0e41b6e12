import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Datapath } from '../datapath/index.js';
import { PLUGIN_TYPE, isWeftConflist } from './conflists.js';

export interface UninstallOptions {
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
export async function uninstall(datapath: Datapath, o: UninstallOptions): Promise<string[]> {
  const done = await datapath.uninstall();
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
