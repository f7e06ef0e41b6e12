import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { LAYOUT, applyInstall, applyUninstall, planInstall, type InstallMode } from './index.js';
import { PACKAGE_DIR, listing, tempRoot } from './testing.js';

/**
 * The written units, checked by systemd's own parser in the throwaway root. What `systemd-analyze verify
 * --root=ROOT` checks (tried, systemd 252): unknown sections and settings, values it cannot parse, that
 * ExecStart='s program exists below ROOT and is executable, and that the units it depends on exist below
 * ROOT (so the root gets a copy of this system's own units first, as any real root has them). It
 * exits 0 on warnings unless --recursive-errors is given, and an unknown capability name is dropped
 * silently (logged at debug level only): so stderr must be empty, and the capability sets systemd
 * parsed are read back from its debug dump.
 */
const ANALYZE = '/usr/bin/systemd-analyze';
const SYSTEM_UNITS = ['/usr/lib/systemd/system', '/lib/systemd/system'].find((d) => existsSync(join(d, 'sysinit.target')));
const skip = !existsSync(ANALYZE) ? `no ${ANALYZE}` : SYSTEM_UNITS === undefined ? "no systemd units on this machine" : false;

function rootWithSystemd(t: { after(fn: () => void): void }): string {
  const root = tempRoot(t);
  cpSync(SYSTEM_UNITS as string, join(root, 'usr/lib/systemd/system'), { recursive: true, verbatimSymlinks: true });
  return root;
}

const install = (root: string, mode: InstallMode) => applyInstall(planInstall({ packageDir: PACKAGE_DIR, nodePath: process.execPath, mode }), { root, version: '0.1.0' });

function analyze(root: string, units: string[], env: NodeJS.ProcessEnv = {}) {
  return spawnSync(ANALYZE, ['verify', '--man=no', '--recursive-errors=no', `--root=${root}`, ...units], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 60_000 });
}

/** The capability bounding set systemd made of a unit's file (its debug dump of the loaded unit, on standard output), sorted. */
function parsedCapabilities(root: string, unit: string): string[] {
  const dump = analyze(root, [unit], { SYSTEMD_LOG_LEVEL: 'debug' }).stdout;
  const section = dump.slice(dump.indexOf(`-> Unit ${unit}:`));
  return (/^\s*CapabilityBoundingSet: (.*)$/m.exec(section)?.[1] ?? '(not in the dump)').trim().split(/\s+/).sort();
}

test('systemd-analyze verify passes both units in a throwaway root, without a warning; uninstall leaves the root as it was', { skip }, async (t) => {
  const root = rootWithSystemd(t);
  const before = listing(root);
  await install(root, { kind: 'both', listen: '0.0.0.0:9700' });
  const r = analyze(root, ['weft-server.service', 'weft-agent.service']);
  assert.equal(r.stderr, '');
  assert.equal(r.status, 0);
  assert.deepEqual(parsedCapabilities(root, 'weft-server.service'), ['cap_net_bind_service']);
  assert.deepEqual(parsedCapabilities(root, 'weft-agent.service'), ['cap_net_admin', 'cap_net_bind_service', 'cap_net_raw', 'cap_sys_admin', 'cap_sys_ptrace']);
  await applyUninstall({ root });
  assert.deepEqual(listing(root), before);
});

test('systemd-analyze verify passes an agent that joins another server with a token file', { skip }, async (t) => {
  const root = rootWithSystemd(t);
  await install(root, { kind: 'agent', server: 'https://10.0.0.5:9700', joinToken: 'weftjoin1.x' });
  const r = analyze(root, ['weft-agent.service']);
  assert.deepEqual([r.status, r.stderr], [0, '']);
});

test('the check has teeth: a misspelt setting, a bad value and a missing program are each reported', { skip }, async (t) => {
  const root = rootWithSystemd(t);
  await install(root, { kind: 'server', listen: '127.0.0.1:9700' });
  const unit = join(root, LAYOUT.unitDir, 'weft-server.service');
  const good = readFileSync(unit, 'utf8');
  for (const [change, said] of [
    [good.replace('ProtectSystem=strict', 'ProtectSytem=strict'), /Unknown key 'ProtectSytem'/],
    [good.replace('RestartSec=5s', 'RestartSec=soon'), /Failed to parse sec value/],
    [good.replace(`ExecStart=${LAYOUT.launcher}`, 'ExecStart=/usr/local/bin/weeft'), /weeft is not executable/],
  ] as const) {
    writeFileSync(unit, change);
    const r = analyze(root, ['weft-server.service']);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, said);
  }
});

test('the launcher runs this checkout\'s weft: ROOT/usr/local/bin/weft --version prints its version', async (t) => {
  const root = tempRoot(t);
  await install(root, { kind: 'both', listen: '127.0.0.1:9700' });
  // A PATH where no node is (under systemd, nvm's or /opt's node is not on it): the launcher puts node's directory first.
  const r = spawnSync(join(root, LAYOUT.launcher), ['--version'], { encoding: 'utf8', env: { PATH: '/nonexistent' }, timeout: 30_000 });
  const version = JSON.parse(readFileSync(join(PACKAGE_DIR, 'package.json'), 'utf8')).version;
  assert.deepEqual([r.status, r.stdout.trim(), r.stderr], [0, version, '']);
});
