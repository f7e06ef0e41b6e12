import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeCniHost, errorOf, invoke, type Env } from './fake.js';

// Every malformed CNI_* variable: exit 1, code 4 (invalid environment variables), a message that names
// the variable, at most a few hundred bytes whatever came in, and nothing reached the host.

type Case = [what: string, command: string | undefined, env: Env, field: RegExp];
const huge = 'a'.repeat(100_000);

const commandCases: Case[] = [
  ['CNI_COMMAND missing', undefined, {}, /^CNI_COMMAND: missing/],
  ['CNI_COMMAND empty', '', {}, /^CNI_COMMAND: missing/],
  ['CNI_COMMAND lower case', 'add', {}, /^CNI_COMMAND: 'add' is not one of ADD, DEL, CHECK, GC, STATUS, VERSION$/],
  ['CNI_COMMAND garbage', 'ADD; rm -rf /', {}, /^CNI_COMMAND: 'ADD; rm -rf \/'/],
  ['CNI_COMMAND huge', huge, {}, /^CNI_COMMAND: 'a{64}\.\.\.' \(100000 characters\)/],
];

const idCases: Case[] = [
  ['CNI_CONTAINERID missing', 'ADD', { CNI_CONTAINERID: undefined }, /^CNI_CONTAINERID: missing$/],
  ['CNI_CONTAINERID empty', 'DEL', { CNI_CONTAINERID: '' }, /^CNI_CONTAINERID: missing$/],
  ['CNI_CONTAINERID with a slash', 'ADD', { CNI_CONTAINERID: 'ctr/../../etc' }, /^CNI_CONTAINERID: 'ctr\/\.\.\/\.\.\/etc' must start/],
  ['CNI_CONTAINERID with a space', 'CHECK', { CNI_CONTAINERID: 'ctr 1' }, /^CNI_CONTAINERID: 'ctr 1'/],
  ['CNI_CONTAINERID starting with a dash', 'DEL', { CNI_CONTAINERID: '-rf' }, /^CNI_CONTAINERID: '-rf' must start with a letter or digit/],
  ['CNI_CONTAINERID with a colon', 'ADD', { CNI_CONTAINERID: 'ctr:1' }, /^CNI_CONTAINERID: 'ctr:1'/],
  ['CNI_CONTAINERID of 129 characters', 'ADD', { CNI_CONTAINERID: 'c'.repeat(129) }, /^CNI_CONTAINERID: 129 characters is more than 128$/],
  ['CNI_CONTAINERID huge', 'DEL', { CNI_CONTAINERID: huge }, /^CNI_CONTAINERID: 100000 characters is more than 128$/],
];

const netnsCases: Case[] = [
  ['CNI_NETNS missing for ADD', 'ADD', { CNI_NETNS: undefined }, /^CNI_NETNS: missing$/],
  ['CNI_NETNS missing for CHECK', 'CHECK', { CNI_NETNS: '' }, /^CNI_NETNS: missing$/],
  // '.' exists wherever the agent runs: a relative path must be refused, not resolved against its cwd.
  ['CNI_NETNS relative', 'ADD', { CNI_NETNS: '.' }, /^CNI_NETNS: '\.' is not an absolute path$/],
  ['CNI_NETNS relative with a name', 'CHECK', { CNI_NETNS: 'proc/self/ns/net' }, /^CNI_NETNS: 'proc\/self\/ns\/net' is not an absolute path$/],
  ['CNI_NETNS with a NUL', 'ADD', { CNI_NETNS: '/proc/self/ns/net\0x' }, /^CNI_NETNS: .* is not an absolute path$/],
  ['CNI_NETNS that does not exist', 'ADD', { CNI_NETNS: '/run/netns/weft-test-no-such-netns' }, /^CNI_NETNS: '\/run\/netns\/weft-test-no-such-netns' does not exist$/],
  ['CNI_NETNS huge', 'ADD', { CNI_NETNS: `/${huge}` }, /^CNI_NETNS: 100001 characters is more than 4096$/],
];

const ifnameCases: Case[] = [
  ['CNI_IFNAME missing', 'ADD', { CNI_IFNAME: undefined }, /^CNI_IFNAME: missing$/],
  ['CNI_IFNAME empty', 'DEL', { CNI_IFNAME: '' }, /^CNI_IFNAME: missing$/],
  ['CNI_IFNAME of 16 characters', 'ADD', { CNI_IFNAME: 'sixteen-chars-xx' }, /^CNI_IFNAME: 'sixteen-chars-xx' is not a valid interface name \(1-15/],
  ['CNI_IFNAME with a slash', 'ADD', { CNI_IFNAME: 'eth/0' }, /^CNI_IFNAME: 'eth\/0'/],
  ['CNI_IFNAME with a space', 'CHECK', { CNI_IFNAME: 'eth 0' }, /^CNI_IFNAME: 'eth 0'/],
  ['CNI_IFNAME with a newline', 'ADD', { CNI_IFNAME: 'eth\n0' }, /^CNI_IFNAME: 'eth\n0'/],
  ['CNI_IFNAME with a colon', 'DEL', { CNI_IFNAME: 'eth0:1' }, /^CNI_IFNAME: 'eth0:1'/],
  ['CNI_IFNAME ..', 'ADD', { CNI_IFNAME: '..' }, /^CNI_IFNAME: '\.\.'/],
  ['CNI_IFNAME of 15 non-ASCII characters', 'ADD', { CNI_IFNAME: 'é'.repeat(15) }, /^CNI_IFNAME: 'é{15}'/],
];

const argsCases: Case[] = [
  ['CNI_ARGS pair without =', 'ADD', { CNI_ARGS: 'garbage' }, /^CNI_ARGS: 'garbage' is not KEY=VALUE$/],
  ['CNI_ARGS pair with two =', 'ADD', { CNI_ARGS: 'IgnoreUnknown=1;IP=1=2' }, /^CNI_ARGS: 'IP=1=2' is not KEY=VALUE$/],
  ['CNI_ARGS pair without a key', 'ADD', { CNI_ARGS: '=1' }, /^CNI_ARGS: '=1' is not KEY=VALUE$/],
  ['CNI_ARGS unknown key', 'ADD', { CNI_ARGS: 'K8S_POD_NAME=web;FOO=bar' }, /^CNI_ARGS: unknown key 'FOO' \(IgnoreUnknown=1 ignores them\)$/],
  ['CNI_ARGS unknown keys with IgnoreUnknown=0', 'ADD', { CNI_ARGS: 'IgnoreUnknown=0;A=1;B=2' }, /^CNI_ARGS: unknown keys 'A', 'B'/],
  ['CNI_ARGS IgnoreUnknown not a boolean', 'ADD', { CNI_ARGS: 'IgnoreUnknown=maybe' }, /^CNI_ARGS: IgnoreUnknown='maybe' is not one of 1, true, 0, false$/],
  ['CNI_ARGS IP garbage', 'ADD', { CNI_ARGS: 'IP=garbage' }, /^CNI_ARGS: IP='garbage' is not an IPv4 or IPv6 address$/],
  ['CNI_ARGS two IPv4 addresses', 'ADD', { CNI_ARGS: 'IP=10.1.2.5,10.1.2.6' }, /^CNI_ARGS: IP='10\.1\.2\.5,10\.1\.2\.6' is a second address of its family/],
  ['CNI_ARGS IPv6 with a bad prefix', 'ADD', { CNI_ARGS: 'IP=fd00::5/129' }, /^CNI_ARGS: IP='fd00::5\/129' is not an IPv4 or IPv6 address$/],
  ['CNI_ARGS IPv6 with a zone', 'ADD', { CNI_ARGS: 'IP=fe80::5%eth0' }, /^CNI_ARGS: IP='fe80::5%eth0' is not/],
  ['CNI_ARGS IP out of range', 'ADD', { CNI_ARGS: 'IP=10.1.2.300' }, /^CNI_ARGS: IP='10\.1\.2\.300'/],
  ['CNI_ARGS IP with a bad prefix', 'ADD', { CNI_ARGS: 'IP=10.1.2.5/33' }, /^CNI_ARGS: IP='10\.1\.2\.5\/33'/],
  ['CNI_ARGS MAC garbage', 'ADD', { CNI_ARGS: 'MAC=zz:zz:zz:zz:zz:zz' }, /^CNI_ARGS: MAC='zz:zz:zz:zz:zz:zz' is not a MAC address/],
  ['CNI_ARGS MAC multicast', 'ADD', { CNI_ARGS: 'MAC=01:00:5e:00:00:01' }, /^CNI_ARGS: MAC='01:00:5e:00:00:01' is a multicast address$/],
  ['CNI_ARGS MAC all zeros', 'ADD', { CNI_ARGS: 'MAC=00:00:00:00:00:00' }, /^CNI_ARGS: MAC='00:00:00:00:00:00' is all zeros$/],
  ['CNI_ARGS K8S_POD_NAME huge', 'ADD', { CNI_ARGS: `K8S_POD_NAME=${huge}` }, /^CNI_ARGS: K8S_POD_NAME='a{64}\.\.\.' \(100000 characters\) is not a pod name/],
  ['CNI_ARGS K8S_POD_NAME with a space', 'ADD', { CNI_ARGS: 'K8S_POD_NAME=web 1' }, /^CNI_ARGS: K8S_POD_NAME='web 1' is not a pod name/],
  ['CNI_ARGS WEFT_LABELS without a value', 'ADD', { CNI_ARGS: 'WEFT_LABELS=app:web,tier' }, /^CNI_ARGS: WEFT_LABELS='app:web,tier' has 'tier' without a value \(key:value, comma-separated\)$/],
  ['CNI_ARGS WEFT_LABELS bad key', 'ADD', { CNI_ARGS: 'WEFT_LABELS=-app:web' }, /^CNI_ARGS: WEFT_LABELS='-app:web' has label key '-app': 1-63 of/],
  ['CNI_ARGS WEFT_LABELS bad value', 'ADD', { CNI_ARGS: 'WEFT_LABELS=app:w b' }, /^CNI_ARGS: WEFT_LABELS='app:w b' has label 'app' with value 'w b': at most 63/],
  ['CNI_ARGS WEFT_LABELS a namespace that is no namespace name', 'ADD', { CNI_ARGS: 'WEFT_LABELS=app:web,namespace:Shop.Prod' }, /^CNI_ARGS: WEFT_LABELS='app:web,namespace:Shop\.Prod' has namespace 'Shop\.Prod', which is not a namespace name/],
  ['CNI_ARGS WEFT_LABELS an empty namespace', 'ADD', { CNI_ARGS: 'WEFT_LABELS=namespace:' }, /has namespace '', which is not a namespace name/],
  ['CNI_ARGS WEFT_LABELS __proto__', 'ADD', { CNI_ARGS: 'WEFT_LABELS=__proto__:x' }, /has label key '__proto__': 1-63 of/],
  ['CNI_ARGS WEFT_LABELS value with a colon', 'ADD', { CNI_ARGS: 'WEFT_LABELS=app:a:b' }, /has label 'app' with value 'a:b'/],
  ['CNI_ARGS WEFT_LABELS too many', 'ADD', { CNI_ARGS: `WEFT_LABELS=${Array.from({ length: 65 }, (_, i) => `k${i}:v`).join(',')}` }, /^CNI_ARGS: WEFT_LABELS='.*' \(\d+ characters\) holds 65 labels \(at most 64\)$/],
];

for (const [theme, cases] of Object.entries({ commandCases, idCases, netnsCases, ifnameCases, argsCases })) {
  test(`malformed environment (${theme.replace('Cases', '')}): code 4 naming the variable, nothing reaches the host`, async () => {
    for (const [what, command, env, field] of cases) {
      const host = new FakeCniHost();
      const out = await invoke(host, command, { env });
      const e = errorOf(out);
      assert.equal(e.code, 4, `${what}: ${out.stdout.slice(0, 300)}`);
      assert.match(e.msg, field, what);
      assert.ok(out.stdout.length < 400, `${what}: the error stays short (${out.stdout.length} bytes)`);
      assert.deepEqual(host.calls, [], `${what} must not reach the host`);
    }
  });
}

test('the edges of what is valid reach the host unchanged', async () => {
  const ok: Array<[string, string, Env, unknown[]]> = [
    ['CNI_CONTAINERID of 128 characters', 'ADD', { CNI_CONTAINERID: 'c'.repeat(128) }, ['add', 'c'.repeat(128)]],
    ['CNI_IFNAME of 15 characters', 'CHECK', { CNI_IFNAME: 'fifteen-chars-x' }, ['check', 'ctr-1', 'fifteen-chars-x']],
    ['CNI_IFNAME with dots and dashes', 'DEL', { CNI_IFNAME: 'net.1-a_b' }, ['del', 'ctr-1', 'net.1-a_b']],
  ];
  for (const [what, command, env, call] of ok) {
    const host = new FakeCniHost();
    if (command === 'CHECK') await invoke(host, 'ADD', { env });
    const out = await invoke(host, command, { env });
    assert.equal(out.code, 0, `${what}: ${out.stdout}`);
    const last = host.calls.at(-1) as unknown[];
    assert.deepEqual(command === 'ADD' ? [last[0], (last[1] as { containerId: string }).containerId] : last.slice(0, 3), call, what);
  }
});

test('CNI_ARGS: IgnoreUnknown drops unknown keys, IP and MAC are normalised, an empty pair is skipped', async () => {
  const host = new FakeCniHost();
  const out = await invoke(host, 'ADD', { env: { CNI_ARGS: 'IgnoreUnknown=true;;FOO=bar;IP=10.1.2.5/24;MAC=0A:58:0A:01:02:05;K8S_POD_UID=u-1' } });
  assert.equal(out.code, 0, out.stdout);
  const [req] = host.adds;
  assert.deepEqual([req?.ip, req?.mac, req?.containerName], ['10.1.2.5', '0a:58:0a:01:02:05', undefined]);
  assert.ok(!JSON.stringify(req).includes('FOO'), 'an ignored key goes nowhere');
});

test('dual stack: one address of each family, from CNI_ARGS (host-local\'s comma form, over runtimeConfig) or runtimeConfig.ips; IPv6 made canonical', async () => {
  const host = new FakeCniHost();
  assert.equal((await invoke(host, 'ADD', { env: { CNI_ARGS: 'IP=FD00:0::05/64,10.1.2.5' } })).code, 0);
  assert.deepEqual([host.adds[0]?.ip, host.adds[0]?.ip6], ['10.1.2.5', 'fd00::5']);
  const cfg = new FakeCniHost();
  assert.equal((await invoke(cfg, 'ADD', { config: { runtimeConfig: { ips: ['10.1.2.7/24', 'fd00::7/64'] } } })).code, 0);
  assert.deepEqual([cfg.adds[0]?.ip, cfg.adds[0]?.ip6], ['10.1.2.7', 'fd00::7']);
  const only6 = new FakeCniHost();
  assert.equal((await invoke(only6, 'ADD', { env: { CNI_ARGS: 'IP=fd00::9' }, config: { runtimeConfig: { ips: ['10.1.2.7'] } } })).code, 0);
  assert.deepEqual([only6.adds[0]?.ip, only6.adds[0]?.ip6], [undefined, 'fd00::9'], 'CNI_ARGS wins whole');
  for (const ips of [['fd00::1', 'fd00::2'], ['10.1.2.1', '10.1.2.2'], ['a', 'b', 'c']]) {
    const bad = new FakeCniHost();
    const out = await invoke(bad, 'ADD', { config: { runtimeConfig: { ips } } });
    const e = errorOf(out);
    assert.equal(e.code, 7, JSON.stringify(ips));
    assert.match(e.msg, ips.length > 2 ? /runtimeConfig\.ips: 3 addresses/ : /runtimeConfig\.ips\.1: '[^']+' is a second address of its family/);
    assert.deepEqual(bad.adds, [], 'nothing reached the host');
  }
});

test('WEFT_LABELS gives the endpoint labels (podman passes CNI_ARGS from its environment), over the config\'s and K8S_POD_NAMESPACE', async () => {
  const host = new FakeCniHost();
  const config = { args: { cni: { labels: [{ key: 'app', value: 'db' }, { key: 'tier', value: 'back' }] } } };
  const env = { CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAME=x-a;K8S_POD_NAMESPACE=x-a;WEFT_LABELS=app:web,port.weft.io/http:80,namespace:x,empty:' };
  assert.equal((await invoke(host, 'ADD', { env, config })).code, 0);
  assert.deepEqual(host.adds[0]?.labels, { app: 'web', tier: 'back', namespace: 'x', 'port.weft.io/http': '80', empty: '' });
  const bare = new FakeCniHost();
  assert.equal((await invoke(bare, 'ADD', { env: { CNI_ARGS: 'WEFT_LABELS=' } })).code, 0);
  assert.deepEqual(bare.adds[0]?.labels, {}, 'an empty list is no labels');
});

test('K8S_POD_NAMESPACE becomes the endpoint\'s `namespace` label (over one the config gives) when it is a namespace name', async () => {
  const host = new FakeCniHost();
  assert.equal((await invoke(host, 'ADD', { env: { CNI_ARGS: 'K8S_POD_NAME=web;K8S_POD_NAMESPACE=shop-prod' } })).code, 0);
  assert.equal(host.adds[0]?.labels['namespace'], 'shop-prod');
  const both = new FakeCniHost();
  const labels = { args: { cni: { labels: [{ key: 'namespace', value: 'other' }, { key: 'app', value: 'web' }] } } };
  assert.equal((await invoke(both, 'ADD', { env: { CNI_ARGS: 'K8S_POD_NAMESPACE=shop' }, config: labels })).code, 0);
  assert.deepEqual(both.adds[0]?.labels, { namespace: 'shop', app: 'web' });
  const label = new FakeCniHost();
  assert.equal((await invoke(label, 'ADD', { config: labels })).code, 0);
  assert.equal(label.adds[0]?.labels['namespace'], 'other', 'without the argument, the label as given');
  const none = new FakeCniHost();
  assert.equal((await invoke(none, 'ADD', { env: { CNI_ARGS: 'K8S_POD_NAME=web' } })).code, 0);
  assert.equal(none.adds[0]?.labels['namespace'], undefined, 'no namespace given, none made up');
  // Podman sends its container's name as K8S_POD_NAMESPACE: one that is no namespace name costs the label, not the container.
  for (const other of ['My_Box', 'a_b', '-x', 'x'.repeat(64), '']) {
    const host = new FakeCniHost();
    const out = await invoke(host, 'ADD', { env: { CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=${other};K8S_POD_NAME=box` }, config: labels });
    assert.equal(out.code, 0, `${other}: ${out.stdout}`);
    assert.equal(host.adds[0]?.labels['namespace'], 'other', `${other}: the config's label stays`);
  }
});

test('a pod name longer than a container name (129-253) is no reason to refuse the pod: it goes unnamed', async () => {
  for (const [pod, named] of [['p'.repeat(128), 'p'.repeat(128)], ['p'.repeat(129), undefined], ['p'.repeat(253), undefined]] as const) {
    const host = new FakeCniHost();
    const out = await invoke(host, 'ADD', { env: { CNI_ARGS: `K8S_POD_NAME=${pod}` } });
    assert.equal(out.code, 0, out.stdout);
    assert.equal(host.adds[0]?.containerName, named, `${pod.length} characters`);
  }
  const out = await invoke(new FakeCniHost(), 'ADD', { env: { CNI_ARGS: `K8S_POD_NAME=${'p'.repeat(254)}` } });
  assert.match(JSON.parse(out.stdout).msg, /K8S_POD_NAME=.* is not a pod name/);
});

test('DEL never fails on what only ADD reads: CNI_ARGS garbage, no netns, a netns that is gone, an unknown container', async () => {
  const host = new FakeCniHost();
  const dels: Array<Env> = [
    { CNI_ARGS: 'garbage;IP=nope;FOO=1', CNI_NETNS: undefined },
    { CNI_NETNS: '/run/netns/weft-test-gone' },
    { CNI_NETNS: 'relative/too', CNI_CONTAINERID: 'never-added' },
  ];
  for (const env of dels) {
    const out = await invoke(host, 'DEL', { env });
    assert.deepEqual([out.code, out.stdout], [0, ''], JSON.stringify(env));
  }
  assert.deepEqual(host.calls, [['del', 'ctr-1', 'eth0'], ['del', 'ctr-1', 'eth0'], ['del', 'never-added', 'eth0']]);
});

test('GC and STATUS need no container variables, and ignore stray ones', async () => {
  const host = new FakeCniHost();
  const none = { CNI_CONTAINERID: undefined, CNI_NETNS: undefined, CNI_IFNAME: undefined, CNI_ARGS: 'garbage' };
  const gc = await invoke(host, 'GC', { env: none, config: { 'cni.dev/valid-attachments': [] } });
  const status = await invoke(host, 'STATUS', { env: { ...none, CNI_IFNAME: 'not a valid name at all' } });
  assert.deepEqual([gc, status], [{ code: 0, stdout: '' }, { code: 0, stdout: '' }]);
  assert.deepEqual(host.calls.map((c) => c[0]), ['gc', 'status']);
});
