import { chmodSync, copyFileSync, existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Puts the relay where runtimes look for plugin `weft`: the C relay if it was built, else a script that
 * runs the Node one. Replaced atomically, so a runtime never executes half a file.
 */
export function installPlugin(cniBinDirs: readonly string[]): void {
  const dist = join(dirname(fileURLToPath(import.meta.url)), '..');
  const native = join(dist, 'weft-cni');
  for (const dir of cniBinDirs) {
    mkdirSync(dir, { recursive: true });
    const target = join(dir, 'weft');
    const tmp = `${target}.tmp-${process.pid}`;
    if (existsSync(native)) copyFileSync(native, tmp);
    else writeFileSync(tmp, `#!/bin/sh\nexec ${process.execPath} ${join(dist, 'bin', 'weft-cni.js')}\n`);
    chmodSync(tmp, 0o755);
    renameSync(tmp, target);
  }
}
