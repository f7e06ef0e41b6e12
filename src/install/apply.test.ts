import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, statSync, writeFileSync, appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { FakeRunner } from '../exec/index.js';
import { LAYOUT, applyInstall, applyUninstall, nodeFs, planInstall, readManifest, sha256, type InstallFs, type InstallPlan } from './index.js';
import { PACKAGE_DIR, listing, put, tempRoot } from './testing.js';

const plan = (): InstallPlan => planInstall({ packageDir: PACKAGE_DIR, nodePath: process.execPath, mode: { kind: 'both', listen: '127.0.0.1:9700' } });
const opts = (root: string) => ({ root, version: '0.1.0' });
const agentUnit = join(LAYOUT.unitDir, 'weft-agent.service');

/** What a real root already has: uninstall must leave all of it, and remove everything else. */
function lived(root: string): void {
  put(root, 'etc/systemd/system/sshd.service', '[Service]\nExecStart=/usr/sbin/sshd -D\n');
  put(root, 'usr/local/bin/other-tool', '#!/bin/sh\n', 0o755);
  put(root, 'etc/cni/net.d/10-podman.conflist', '{}\n');
  put(root, 'var/lib/dpkg/status', '\n');
}

test('install into an empty root writes every planned path with its mode, and the manifest names each with its sha256', async (t) => {
  const root = tempRoot(t);
  const p = plan();
  await applyInstall(p, opts(root));
  for (const d of p.dirs) assert.equal(statSync(join(root, d.path)).mode & 0o7777, d.mode, d.path);
  for (const f of p.files) {
    assert.equal(statSync(join(root, f.path)).mode & 0o7777, f.mode, f.path);
    assert.ok(readFileSync(join(root, f.path)).equals(Buffer.from(f.content)), f.path);
  }
  const m = readManifest(root);
  assert.deepEqual(m.files.map((f) => [f.path, f.sha256]), p.files.map((f) => [f.path, sha256(f.content)]));
  assert.ok(m.dirs.some((d) => d.path === '/etc') && m.dirs.some((d) => d.path === LAYOUT.stateDir), 'parents it made are listed too');
  assert.equal(statSync(join(root, LAYOUT.manifest)).mode & 0o7777, 0o600);
});

test('uninstall leaves an empty root exactly as it was, and a lived-in root too', async (t) => {
  for (const setup of [(_: string) => undefined, lived]) {
    const root = tempRoot(t);
    setup(root);
    const before = listing(root);
    await applyInstall(plan(), opts(root));
    assert.notDeepEqual(listing(root), before);
    const r = await applyUninstall({ root });
    assert.deepEqual(listing(root), before);
    assert.deepEqual(r.kept, []);
  }
});

test('a file that exists and was not made by install is never overwritten: refused, named, nothing made; --force overwrites it', async (t) => {
  const root = tempRoot(t);
  lived(root);
  put(root, 'usr/local/bin/weft', '#!/bin/sh\necho mine\n', 0o755);
  const before = listing(root);
  await assert.rejects(applyInstall(plan(), opts(root)), (e: Error) => /not made by weft install: \/usr\/local\/bin\/weft;/.test(e.message) && /--force/.test(e.message));
  assert.deepEqual(listing(root), before, 'nothing was made');
  await applyInstall(plan(), { ...opts(root), force: true });
  assert.match(readFileSync(join(root, 'usr/local/bin/weft'), 'utf8'), /exec .*dist\/bin\/weft\.cjs/);
});

test('a second install is refused while the first is in place (the manifest names it); --force installs over it and one uninstall still takes all back', async (t) => {
  const root = tempRoot(t);
  const before = listing(root);
  await applyInstall(planInstall({ packageDir: PACKAGE_DIR, nodePath: process.execPath, mode: { kind: 'agent', server: 'https://10.0.0.5:9700', joinToken: 'tok' } }), opts(root));
  await assert.rejects(applyInstall(plan(), opts(root)), /already installed .*install\.json/);
  await applyInstall(plan(), { ...opts(root), force: true });
  assert.ok(readManifest(root).files.some((f) => f.path === LAYOUT.joinToken), 'what the first made and the second did not replace is still listed');
  await applyUninstall({ root });
  assert.deepEqual(listing(root), before);
});

test('uninstall keeps a file changed since install and names it; the rest goes; --force removes it too', async (t) => {
  for (const force of [false, true]) {
    const root = tempRoot(t);
    const before = listing(root);
    await applyInstall(plan(), opts(root));
    appendFileSync(join(root, agentUnit), 'Environment=MINE=1\n');
    const r = await applyUninstall({ root, force });
    if (force) {
      assert.deepEqual(listing(root), before);
      continue;
    }
    assert.deepEqual(r.kept.map((k) => k.path).slice(0, 1), [agentUnit]);
    assert.match(r.kept[0]?.why ?? '', /changed since weft install wrote it/);
    assert.match(readFileSync(join(root, agentUnit), 'utf8'), /MINE=1/);
    assert.ok(!existsSync(join(root, LAYOUT.launcher)) && !existsSync(join(root, LAYOUT.manifest)));
    assert.ok(r.kept.some((k) => k.path === LAYOUT.unitDir && k.why === 'not empty'), 'its directory stays, named');
  }
});

test("the CNI plugin rewritten by the agent of an upgraded package is still ours: removed, not kept as someone's change", async (t) => {
  const root = tempRoot(t);
  const before = listing(root);
  const relay = (n: number) => new Uint8Array([0x7f, 0x45, 0x4c, 0x46, n]);
  await applyInstall(planInstall({ packageDir: PACKAGE_DIR, nodePath: process.execPath, mode: { kind: 'both', listen: '127.0.0.1:9700' }, cniRelay: relay(1) }), opts(root));
  writeFileSync(join(root, 'opt/cni/bin/weft'), relay(2));
  const r = await applyUninstall({ root, alsoOurs: new Map([['/opt/cni/bin/weft', sha256(relay(2))]]) });
  assert.deepEqual(r.kept, []);
  assert.deepEqual(listing(root), before);
});

test('data and state stay unless --purge, named; --purge takes them with everything in them', async (t) => {
  for (const purge of [false, true]) {
    const root = tempRoot(t);
    const before = listing(root);
    await applyInstall(plan(), opts(root));
    writeFileSync(join(root, LAYOUT.dataDir, 'weft.db'), 'sqlite');
    writeFileSync(join(root, LAYOUT.stateDir, 'agent.key'), 'key', { mode: 0o600 });
    const r = await applyUninstall({ root, purge });
    if (purge) {
      assert.deepEqual(listing(root), before);
      continue;
    }
    assert.ok(existsSync(join(root, LAYOUT.stateDir, 'agent.key')));
    assert.deepEqual(r.kept.filter((k) => k.path.startsWith('/var/lib/weft')).map((k) => [k.path, k.why]), [
      [LAYOUT.stateDir, 'holds data or state (--purge removes it)'], [LAYOUT.dataDir, 'holds data or state (--purge removes it)'],
    ]);
  }
});

/** The real file system, failing at its `n`th change (mkdir, write, rename). */
function failingAt(n: number): InstallFs & { changes: number } {
  const fs = { ...nodeFs, changes: 0 };
  const count = <A extends unknown[]>(f: (...a: A) => void) => (...a: A) => {
    if (++fs.changes === n) throw Object.assign(new Error('ENOSPC: no space left on device (injected)'), { code: 'ENOSPC' });
    f(...a);
  };
  return Object.assign(fs, { mkdir: count(nodeFs.mkdir), write: count(nodeFs.write), rename: count(nodeFs.rename) });
}

test('a failure at any step of an install leaves the root exactly as before, and says so', async (t) => {
  const root = tempRoot(t);
  lived(root);
  const before = listing(root);
  const probe = failingAt(0);
  // Owners are set only by root; without root the same test runs without them.
  const chown = process.getuid?.() === 0;
  await applyInstall(plan(), { ...opts(root), fs: probe, chown });
  await applyUninstall({ root });
  assert.ok(probe.changes > 15, `an install makes ${probe.changes} changes`);
  for (let n = 1; n <= probe.changes; n++) {
    await assert.rejects(applyInstall(plan(), { ...opts(root), fs: failingAt(n), chown }), (e: Error) => /ENOSPC/.test(e.message) && /everything this run made was removed again/.test(e.message), `change ${n}`);
    assert.deepEqual(listing(root), before, `after a failure at change ${n}`);
  }
});

test('with --force, a failure puts back the file it had already replaced', async (t) => {
  const root = tempRoot(t);
  put(root, 'usr/local/bin/weft', '#!/bin/sh\necho mine\n', 0o700);
  const before = listing(root);
  const probe = failingAt(0);
  await applyInstall(plan(), { ...opts(root), force: true, fs: probe });
  await applyUninstall({ root });
  put(root, 'usr/local/bin/weft', '#!/bin/sh\necho mine\n', 0o700);
  await assert.rejects(applyInstall(plan(), { ...opts(root), force: true, fs: failingAt(probe.changes) }));
  assert.deepEqual(listing(root), before);
});

test('on a running systemd: units are enabled only once their files are in place, and stopped before they are removed', async (t) => {
  const root = tempRoot(t);
  const seen: string[] = [];
  const runner = new FakeRunner((argv) => {
    seen.push(`${argv.join(' ')} (agent unit ${existsSync(join(root, agentUnit)) ? 'present' : 'absent'})`);
    return undefined;
  });
  const r = await applyInstall(plan(), { ...opts(root), systemd: runner });
  assert.deepEqual(r.started, ['weft-server.service', 'weft-agent.service']);
  await applyUninstall({ root, systemd: runner });
  assert.deepEqual(seen, [
    'systemctl daemon-reload (agent unit present)',
    'systemctl enable --now weft-server.service weft-agent.service (agent unit present)',
    'systemctl disable --now weft-agent.service weft-server.service (agent unit present)',
    'systemctl daemon-reload (agent unit absent)',
  ]);
});

test('units that fail to start are stopped, disabled and removed again: a failed install leaves nothing', async (t) => {
  const root = tempRoot(t);
  lived(root);
  const before = listing(root);
  const runner = new FakeRunner((argv) => (argv[1] === 'enable' ? { code: 1, stderr: 'Job for weft-agent.service failed because the control process exited with error code.' } : undefined));
  await assert.rejects(applyInstall(plan(), { ...opts(root), systemd: runner }), (e: Error) => /starting weft-server.service, weft-agent.service failed: .*control process exited/.test(e.message));
  assert.deepEqual(listing(root), before);
  assert.deepEqual(runner.calls.map((c) => c.argv.join(' ')).slice(2), ['systemctl disable --now weft-agent.service weft-server.service', 'systemctl daemon-reload']);
});

test('a manifest that is not one removes nothing; uninstall without an install says there is nothing', async (t) => {
  const root = tempRoot(t);
  await assert.rejects(applyUninstall({ root }), /nothing to uninstall: no .*install\.json/);
  await applyInstall(plan(), opts(root));
  const m = JSON.parse(readFileSync(join(root, LAYOUT.manifest), 'utf8'));
  writeFileSync(join(root, LAYOUT.manifest), JSON.stringify({ ...m, data: ['/'] }));
  const before = listing(root);
  await assert.rejects(applyUninstall({ root, purge: true }), /not a manifest of weft install .*nothing removed/);
  assert.deepEqual(listing(root), before);
});
