import { join } from 'node:path';
import { WeftError } from '../model/plain.js';
import { LAYOUT, UNITS } from './layout.js';
import { renderCniRelayScript, renderLauncher } from './scripts.js';
import { renderAgentUnit, renderServerUnit } from './units.js';

export interface Owner { uid: number; gid: number }

export interface PlannedDir {
  path: string;
  mode: number;
  owner: Owner;
  /** Data or state: what the services keep there stays on uninstall, unless --purge. */
  data?: true;
}

export interface PlannedFile {
  path: string;
  content: string | Uint8Array;
  mode: number;
  owner: Owner;
}

export interface InstallPlan {
  /** Parents before children. Missing parents of these are made 0755. */
  dirs: PlannedDir[];
  files: PlannedFile[];
  /** Units to enable and start, in start order. */
  units: string[];
  manifest: string;
}

/** Which services: both (the agent joins the server beside it), the server alone, or an agent joining `server`. */
export type InstallMode =
  | { kind: 'both'; listen: string }
  | { kind: 'server'; listen: string }
  | { kind: 'agent'; server: string; joinToken?: string };

export interface InstallOptions {
  /** The weft package's directory as the target system sees it (it holds dist/bin/weft.cjs). */
  packageDir: string;
  /** The node binary to run weft with (process.execPath of the installing weft). */
  nodePath: string;
  mode: InstallMode;
  /** The package's C relay (dist/weft-cni), if it was built: the agent installs that rather than the script. */
  cniRelay?: Uint8Array;
  /** /usr/local/bin/weft already runs this package (npm's link of a global install): no launcher is written. */
  launcherPresent?: boolean;
}

const ROOT: Owner = { uid: 0, gid: 0 };

/** Everything an install makes, for `apply.ts` to carry out or `--dry-run` to print. Pure. */
export function planInstall(o: InstallOptions): InstallPlan {
  checkPlain(o.packageDir, 'the package directory');
  checkPlain(o.nodePath, "node's path");
  for (const [what, p] of [['the package directory', o.packageDir], ["node's path", o.nodePath]] as const) {
    // The server's unit hides home directories (ProtectHome=yes): a package or node there would not run.
    if (/^\/(home|root|run\/user)(\/|$)/.test(p)) {
      throw new WeftError('WEFT_INVALID_VALUE', `${what} ${p} is under a home directory, which weft-server.service cannot see (ProtectHome=yes): install the package elsewhere (npm i -g) and run weft install from there`, { field: 'packageDir' });
    }
  }
  const server = o.mode.kind !== 'agent';
  const agent = o.mode.kind !== 'server';
  const dirs: PlannedDir[] = [
    { path: LAYOUT.configDir, mode: 0o700, owner: ROOT },
    { path: LAYOUT.dataDir, mode: 0o700, owner: ROOT, data: true },
    ...(agent ? [{ path: LAYOUT.stateDir, mode: 0o700, owner: ROOT, data: true as const }] : []),
    { path: LAYOUT.unitDir, mode: 0o755, owner: ROOT },
    ...(o.launcherPresent ? [] : [{ path: dirOf(LAYOUT.launcher), mode: 0o755, owner: ROOT }]),
    ...(agent ? [{ path: LAYOUT.cniBinDir, mode: 0o755, owner: ROOT }, { path: LAYOUT.cniConfDir, mode: 0o755, owner: ROOT }] : []),
  ];
  const files: PlannedFile[] = [];
  if (!o.launcherPresent) files.push({ path: LAYOUT.launcher, content: renderLauncher(o.packageDir, o.nodePath), mode: 0o755, owner: ROOT });
  if (o.mode.kind !== 'agent') files.push(unitFile(UNITS.server, renderServerUnit({ listen: checkListen(o.mode.listen) })));
  if (o.mode.kind === 'both') files.push(unitFile(UNITS.agent, renderAgentUnit({ kind: 'local', server: localUrl(o.mode.listen) })));
  if (o.mode.kind === 'agent') {
    const token = o.mode.joinToken === undefined ? undefined : checkToken(o.mode.joinToken);
    files.push(unitFile(UNITS.agent, renderAgentUnit({ kind: 'remote', server: checkServers(o.mode.server), ...(token !== undefined ? { joinFile: LAYOUT.joinToken } : {}) })));
    if (token !== undefined) files.push({ path: LAYOUT.joinToken, content: `${token}\n`, mode: 0o600, owner: ROOT });
  }
  if (agent) {
    const relay = o.cniRelay ?? renderCniRelayScript(join(o.packageDir, 'dist'), o.nodePath);
    files.push({ path: join(LAYOUT.cniBinDir, 'weft'), content: relay, mode: 0o755, owner: ROOT });
  }
  return { dirs, files, units: [...(server ? [UNITS.server] : []), ...(agent ? [UNITS.agent] : [])], manifest: LAYOUT.manifest };
}

function unitFile(name: string, content: string): PlannedFile {
  return { path: join(LAYOUT.unitDir, name), content, mode: 0o644, owner: ROOT };
}

const dirOf = (p: string) => p.slice(0, p.lastIndexOf('/'));

/**
 * Paths go into unit files (where `%`, quotes, `\` and spaces mean something) and into shell scripts the
 * agent also writes unquoted (agent/installer.ts): only plain absolute paths are accepted.
 */
function checkPlain(p: string, what: string): void {
  if (!/^\/[A-Za-z0-9._+@/-]*$/.test(p) || p.split('/').includes('..')) {
    throw new WeftError('WEFT_INVALID_VALUE', `${what} '${p}' must be an absolute path of letters, digits and . _ + @ - only (it goes into unit files and shell scripts unquoted)`, { field: 'packageDir' });
  }
}

/** HOST:PORT as `weft server --listen` takes it. */
function checkListen(listen: string): string {
  const m = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]*):(\d{1,5})$/.exec(listen);
  if (!m || Number(m[2]) < 1 || Number(m[2]) > 65535) {
    throw new WeftError('WEFT_INVALID_FIELD', `--listen: '${listen}' is not HOST:PORT (e.g. 0.0.0.0:9700)`, { field: '--listen' });
  }
  return listen;
}

/** How an agent on the server's host reaches it: a wildcard listen is reached on loopback (the certificate names it). */
export function localUrl(listen: string): string {
  const host = checkListen(listen).slice(0, listen.lastIndexOf(':'));
  const port = listen.slice(listen.lastIndexOf(':') + 1);
  const wildcard = host === '' || host === '0.0.0.0' || host === '[::]';
  return `https://${wildcard ? '127.0.0.1' : host}:${port}`;
}

function checkServers(servers: string): string {
  const list = servers.split(',');
  if (list.length === 0 || !list.every((s) => /^https:\/\/[A-Za-z0-9.:[\]-]+(:\d{1,5})?\/?$/.test(s))) {
    throw new WeftError('WEFT_INVALID_FIELD', `--server: '${servers}' is not https://HOST:PORT[,https://...]`, { field: '--server' });
  }
  return servers;
}

function checkToken(token: string): string {
  const t = token.trim();
  if (!/^[\x21-\x7e]{1,4096}$/.test(t)) throw new WeftError('WEFT_INVALID_FIELD', '--join: a join token is one word of printable characters (from `weft host add NAME`)', { field: '--join' });
  return t;
}
