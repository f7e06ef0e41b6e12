import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FakeCniHost, NETNS, errorOf, invoke, type Invocation } from './fake.js';
import { SUPPORTED_VERSIONS } from './protocol.js';

// Every supported version through every command, as a runtime would call them in a container's life.
// The golden file of a version holds each call's exit status, what reached the host, and stdout byte
// for byte. `UPDATE_GOLDEN=1` rewrites them (in src/, and beside the build), to be reviewed as a diff.

const here = dirname(fileURLToPath(import.meta.url));
const SRC_TESTDATA = join(here, '..', '..', '..', 'src', 'plugins', 'cni', 'testdata');

function golden(name: string, actual: string): void {
  const built = join(here, 'testdata', name);
  if (process.env['UPDATE_GOLDEN'] === '1') for (const p of [join(SRC_TESTDATA, name), built]) writeFileSync(p, actual);
  assert.ok(existsSync(built), `${name} is missing: run the tests once with UPDATE_GOLDEN=1 and review it`);
  assert.equal(actual, readFileSync(built, 'utf8'), `${name} differs from the golden file`);
}

const cmp = (a: string, b: string) => SUPPORTED_VERSIONS.indexOf(a as never) - SUPPORTED_VERSIONS.indexOf(b as never);

/** The life of one container: what a runtime sends at each step, given what ADD answered. */
function steps(v: string, added: () => unknown): Array<[string, () => Invocation]> {
  const add: Invocation = {
    env: { CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web-1;K8S_POD_INFRA_CONTAINER_ID=ctr-1;IP=10.1.2.7/24' },
    config: {
      cniVersion: v,
      runtimeConfig: { portMappings: [{ hostPort: 8080, containerPort: 80, protocol: 'TCP', hostIP: '' }], mac: '0A:58:0A:01:02:07' },
      args: { cni: { labels: [{ key: 'app', value: 'web' }] } },
    },
  };
  return [
    ['VERSION', () => ({ stdin: JSON.stringify({ cniVersion: v }) })],
    ['ADD', () => add],
    ['CHECK', () => ({ config: { cniVersion: v, prevResult: added() } })],
    ['STATUS', () => ({ config: { cniVersion: v } })],
    ['GC', () => ({ config: { cniVersion: v, 'cni.dev/valid-attachments': [{ containerID: 'ctr-1', ifname: 'eth0' }] } })],
    ['DEL', () => ({ env: { CNI_NETNS: undefined }, config: { cniVersion: v, prevResult: added() } })],
    ['DEL', () => ({ env: { CNI_NETNS: undefined }, config: { cniVersion: v } })],
  ];
}

for (const v of SUPPORTED_VERSIONS) {
  test(`cniVersion ${v}: every command, byte for byte as in testdata/v${v}.golden`, async () => {
    const host = new FakeCniHost();
    let added: unknown;
    let text = '';
    for (const [command, make] of steps(v, () => added)) {
      const before = host.calls.length;
      const out = await invoke(host, command, make());
      const calls = host.calls.slice(before);
      text += `## ${command} exit=${out.code} host=${JSON.stringify(calls)}\n${out.stdout}`;
      const allowed = command === 'CHECK' ? cmp(v, '0.4.0') >= 0 : command === 'GC' || command === 'STATUS' ? cmp(v, '1.1.0') >= 0 : true;
      if (!allowed) {
        const e = errorOf(out);
        assert.deepEqual([e.code, e.cniVersion], [1, v], `${command} in ${v}: incompatible version, answered in ${v}`);
        assert.match(e.msg, new RegExp(`^cniVersion: ${v} does not allow ${command}`));
        assert.deepEqual(calls, [], `${command} in ${v} must not reach the host`);
        continue;
      }
      assert.equal(out.code, 0, `${command} in ${v}: ${out.stdout}`);
      if (command !== 'VERSION') assert.equal(calls[0]?.[0], command.toLowerCase(), `${command} reached the host once`);
      if (command === 'ADD') added = JSON.parse(out.stdout);
    }
    golden(`v${v}.golden`, text);
    assert.deepEqual([...host.attached.keys()], [], 'DEL removed the attachment');
  });
}

test('ADD results take the shape of their version, and the host gets what the runtime asked for', async () => {
  for (const v of SUPPORTED_VERSIONS) {
    const host = new FakeCniHost();
    const out = await invoke(host, 'ADD', { env: { CNI_ARGS: 'K8S_POD_NAME=web-1;MAC=0A:58:0A:01:02:07' }, config: { cniVersion: v } });
    const r = JSON.parse(out.stdout);
    assert.equal(r.cniVersion, v);
    assert.deepEqual(r.ips[0], { ...(cmp(v, '1.0.0') < 0 ? { version: '4' } : {}), address: '10.1.2.9/24', gateway: '10.1.2.1', interface: 1 });
    assert.deepEqual(r.interfaces[1], { name: 'eth0', mac: '0a:58:0a:01:02:07', ...(cmp(v, '1.0.0') < 0 ? {} : { mtu: 1450 }), sandbox: NETNS });
    assert.deepEqual(host.calls, [['add', {
      tenant: 'blue', network: 'db-net', group: 'db', cniNetwork: 'weft.blue.db', containerId: 'ctr-1', ifname: 'eth0', netns: NETNS,
      labels: {}, portMappings: [], mac: '0a:58:0a:01:02:07', containerName: 'web-1',
    }]]);
  }
});

test('a dual-stack ADD answers both addresses and both default routes in every version, and CHECK takes that result back', async () => {
  for (const v of SUPPORTED_VERSIONS) {
    const host = new FakeCniHost();
    host.dual = true;
    const out = await invoke(host, 'ADD', { config: { cniVersion: v } });
    const r = JSON.parse(out.stdout);
    const old = cmp(v, '1.0.0') < 0;
    assert.deepEqual(r.ips, [
      { ...(old ? { version: '4' } : {}), address: '10.1.2.9/24', gateway: '10.1.2.1', interface: 1 },
      { ...(old ? { version: '6' } : {}), address: 'fd00:1:2::9/64', gateway: 'fd00:1:2::1', interface: 1 },
    ], v);
    assert.deepEqual(r.routes, [{ dst: '0.0.0.0/0', gw: '10.1.2.1' }, { dst: '::/0', gw: 'fd00:1:2::1' }], v);
    if (cmp(v, '0.4.0') >= 0) assert.equal((await invoke(host, 'CHECK', { config: { cniVersion: v, prevResult: r } })).code, 0, `CHECK ${v}`);
  }
});

test('VERSION echoes the asked version, lists all five, never reaches the host, and never fails on stdin', async () => {
  const host = new FakeCniHost();
  const all = ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'];
  const cases: Array<[string, string]> = [
    [JSON.stringify({ cniVersion: '0.2.0' }), '0.2.0'], // libcni asks in its own version and reconciles the list itself
    ['', '1.1.0'], ['not json', '1.1.0'], ['[]', '1.1.0'], [JSON.stringify({ cniVersion: 7 }), '1.1.0'],
    [JSON.stringify({ cniVersion: `1.0.0${'x'.repeat(10_000)}` }), '1.1.0'],
  ];
  for (const [stdin, echoed] of cases) {
    const out = await invoke(host, 'VERSION', { stdin, env: { CNI_CONTAINERID: undefined, CNI_NETNS: undefined, CNI_IFNAME: undefined } });
    assert.equal(out.code, 0, stdin.slice(0, 40));
    assert.equal(out.stdout, `${JSON.stringify({ cniVersion: echoed, supportedVersions: all })}\n`);
  }
  assert.deepEqual(host.calls, []);
});

test('there is one golden file per supported version and no stale one', () => {
  const files = readdirSync(join(here, 'testdata')).filter((f) => f.endsWith('.golden')).sort();
  assert.deepEqual(files, SUPPORTED_VERSIONS.map((v) => `v${v}.golden`).sort());
});
