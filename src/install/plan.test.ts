import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { installPlugin } from '../agent/installer.js';
import { LAYOUT, localUrl, planInstall, type InstallOptions, type InstallPlan } from './index.js';
import { renderCniRelayScript } from './scripts.js';
import { golden, tempRoot } from './testing.js';

const PKG = '/usr/local/lib/node_modules/weft';
const NODE = '/usr/bin/node';
const base: Omit<InstallOptions, 'mode'> = { packageDir: PKG, nodePath: NODE };

const text = (plan: InstallPlan, path: string): string => {
  const f = plan.files.find((x) => x.path === path);
  assert.ok(f, `${path} is planned`);
  return typeof f.content === 'string' ? f.content : Buffer.from(f.content).toString('utf8');
};
const unit = (name: string) => join(LAYOUT.unitDir, name);

test('golden: both units, the agent joining the local server, and the launcher', () => {
  const plan = planInstall({ ...base, mode: { kind: 'both', listen: '0.0.0.0:9700' } });
  golden('weft-server.service', text(plan, unit('weft-server.service')));
  golden('weft-agent-local.service', text(plan, unit('weft-agent.service')));
  golden('launcher.sh', text(plan, LAYOUT.launcher));
  assert.deepEqual(plan.units, ['weft-server.service', 'weft-agent.service'], 'the server starts first');
});

test('golden: an agent joining another host\'s server reads its token from a file, never from its command line', () => {
  const token = 'weftjoin1.example-token-not-real';
  const plan = planInstall({ ...base, mode: { kind: 'agent', server: 'https://10.0.0.5:9700,https://10.0.0.6:9700', joinToken: token } });
  const agent = text(plan, unit('weft-agent.service'));
  golden('weft-agent-remote.service', agent);
  assert.ok(!agent.includes(token));
  const file = plan.files.find((f) => f.path === LAYOUT.joinToken);
  assert.deepEqual({ content: file?.content, mode: file?.mode }, { content: `${token}\n`, mode: 0o600 });
  assert.ok(!plan.files.some((f) => f.path.endsWith('weft-server.service')), 'no server with --server');
  assert.deepEqual(plan.units, ['weft-agent.service']);
});

test('a server-only install has no agent unit, CNI plugin, state dir or CNI dirs', () => {
  const plan = planInstall({ ...base, mode: { kind: 'server', listen: '0.0.0.0:9700' } });
  assert.deepEqual(plan.files.map((f) => f.path).sort(), [LAYOUT.launcher, unit('weft-server.service')].sort());
  assert.deepEqual(plan.dirs.map((d) => d.path).sort(), [LAYOUT.configDir, LAYOUT.dataDir, LAYOUT.unitDir, '/usr/local/bin'].sort());
  assert.deepEqual(plan.units, ['weft-server.service']);
});

test('secrets live in 0700 directories; every path is owned by root', () => {
  const plan = planInstall({ ...base, mode: { kind: 'agent', server: 'https://10.0.0.5:9700', joinToken: 't0ken' } });
  const mode = (p: string) => plan.dirs.find((d) => d.path === p)?.mode;
  assert.deepEqual([mode(LAYOUT.dataDir), mode(LAYOUT.stateDir), mode(LAYOUT.configDir)], [0o700, 0o700, 0o700]);
  assert.deepEqual(plan.dirs.filter((d) => d.data).map((d) => d.path), [LAYOUT.dataDir, LAYOUT.stateDir], 'only data and state are purged');
  assert.ok([...plan.dirs, ...plan.files].every((x) => x.owner.uid === 0 && x.owner.gid === 0));
});

test("the CNI plugin file is byte for byte what the agent writes at each start, so the agent's rewrite does not make uninstall keep it", (t) => {
  const dist = join(dirname(fileURLToPath(import.meta.url)), '..');
  const native = join(dist, 'weft-cni');
  const dir = tempRoot(t);
  installPlugin([dir]);
  const written = readFileSync(join(dir, 'weft'));
  // The C relay if the build made one beside this test (it copies that), else the Node relay's script.
  const planned = existsSync(native) ? readFileSync(native) : Buffer.from(renderCniRelayScript(dist, process.execPath));
  assert.ok(written.equals(planned));
  const plan = planInstall({ ...base, mode: { kind: 'both', listen: '127.0.0.1:9700' }, cniRelay: new Uint8Array([1, 2, 3]) });
  assert.deepEqual(plan.files.find((f) => f.path === '/opt/cni/bin/weft')?.content, new Uint8Array([1, 2, 3]), 'the C relay when the package has one');
  assert.equal(text(planInstall({ ...base, mode: { kind: 'both', listen: '127.0.0.1:9700' } }), '/opt/cni/bin/weft'), `#!/bin/sh\nexec ${NODE} ${PKG}/dist/bin/weft-cni.js\n`);
});

test('npm\'s link at /usr/local/bin/weft is kept: no launcher is planned', () => {
  const plan = planInstall({ ...base, mode: { kind: 'both', listen: '127.0.0.1:9700' }, launcherPresent: true });
  assert.ok(!plan.files.some((f) => f.path === LAYOUT.launcher));
  assert.ok(text(plan, unit('weft-server.service')).includes(`ExecStart=${LAYOUT.launcher} server`), 'the units still run it');
});

test('the local agent reaches a wildcard server on loopback, a named one by its name', () => {
  assert.equal(localUrl('0.0.0.0:9700'), 'https://127.0.0.1:9700');
  assert.equal(localUrl('[::]:9700'), 'https://127.0.0.1:9700');
  assert.equal(localUrl(':9700'), 'https://127.0.0.1:9700');
  assert.equal(localUrl('10.0.0.5:443'), 'https://10.0.0.5:443');
});

test('refused: paths a unit file or a shell script would misread, homes the server cannot see, bad listen, server or token', () => {
  const both = { kind: 'both', listen: '127.0.0.1:9700' } as const;
  for (const packageDir of ['/opt/my weft', '/opt/weft%i', 'relative/weft', '/opt/../etc', "/opt/we'ft"]) {
    assert.throws(() => planInstall({ ...base, packageDir, mode: both }), /must be an absolute path of letters/, packageDir);
  }
  assert.throws(() => planInstall({ ...base, packageDir: '/root/weft', mode: both }), /ProtectHome/);
  assert.throws(() => planInstall({ ...base, nodePath: '/home/ann/.nvm/versions/node/v20/bin/node', mode: both }), /ProtectHome/);
  assert.throws(() => planInstall({ ...base, mode: { kind: 'both', listen: '9700' } }), /--listen/);
  assert.throws(() => planInstall({ ...base, mode: { kind: 'agent', server: 'http://10.0.0.5:9700' } }), /--server/);
  assert.throws(() => planInstall({ ...base, mode: { kind: 'agent', server: 'https://10.0.0.5:9700', joinToken: 'two words' } }), /--join/);
});
