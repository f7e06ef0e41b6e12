import type { Command } from 'commander';
import { existsSync, lstatSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ProcessRunner, type Runner } from '../../exec/index.js';
import {
  DEFAULT_LISTEN, LAYOUT, UNITS, applyInstall, applyUninstall, checkInstall, checkTrusted, ensureLocalJoin, octal, planInstall, planUninstall, sha256, trustedPaths,
  type InstallMode, type InstallPlan,
} from '../../install/index.js';
import { isWeftError } from '../../model/plain.js';
import { readTokenFile } from '../config.js';
import { CliError, EXIT, usage } from '../errors.js';
import type { Io } from '../kit.js';

/** What the verbs take from the machine; tests give their own. */
export interface InstallDeps {
  uid(): number;
  /** systemd is the running init (sd_booted: /run/systemd/system exists). */
  systemdRunning(): boolean;
  runner(): Runner;
  /**
   * Whose package and node the units may run as root: root's only. Tests that run without root give
   * their own uid here; there is no command-line option for it.
   */
  trustedUids?(): number[];
}

const machine: InstallDeps = {
  uid: () => process.getuid?.() ?? 0,
  systemdRunning: () => existsSync('/run/systemd/system'),
  runner: () => new ProcessRunner(),
};

export function installCommands(program: Command, io: Io, deps: InstallDeps = machine): void {
  const install = program.command('install')
    .description('install Weft as systemd services: weft-server and weft-agent units, data and state dirs, /usr/local/bin/weft, the CNI plugin')
    .option('--systemd', 'write systemd units (the only kind there is; say it, so a later kind is not picked by default)')
    .option('--server <urls>', 'install only the agent, joining this server (https://HOST:9700, comma-separated for failover)')
    .option('--join <token>', 'with --server: the join token from `weft host add NAME` (kept in /etc/weft/join.token, 0600)')
    .option('--join-file <file>', 'with --server: read the join token from a file (keeps it out of `ps` and shell history)')
    .option('--no-agent', 'install only the server')
    .option('--listen <host:port>', `the server's address (other hosts join it there: 0.0.0.0:9700)`, DEFAULT_LISTEN)
    .option('--root <dir>', 'install below this directory (an image being built, a test); nothing is enabled or started')
    .option('--force', 'overwrite files in the way (they become part of the install: uninstall removes them)')
    .option('--dry-run', 'print what would be made and run, and change nothing')
    .addHelpText('after', `
Without --server: the server and an agent that joins it (as \`weft up\` does). With --server: an agent.
Writes ${LAYOUT.unitDir}/${UNITS.server} and ${UNITS.agent} (their hardening and its reasons
are in their comments: \`systemctl cat weft-agent\`), ${LAYOUT.dataDir} and ${LAYOUT.stateDir} (0700),
${LAYOUT.configDir} (0700), ${LAYOUT.launcher} (runs this package with this node), ${LAYOUT.cniBinDir}/weft,
and ${LAYOUT.manifest}, which lists every path made with the sha256 of each file. Then, on a running
systemd: daemon-reload, enable --now. A file that exists and was not made by weft install is never
overwritten (without --force); a failed install leaves nothing behind.

Examples:
  $ weft install --systemd --dry-run
  $ sudo weft install --systemd --listen 0.0.0.0:9700                  # the first host: server and agent
  $ sudo weft install --systemd --server https://10.0.0.5:9700 --join-file node2.token   # every other host
  $ sudo weft install --systemd --no-agent --listen 0.0.0.0:9700       # a server without containers
  $ weft install --systemd --root /tmp/image                           # into an image; enable it there
`)
    .action(async (o, cmd: Command) => {
      if (!o.systemd) throw usage('weft install: say --systemd (e.g. weft install --systemd --dry-run)');
      const root = rootOf(o.root, deps, 'install');
      if (o.server !== undefined && cmd.getOptionValueSource('listen') === 'cli') throw usage('--listen: only where the server is installed (without --server)');
      const mode = modeOf(o);
      const packageDir = findPackage();
      const nodePath = nodeOf();
      checkTrusted(trustedPaths(packageDir, nodePath), deps.trustedUids ? { trustedUids: deps.trustedUids() } : {});
      const plan = planInstall({ packageDir, nodePath, mode, ...relayOf(packageDir), launcherPresent: npmLinked(root, packageDir) });
      const systemd = root === '/' && deps.systemdRunning() ? deps.runner() : undefined;
      const opts = { root, version: versionOf(packageDir), force: o.force === true, chown: deps.uid() === 0, ...(systemd ? { systemd } : {}) };
      if (o.dryRun) return printInstallPlan(io, plan, checkInstall(plan, opts), root, systemd !== undefined);
      const r = await asCli(() => applyInstall(plan, opts));
      io.out(`made${root === '/' ? '' : ` under ${root}`}:\n${r.made.map((p) => `  ${p}\n`).join('')}`);
      for (const n of r.notes) io.out(`note: ${n}\n`);
      if (mode.kind === 'agent' && mode.joinToken === undefined) io.out(`note: no join token: the agent starts only if ${LAYOUT.stateDir} holds this host's certificate already; else run this again with --join-file and --force\n`);
      if (r.started.length) io.out(`enabled and started: ${r.started.join(', ')} (systemctl status weft-agent; journalctl -u weft-server)\n`);
      else if (root === '/') io.out(`systemd is not running here: start them with \`systemctl enable --now ${plan.units.join(' ')}\`\n`);
      else io.out(`to start them at boot of that system: systemctl --root=${root} enable ${plan.units.join(' ')}\n`);
    });

  install.command('local-join')
    .description('(run by weft-agent.service) get this host\'s agent a join token from the server on this host, unless it has joined')
    .requiredOption('--server <url>', 'the local server')
    .requiredOption('--data-dir <dir>', "the server's data dir (admin.token, ca.crt)")
    .requiredOption('--state-dir <dir>', "the agent's state dir (its certificate, once joined)")
    .requiredOption('--join-file <file>', 'where the agent reads the token (written 0600)')
    .action(async (o) => {
      const r = await ensureLocalJoin({ server: o.server, dataDir: o.dataDir, stateDir: o.stateDir, joinFile: o.joinFile });
      io.out(r.done === 'joined' ? `${r.host} has joined this server already\n` : `join token for ${r.host} written to ${o.joinFile}\n`);
    });

  program.command('uninstall')
    .description('take back what `weft install` made, by its manifest: units (stopped and disabled first), files, empty directories')
    .option('--root <dir>', 'uninstall below this directory')
    .option('--purge', `also remove the data and state dirs (${LAYOUT.dataDir}: the database, the CA, the host's certificate)`)
    .option('--force', 'also remove files changed since install wrote them')
    .option('--dry-run', 'print what would be removed and kept, and change nothing')
    .addHelpText('after', `
A file whose content changed since install wrote it is kept, and named. The data and state dirs stay
unless --purge. The agent's datapath (tenant namespaces, host tables, bird) stays in place too, so
containers keep their network: to remove it, \`systemctl stop weft-agent && weft agent --uninstall
--cni-bin-dir ${LAYOUT.cniBinDir} --state-dir ${LAYOUT.stateDir}\` before \`weft uninstall\`.

Examples:
  $ weft uninstall --dry-run
  $ sudo weft uninstall
  $ sudo weft uninstall --purge          # and every network, address and token with the database
  $ weft uninstall --root /tmp/image
`)
    .action(async (o) => {
      const root = rootOf(o.root, deps, 'uninstall');
      const systemd = root === '/' && deps.systemdRunning() ? deps.runner() : undefined;
      const opts = { root, force: o.force === true, purge: o.purge === true, alsoOurs: relayNow(), ...(systemd ? { systemd } : {}) };
      if (o.dryRun) return printUninstallPlan(io, planUninstall(opts), systemd !== undefined);
      const r = await applyUninstall(opts);
      if (r.stopped.length) io.out(`stopped and disabled: ${r.stopped.join(', ')}\n`);
      io.out(`removed:\n${r.removed.map((p) => `  ${p}\n`).join('')}`);
      for (const k of r.kept) io.out(`kept ${k.path}: ${k.why}\n`);
      for (const p of r.problems) io.err(`warning: ${p}\n`);
    });
}

/** `/`, which only root may write, or the --root directory. */
function rootOf(given: string | undefined, deps: InstallDeps, verb: string): string {
  if (given === undefined) {
    if (deps.uid() !== 0) {
      throw new CliError(`weft ${verb} writes ${LAYOUT.unitDir}, ${LAYOUT.launcher} and ${LAYOUT.cniBinDir}: run it as root (sudo weft ${verb} ...), or give --root DIR to work below a directory`, EXIT.auth, 'not-root');
    }
    return '/';
  }
  const root = resolve(given);
  if (!existsSync(root) || !statSync(root).isDirectory()) throw usage(`--root: ${given} is not a directory`);
  return root;
}

function modeOf(o: Record<string, any>): InstallMode {
  if (o['join'] !== undefined && o['joinFile'] !== undefined) throw usage('--join and --join-file: give one');
  const join = o['join'] ?? (o['joinFile'] !== undefined ? readTokenFile(o['joinFile'], '--join-file') : undefined);
  if (o['server'] === undefined) {
    if (join !== undefined) throw usage('--join: only with --server (an agent joining another host\'s server); beside its own server the agent joins by itself');
    return { kind: o['agent'] === false ? 'server' : 'both', listen: o['listen'] };
  }
  if (o['agent'] === false) throw usage('--server installs only an agent; --no-agent only a server: give one');
  return { kind: 'agent', server: String(o['server']), ...(join !== undefined ? { joinToken: join } : {}) };
}

/** The weft package this code runs from: the directory above it holding weft's package.json and dist/bin/weft.cjs. */
function findPackage(): string {
  let dir = dirname(realpathSync(fileURLToPath(import.meta.url)));
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && existsSync(join(dir, 'dist', 'bin', 'weft.cjs')) && JSON.parse(readFileSync(pkg, 'utf8')).name === 'weft') return dir;
    if (dirname(dir) === dir) throw new CliError('weft install: cannot find the weft package (package.json and dist/bin/weft.cjs) above this program', EXIT.failed);
    dir = dirname(dir);
  }
}

const versionOf = (packageDir: string): string => String(JSON.parse(readFileSync(join(packageDir, 'package.json'), 'utf8')).version);

/**
 * This node; dist/bin/weft.cjs starts `node` by name (its first line picks node's options per command),
 * so the launcher puts this directory first on PATH: whatever else is in it is then found first by the
 * agent's children too (ip, nft), which is why checkTrusted requires it root's and unwritable by others.
 */
function nodeOf(): string {
  const node = process.execPath;
  if (!existsSync(join(dirname(node), 'node'))) throw new CliError(`weft install: ${dirname(node)} has no \`node\`, which dist/bin/weft.cjs runs by name; run weft with a node installed as \`node\``, EXIT.failed);
  return node;
}

function relayOf(packageDir: string): { cniRelay?: Uint8Array } {
  const c = join(packageDir, 'dist', 'weft-cni');
  return existsSync(c) ? { cniRelay: readFileSync(c) } : {};
}

/** The CNI plugin as an agent of this package writes it now (after an upgrade it differs from what install wrote). */
function relayNow(): Map<string, string> {
  try {
    const packageDir = findPackage();
    const plan = planInstall({ packageDir, nodePath: process.execPath, mode: { kind: 'agent', server: 'https://localhost:9700' }, ...relayOf(packageDir) });
    const relay = plan.files.find((f) => f.path === join(LAYOUT.cniBinDir, 'weft'));
    return new Map(relay ? [[relay.path, sha256(relay.content)]] : []);
  } catch {
    // Run from somewhere else (no package above it, a path plan.ts refuses): only what install wrote counts.
    return new Map();
  }
}

/**
 * `npm i -g` links /usr/local/bin/weft to this package's dist/bin/weft.cjs: that link is the launcher
 * already, if systemd's PATH finds the `node` it starts by name.
 */
function npmLinked(root: string, packageDir: string): boolean {
  const link = join(root, LAYOUT.launcher);
  const onSystemdPath = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'].includes(dirname(process.execPath));
  try {
    return root === '/' && onSystemdPath && lstatSync(link).isSymbolicLink() && realpathSync(link) === realpathSync(join(packageDir, 'dist', 'bin', 'weft.cjs'));
  } catch {
    return false;
  }
}

/** A failure of the machine (a full disk, systemctl) is exit 1, not the API's "try again later". */
async function asCli<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (isWeftError(e) && e.code === 'WEFT_INTERNAL') throw new CliError(e.message, EXIT.failed);
    throw e;
  }
}

function printInstallPlan(io: Io, plan: InstallPlan, check: ReturnType<typeof checkInstall>, root: string, systemd: boolean): void {
  const under = root === '/' ? '' : ` (under ${root})`;
  io.out(`weft install would make${under}:\n`);
  for (const d of plan.dirs) {
    const note = existsSync(join(root, d.path)) ? '  (exists: left as it is)' : d.data ? '  (data: kept by uninstall unless --purge)' : '';
    io.out(`  ${d.path}/  ${octal(d.mode)}${note}\n`);
  }
  for (const f of plan.files) io.out(`  ${f.path}  ${octal(f.mode)}  ${Buffer.byteLength(f.content)} bytes\n`);
  io.out(`  ${plan.manifest}  0600  (the manifest)\n`);
  io.out(systemd ? `and run: systemctl daemon-reload; systemctl enable --now ${plan.units.join(' ')}\n` : 'and start nothing (no running systemd for this root)\n');
  for (const n of check.notes) io.out(`note: ${n}\n`);
  const refused = [...check.blocked, ...check.conflicts];
  if (refused.length) throw new CliError(`weft install would be refused: in the way: ${refused.join(', ')}`, EXIT.conflict);
}

function printUninstallPlan(io: Io, p: ReturnType<typeof planUninstall>, systemd: boolean): void {
  if (systemd) io.out(`weft uninstall would stop and disable: ${p.manifest.units.join(', ')}\n`);
  io.out(`would remove:\n${[...p.remove, LAYOUT.manifest, ...p.purge.map((d) => `${d}/ (everything in it)`)].map((x) => `  ${x}\n`).join('')}`);
  io.out(`and these directories if empty by then:\n${p.dirs.map((d) => `  ${d}/\n`).join('')}`);
  for (const k of p.keep) io.out(`would keep ${k.path}: ${k.why}\n`);
  for (const g of p.gone) io.out(`already gone: ${g}\n`);
}
