import { dirname, join } from 'node:path';
import { LAYOUT } from './layout.js';

/**
 * `/usr/local/bin/weft`: runs the package's dist/bin/weft.cjs, which is itself a program (its first line
 * execs `node` with the options each command wants; scripts/bundle-cli.mjs). It starts `node` by name,
 * so the directory of the node this was installed with goes first on PATH: under systemd, PATH has no
 * nvm or /opt directory. Paths are plain (plan.ts refuses others), so nothing here needs quoting.
 */
export function renderLauncher(packageDir: string, nodePath: string): string {
  return `#!/bin/sh
# weft: made by \`weft install --systemd\`, listed in ${LAYOUT.manifest}; \`weft uninstall\` removes it.
# Runs the weft package in ${packageDir} with the node in ${dirname(nodePath)}.
export PATH="${dirname(nodePath)}\${PATH:+:\$PATH}"
exec ${join(packageDir, 'dist', 'bin', 'weft.cjs')} "$@"
`;
}

/**
 * The CNI plugin `weft` as the agent itself writes it at every start (agent/installer.ts): the C relay if
 * the package has one, else this script running the Node relay. Byte for byte the same, so the agent's
 * rewrite leaves the file as install made it and uninstall still recognises it.
 */
export function renderCniRelayScript(distDir: string, nodePath: string): string {
  return `#!/bin/sh\nexec ${nodePath} ${join(distDir, 'bin', 'weft-cni.js')}\n`;
}
