import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeCniHost, errorOf, invoke, type Invocation } from './fake.js';
import { MAX_STDIN_BYTES } from './protocol.js';

// Every malformed network configuration on stdin: the CNI code the spec gives it, a message that names
// the field, and nothing reached the host.

type Case = [what: string, command: string, o: Invocation, code: number, field: RegExp];
const cfg = (config: Record<string, unknown>): Invocation => ({ config });
const ports = (...p: unknown[]) => cfg({ runtimeConfig: { portMappings: p } });
const prev = (prevResult: unknown) => cfg({ prevResult });
const valid = (list: unknown) => cfg({ 'cni.dev/valid-attachments': list });
const big = `{"cniVersion":"1.1.0","name":"n","type":"weft","network":"db-net","pad":"${'x'.repeat(MAX_STDIN_BYTES)}"}`;

const decoding: Case[] = [
  ['empty stdin', 'ADD', { stdin: '' }, 6, /^stdin: failed to decode/],
  ['stdin not JSON', 'ADD', { stdin: '{"cniVersion": ' }, 6, /^stdin: failed to decode/],
  ['stdin a JSON array', 'DEL', { stdin: '[{"cniVersion":"1.1.0"}]' }, 6, /^stdin: /],
  ['stdin JSON null', 'ADD', { stdin: 'null' }, 6, /^stdin: /],
  ['stdin a JSON string', 'CHECK', { stdin: '"weft"' }, 6, /^stdin: /],
  ['stdin huge', 'ADD', { stdin: big }, 7, /^stdin: \d+ bytes is more than the 4194304 a network configuration may have$/],
];

const versions: Case[] = [
  ['cniVersion missing', 'ADD', cfg({ cniVersion: undefined }), 1, /^cniVersion: missing \(supported: 0\.3\.0, 0\.3\.1, 0\.4\.0, 1\.0\.0, 1\.1\.0\)$/],
  ['cniVersion 0.2.0', 'ADD', cfg({ cniVersion: '0.2.0' }), 1, /^cniVersion: '0\.2\.0' is not supported/],
  ['cniVersion 9.9.9', 'DEL', cfg({ cniVersion: '9.9.9' }), 1, /^cniVersion: '9\.9\.9' is not supported/],
  ['cniVersion empty', 'ADD', cfg({ cniVersion: '' }), 1, /^cniVersion: '' is not supported/],
  ['cniVersion a number', 'ADD', cfg({ cniVersion: 1.1 }), 7, /^cniVersion: must be a string, not 1\.1$/],
];

const config: Case[] = [
  ['name missing', 'ADD', cfg({ name: undefined }), 7, /^invalid network configuration: name: Expected required property$/],
  ['type missing', 'ADD', cfg({ type: undefined }), 7, /^invalid network configuration: type: /],
  ['network missing', 'DEL', cfg({ network: undefined }), 7, /^invalid network configuration: network: /],
  ['network a number', 'ADD', cfg({ network: 5 }), 7, /^invalid network configuration: network: Expected string$/],
  ['tenant a list', 'ADD', cfg({ tenant: ['blue'] }), 7, /^invalid network configuration: tenant: /],
  ['runtimeConfig a string', 'ADD', cfg({ runtimeConfig: 'x' }), 7, /^invalid network configuration: runtimeConfig: /],
  ['name with a slash', 'ADD', cfg({ name: 'weft/blue' }), 7, /^invalid network configuration: name: /],
  ['tenant upper case', 'ADD', cfg({ tenant: 'Blue' }), 7, /^invalid network configuration: tenant: Expected string to match/],
  ['tenant of 64 characters', 'ADD', cfg({ tenant: 't'.repeat(64) }), 7, /^invalid network configuration: tenant: /],
  ['group with an underscore', 'ADD', cfg({ group: 'db_1' }), 7, /^invalid network configuration: group: /],
  ['network starting with a dash', 'CHECK', cfg({ network: '-net' }), 7, /^invalid network configuration: network: /],
  ['labels not key/value', 'ADD', cfg({ args: { cni: { labels: [{ key: 'app' }] } } }), 7, /^invalid network configuration: args\.cni\.labels\.0\.value: /],
];

const runtimeConfig: Case[] = [
  ['hostPort 0', 'ADD', ports({ hostPort: 0, containerPort: 80 }), 7, /^invalid network configuration: runtimeConfig\.portMappings\.0\.hostPort: /],
  ['hostPort 65536', 'ADD', ports({ hostPort: 65536, containerPort: 80 }), 7, /runtimeConfig\.portMappings\.0\.hostPort: Expected integer to be less or equal to 65535$/],
  ['containerPort negative', 'ADD', ports({ hostPort: 80, containerPort: 80 }, { hostPort: 81, containerPort: -1 }), 7, /runtimeConfig\.portMappings\.1\.containerPort: /],
  ['hostPort a string', 'ADD', ports({ hostPort: '80', containerPort: 80 }), 7, /runtimeConfig\.portMappings\.0\.hostPort: Expected integer$/],
  ['containerPort missing', 'ADD', ports({ hostPort: 80 }), 7, /runtimeConfig\.portMappings\.0\.containerPort: /],
  ['65 port mappings', 'ADD', ports(...Array.from({ length: 65 }, (_, i) => ({ hostPort: 1000 + i, containerPort: 80 }))), 7, /runtimeConfig\.portMappings: /],
  ['protocol sctp', 'ADD', ports({ hostPort: 80, containerPort: 80, protocol: 'sctp' }), 2, /^runtimeConfig\.portMappings\.0\.protocol: 'sctp' is not supported \(tcp, udp\)$/],
  ['protocol a number', 'ADD', ports({ hostPort: 80, containerPort: 80, protocol: 6 }), 7, /runtimeConfig\.portMappings\.0\.protocol: /],
  ['hostIP one address', 'ADD', ports({ hostPort: 80, containerPort: 80, hostIP: '127.0.0.1' }), 2, /^runtimeConfig\.portMappings\.0\.hostIP: '127\.0\.0\.1' is not supported/],
  ['ips garbage', 'ADD', cfg({ runtimeConfig: { ips: ['garbage'] } }), 7, /^invalid network configuration: runtimeConfig\.ips\.0: 'garbage' is not an IPv4 or IPv6 address$/],
  ['ips with a bad prefix', 'ADD', cfg({ runtimeConfig: { ips: ['10.1.2.5/40'] } }), 7, /runtimeConfig\.ips\.0: '10\.1\.2\.5\/40'/],
  ['ips not strings', 'ADD', cfg({ runtimeConfig: { ips: [5] } }), 7, /runtimeConfig\.ips\.0: Expected string$/],
  ['ips not a list', 'ADD', cfg({ runtimeConfig: { ips: '10.1.2.5' } }), 7, /runtimeConfig\.ips: /],
  ['ips two IPv4 addresses', 'ADD', cfg({ runtimeConfig: { ips: ['10.1.2.5/24', '10.1.2.6/24'] } }), 7, /^invalid network configuration: runtimeConfig\.ips\.1: '10\.1\.2\.6\/24' is a second address of its family/],
  ['ips three addresses', 'ADD', cfg({ runtimeConfig: { ips: ['10.1.2.5/24', 'fd00::6/64', 'fd00::7/64'] } }), 7, /^invalid network configuration: runtimeConfig\.ips: 3 addresses/],
  ['mac garbage', 'ADD', cfg({ runtimeConfig: { mac: 'garbage' } }), 7, /^invalid network configuration: runtimeConfig\.mac: /],
  ['mac multicast', 'ADD', cfg({ runtimeConfig: { mac: '33:33:00:00:00:01' } }), 7, /^invalid network configuration: runtimeConfig\.mac: '33:33:00:00:00:01' is a multicast address$/],
];

const prevResults: Case[] = [
  ['prevResult a string', 'CHECK', prev('garbage'), 7, /^invalid network configuration: prevResult: Expected object$/],
  ['prevResult ips not a list', 'CHECK', prev({ ips: 'x' }), 7, /^invalid network configuration: prevResult\.ips: /],
  ['prevResult address garbage', 'CHECK', prev({ ips: [{ address: 'nope' }] }), 7, /^invalid network configuration: prevResult\.ips\.0\.address: 'nope' is not an address in CIDR notation$/],
  ['prevResult address without a prefix', 'CHECK', prev({ ips: [{ address: '10.1.2.9' }] }), 7, /prevResult\.ips\.0\.address: '10\.1\.2\.9'/],
  ['prevResult address with an IPv6 zone', 'CHECK', prev({ ips: [{ address: 'fe80::1%eth0/64' }] }), 7, /prevResult\.ips\.0\.address: 'fe80::1%eth0\/64' is not an address in CIDR notation$/],
  ['prevResult interface index negative', 'CHECK', prev({ ips: [{ address: '10.1.2.9/24', interface: -1 }] }), 7, /prevResult\.ips\.0\.interface: /],
  ['prevResult interface without a name', 'CHECK', prev({ interfaces: [{ mac: '0a:58:0a:01:02:09' }] }), 7, /prevResult\.interfaces\.0\.name: /],
  ['prevResult routes garbage', 'CHECK', prev({ routes: [{ gw: '10.1.2.1' }] }), 7, /prevResult\.routes\.0\.dst: /],
];

const attachments: Case[] = [
  ['valid-attachments missing', 'GC', cfg({}), 7, /^cni\.dev\/valid-attachments: missing \(GC keeps only the attachments listed/],
  ['valid-attachments a string', 'GC', valid('all'), 7, /^cni\.dev\/valid-attachments: must be an array of \{containerID, ifname\}, not string$/],
  ['valid-attachments an object', 'GC', valid({ containerID: 'ctr-1', ifname: 'eth0' }), 7, /^cni\.dev\/valid-attachments: must be an array/],
  ['valid-attachments of strings', 'GC', valid(['ctr-1']), 7, /^cni\.dev\/valid-attachments\.0: must be an object/],
  ['valid-attachments entry without ifname', 'GC', valid([{ containerID: 'ctr-1', ifname: 'eth0' }, { containerID: 'ctr-2' }]), 7, /^cni\.dev\/valid-attachments\.1\.ifname: missing or not a string$/],
  ['valid-attachments entry without containerID', 'GC', valid([{ ifname: 'eth0' }]), 7, /^cni\.dev\/valid-attachments\.0\.containerID: missing or not a string$/],
  ['valid-attachments containerID a number', 'GC', valid([{ containerID: 5, ifname: 'eth0' }]), 7, /valid-attachments\.0\.containerID: missing or not a string$/],
  ['valid-attachments containerID empty', 'GC', valid([{ containerID: '', ifname: 'eth0' }]), 7, /valid-attachments\.0\.containerID: missing$/],
  ['valid-attachments containerID bad', 'GC', valid([{ containerID: 'ctr 1', ifname: 'eth0' }]), 7, /valid-attachments\.0\.containerID: 'ctr 1'/],
  ['valid-attachments ifname too long', 'GC', valid([{ containerID: 'ctr-1', ifname: 'x'.repeat(16) }]), 7, /valid-attachments\.0\.ifname: 'x{16}' is not a valid interface name/],
  ['old key, malformed', 'GC', cfg({ 'cni.dev/attachments': [{}] }), 7, /^cni\.dev\/attachments\.0\.containerID: /],
];

for (const [theme, cases] of Object.entries({ decoding, versions, config, runtimeConfig, prevResults, attachments })) {
  test(`malformed stdin (${theme}): the spec's code, naming the field, nothing reaches the host`, async () => {
    for (const [what, command, o, code, field] of cases) {
      const host = new FakeCniHost();
      const out = await invoke(host, command, o);
      const e = errorOf(out);
      assert.equal(e.code, code, `${what}: ${out.stdout.slice(0, 300)}`);
      assert.match(e.msg, field, what);
      assert.ok(out.stdout.length < 500, `${what}: the error stays short (${out.stdout.length} bytes)`);
      assert.deepEqual(host.calls, [], `${what} must not reach the host`);
    }
  });
}

test('errors found once the version is known answer in that version; earlier ones in 1.1.0', async () => {
  const host = new FakeCniHost();
  assert.equal(errorOf(await invoke(host, 'ADD', cfg({ cniVersion: '0.3.1', tenant: 'Blue' }))).cniVersion, '0.3.1');
  assert.equal(errorOf(await invoke(host, 'ADD', { env: { CNI_ARGS: 'IP=x' }, config: { cniVersion: '0.4.0' } })).cniVersion, '0.4.0');
  assert.equal(errorOf(await invoke(host, 'ADD', cfg({ cniVersion: '0.2.0' }))).cniVersion, '1.1.0');
  assert.equal(errorOf(await invoke(host, 'ADD', { env: { CNI_IFNAME: '' }, config: { cniVersion: '0.3.0' } })).cniVersion, '1.1.0');
});

test('runtimeConfig that is valid reaches the host normalised; CNI_ARGS win over it', async () => {
  const host = new FakeCniHost();
  const rc = { ips: ['10.1.2.5/24'], mac: '0A:58:0A:01:02:05', portMappings: [{ hostPort: 53, containerPort: 5353, protocol: 'UDP', hostIP: '0.0.0.0' }] };
  await invoke(host, 'ADD', cfg({ runtimeConfig: rc }));
  await invoke(host, 'ADD', { env: { CNI_ARGS: 'IP=10.1.2.6;MAC=0a:58:0a:01:02:06' }, config: { runtimeConfig: rc } });
  assert.deepEqual(host.adds.map((r) => [r.ip, r.mac]), [['10.1.2.5', '0a:58:0a:01:02:05'], ['10.1.2.6', '0a:58:0a:01:02:06']]);
  assert.deepEqual(host.adds[0]?.portMappings, [{ hostPort: 53, containerPort: 5353, protocol: 'udp' }]);
});

test('a malformed GC list releases nothing; a valid one releases exactly the unlisted attachments of its scope', async () => {
  const host = new FakeCniHost();
  for (const id of ['ctr-1', 'ctr-2']) await invoke(host, 'ADD', { env: { CNI_CONTAINERID: id } });
  await invoke(host, 'ADD', { env: { CNI_CONTAINERID: 'other' }, config: { group: 'web' } });
  const all = ['ctr-1/eth0', 'ctr-2/eth0', 'other/eth0'];
  for (const list of [undefined, 'none', [{ containerID: 'ctr-1' }], [{ containerID: 'ctr-1', ifname: 'eth0' }, null]]) {
    const out = await invoke(host, 'GC', valid(list));
    assert.equal(errorOf(out).code, 7, JSON.stringify(list));
    assert.deepEqual([...host.attached.keys()], all, `${JSON.stringify(list)}: nothing released`);
  }
  assert.deepEqual((await invoke(host, 'GC', valid([{ containerID: 'ctr-1', ifname: 'eth0' }]))).code, 0);
  assert.deepEqual([...host.attached.keys()], ['ctr-1/eth0', 'other/eth0'], 'only ctr-2 was released; group web is out of scope');
});

test("GC: libcni's null is its empty list, the spec's first key name still works, and the new one wins", async () => {
  const host = new FakeCniHost();
  const gcs: Array<[Record<string, unknown>, unknown[]]> = [
    [{ 'cni.dev/valid-attachments': null }, []],
    [{ 'cni.dev/attachments': [{ containerID: 'a', ifname: 'eth0' }] }, [{ containerID: 'a', ifname: 'eth0' }]],
    [{ 'cni.dev/valid-attachments': [{ containerID: 'b', ifname: 'eth1', extra: 1 }], 'cni.dev/attachments': 'ignored' }, [{ containerID: 'b', ifname: 'eth1' }]],
  ];
  for (const [config, list] of gcs) {
    const out = await invoke(host, 'GC', { config });
    assert.deepEqual(out, { code: 0, stdout: '' }, JSON.stringify(config));
    assert.deepEqual(host.calls.at(-1), ['gc', { tenant: 'blue', network: 'db-net', group: 'db', cniNetwork: 'weft.blue.db' }, list]);
  }
});
