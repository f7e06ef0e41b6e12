import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { startTestHost, within, type TestHost } from '../testkit/host.js';
import { startDocker, type Docker } from '../testkit/docker.js';
import { startPodman, IMAGE, RUN_FLAGS } from '../testkit/podman.js';
import { dirname, join } from 'node:path';

const root = process.getuid?.() === 0;
/** Its own driver name, so test files running side by side never share a plugin socket. */
const DRIVER = `weft-t${process.pid}`;
let h: TestHost;
let dk: Docker;

async function weft(...args: string[]): Promise<void> {
  const r = await h.weft(args);
  assert.equal(r.code, 0, `weft ${args.join(' ')}: ${r.stderr}`);
}
const endpoints = async (tenant: string) => (await h.api('GET', `/api/v1/endpoints?tenant=${tenant}`)).json.items as any[];

before(async () => {
  if (!root) return;
  h = await startTestHost('dk', { agentArgs: ['--docker-plugin', `/run/docker/plugins/${DRIVER}.sock`, '--repair-grace', '2000'] });
  await weft('tenant', 'create', 'blue');
  await weft('net', 'create', '-t', 'blue', '-s', '10.1.2.0/24', '-g', '10.1.2.1', 'contiv-net');
  await weft('net', 'create', '-t', 'blue', '-s', '10.1.3.0/24', 'other-net');
  await weft('group', 'create', '-t', 'blue', 'contiv-net', 'db');
  await weft('group', 'create', '-t', 'blue', 'other-net', 'elsewhere');
  await weft('group', 'create', '-t', 'blue', 'contiv-net', 'app');
  dk = await startDocker(h.hostNs);
  // Now that Docker's API socket exists, the agent can learn container names from it.
  await h.stopAgent();
  await h.startAgent(['--docker-api', dk.socket]);
});
after(async () => {
  await dk?.cleanup();
  await h?.cleanup();
  rmSync(`/run/docker/plugins/${DRIVER}.sock`, { force: true });
});

test('docker network create maps onto Weft objects; containers on it get Weft addresses and talk', { skip: !root && 'needs root' }, async () => {
  const net = await dk.run(['network', 'create', '-d', DRIVER, '--ipam-driver', DRIVER, '-o', 'tenant=blue', '-o', 'network=contiv-net', '-o', 'group=db', 'blue-db']);
  assert.equal(net.code, 0, net.stderr);
  const db1 = await dk.run(['run', '-d', '--name', 'db1', '--network', 'blue-db', 'bb', 'nc', '-ll', '-p', '8888', '-e', '/bin/cat']);
  assert.equal(db1.code, 0, db1.stderr);
  const eps = await endpoints('blue');
  assert.equal(eps.length, 1, JSON.stringify(eps));
  assert.deepEqual([eps[0].network, eps[0].group], ['contiv-net', 'db']);
  const inspect = await dk.run(['inspect', 'db1', '--format', '{{range .NetworkSettings.Networks}}{{.IPAddress}} {{.MacAddress}} {{.Gateway}}{{end}}']);
  assert.equal(inspect.stdout.trim(), `${eps[0].ip} ${eps[0].mac} 10.1.2.1`, 'Docker shows the address, MAC and gateway Weft gave');

  assert.ok(await within(5000, async () => (await endpoints('blue'))[0]?.containerName === 'db1') >= 0, 'the endpoint shows its container');
  const ls = await h.weft(['endpoint', 'ls', '-t', 'blue']);
  assert.match(ls.stdout, /db1/, ls.stdout);

  const cli = await dk.run(['run', '--rm', '--network', 'blue-db', 'bb', 'sh', '-c', 'echo hi | nc -w 1 db1 8888']);
  assert.equal(cli.stdout.trim(), 'hi', cli.stderr);
  // Weft's names (services, podman containers) through Docker's own resolver, told to ask the gateway;
  // from the app group, so the client is not itself one of the service's backends.
  await weft('service', 'create', '-t', 'blue', '-s', 'contiv-net', '-l', 'group=db', '-p', '80:8888:TCP', 'dbsvc');
  assert.equal((await dk.run(['network', 'create', '-d', DRIVER, '--ipam-driver', DRIVER, '-o', 'tenant=blue', '-o', 'group=app', 'blue-app'])).code, 0);
  const viaSvc = await dk.run(['run', '--rm', '--network', 'blue-app', '--dns', '10.1.2.1', '--dns-search', 'blue.weft', 'bb', 'sh', '-c', 'echo hi | nc -w 1 dbsvc 80']);
  assert.equal(viaSvc.stdout.trim(), 'hi', viaSvc.stderr);
  await weft('service', 'rm', '-t', 'blue', 'dbsvc');
  assert.ok(await within(2000, async () => (await endpoints('blue')).length === 1) >= 0);
  assert.equal((await dk.run(['network', 'rm', 'blue-app'])).code, 0);
  assert.ok(await within(2000, async () => (await endpoints('blue')).length === 1) >= 0, 'the --rm client released its address');

  const rm = await dk.run(['rm', '-f', 'db1']);
  assert.equal(rm.code, 0, rm.stderr);
  assert.ok(await within(3000, async () => (await endpoints('blue')).length === 0) >= 0, 'docker rm -f released the address');
  // The pair goes after DeleteEndpoint's answer (the kernel takes ~20 ms a veth; Docker waits on that call).
  let links = '';
  await within(3000, async () => !/wd[0-9a-f]{12}/.test(links = (await h.exec(h.hostNs, ['ip', '-o', 'link', 'show'])).stdout));
  assert.doesNotMatch(links, /wd[0-9a-f]{12}/, 'no Docker-side veth left in the host');
  assert.equal((await dk.run(['network', 'rm', 'blue-db'])).code, 0);
  assert.deepEqual((await h.api('GET', '/api/v1/tenants/blue/docker-networks')).json.items, [], 'the mapping went with the network');
});

test('docker network create --ipv6 on a dual-stack network: containers get both addresses from Weft and talk over IPv6; without --ipv6 it is refused', { skip: !root && 'needs root' }, async () => {
  await weft('net', 'create', '-t', 'blue', '-s', '10.1.6.0/24', '--subnet6', 'fd00:b:6::/64', 'dual-net');
  const refused = await dk.run(['network', 'create', '-d', DRIVER, '--ipam-driver', DRIVER, '-o', 'tenant=blue', '-o', 'network=dual-net', 'blue-dual']);
  assert.notEqual(refused.code, 0);
  assert.match(refused.stderr, /dual-stack .* with --ipv6/);
  try {
    const net = await dk.run(['network', 'create', '-d', DRIVER, '--ipam-driver', DRIVER, '--ipv6', '--subnet', '10.1.6.0/24', '--subnet', 'fd00:b:6::/64', '-o', 'tenant=blue', '-o', 'network=dual-net', 'blue-dual']);
    assert.equal(net.code, 0, net.stderr);
    const srv = await dk.run(['run', '-d', '--restart', 'always', '--name', 'd6srv', '--network', 'blue-dual', 'bb', 'nc', '-ll', '-p', '8888', '-e', '/bin/cat']);
    assert.equal(srv.code, 0, srv.stderr);
    const [ep] = (await endpoints('blue')).filter((e) => e.network === 'dual-net');
    assert.match(ep?.ip6 ?? '', /^fd00:b:6::[0-9a-f]+$/, JSON.stringify(ep));
    const inspect = await dk.run(['inspect', 'd6srv', '--format', '{{range .NetworkSettings.Networks}}{{.IPAddress}} {{.GlobalIPv6Address}}/{{.GlobalIPv6PrefixLen}} {{.IPv6Gateway}} {{.MacAddress}}{{end}}']);
    assert.equal(inspect.stdout.trim(), `${ep.ip} ${ep.ip6}/64 fd00:b:6::1 ${ep.mac}`, 'Docker shows both addresses, the IPv6 gateway and the MAC Weft recorded');
    const inside = await dk.run(['exec', 'd6srv', 'ip', '-6', 'addr', 'show', 'dev', 'eth0']);
    // Docker adds it without duplicate address detection (the link-local one it leaves to the kernel's).
    const global = inside.stdout.split('\n').find((l) => l.includes(`inet6 ${ep.ip6}/64 scope global`));
    assert.ok(global !== undefined, inside.stdout);
    assert.doesNotMatch(global, /tentative|dadfailed/, inside.stdout);
    const ping = await dk.run(['run', '--rm', '--network', 'blue-dual', 'bb', 'ping', '-6', '-c', '2', '-W', '2', ep.ip6]);
    assert.equal(ping.code, 0, ping.stdout + ping.stderr);
    const echo = await dk.run(['run', '--rm', '--network', 'blue-dual', 'bb', 'sh', '-c', `echo hi6 | nc -w 2 ${ep.ip6} 8888`]);
    assert.equal(echo.stdout.trim(), 'hi6', `TCP over IPv6 between two Docker containers: ${echo.stderr}`);
    // --ipam-opt network= names both subnets: --ipv6 without any --subnet.
    const named = await dk.run(['network', 'create', '-d', DRIVER, '--ipam-driver', DRIVER, '--ipv6', '--ipam-opt', 'tenant=blue', '--ipam-opt', 'network=dual-net', '-o', 'tenant=blue', '-o', 'network=dual-net', 'blue-dual2']);
    assert.equal(named.code, 0, named.stderr);
    const via2 = await dk.run(['run', '--rm', '--network', 'blue-dual2', 'bb', 'sh', '-c', `echo two6 | nc -w 2 ${ep.ip6} 8888`]);
    assert.equal(via2.stdout.trim(), 'two6', via2.stderr);
    assert.equal((await dk.run(['network', 'rm', 'blue-dual2'])).code, 0);
    assert.ok(await within(3000, async () => (await endpoints('blue')).filter((e) => e.network === 'dual-net').length === 1) >= 0, 'the --rm clients released their reservations');
    // A Docker Engine restart: the restart-policy container comes back with both addresses, reachable over IPv6.
    await dk.restart();
    assert.ok(await within(20_000, async () => (await dk.run(['inspect', 'd6srv', '--format', '{{.State.Running}}'])).stdout.trim() === 'true', 250) >= 0, 'd6srv is running again');
    let back: any;
    assert.ok(await within(5000, async () => ([back] = (await endpoints('blue')).filter((e) => e.network === 'dual-net')).length === 1 && back.ip6 !== undefined) >= 0, 'one dual-stack endpoint again');
    const after = await dk.run(['run', '--rm', '--network', 'blue-dual', 'bb', 'sh', '-c', `echo back6 | nc -w 2 ${back.ip6} 8888`]);
    assert.equal(after.stdout.trim(), 'back6', `over IPv6 after Docker's restart: ${after.stderr}`);
    assert.ok(await within(3000, async () => (await endpoints('blue')).filter((e) => e.network === 'dual-net').length === 1) >= 0);
    assert.equal((await dk.run(['rm', '-f', 'd6srv'])).code, 0);
    assert.ok(await within(3000, async () => (await endpoints('blue')).filter((e) => e.network === 'dual-net').length === 0) >= 0, 'docker rm -f released both addresses');
    // Both addresses went back: the next container gets the same pair.
    const again = await dk.run(['run', '-d', '--name', 'd6again', '--network', 'blue-dual', 'bb', 'sleep', '60']);
    assert.equal(again.code, 0, again.stderr);
    const [ep2] = (await endpoints('blue')).filter((e) => e.network === 'dual-net');
    assert.deepEqual([ep2?.ip, ep2?.ip6], [ep.ip, ep.ip6]);
    assert.equal((await dk.run(['rm', '-f', 'd6again'])).code, 0);
    // --ip6 picks the IPv6 address (and --ip the IPv4 one): Docker shows them, and they answer.
    const picked = await dk.run(['run', '-d', '--name', 'd6pick', '--network', 'blue-dual', '--ip', '10.1.6.77', '--ip6', 'fd00:b:6::77', 'bb', 'nc', '-ll', '-p', '8888', '-e', '/bin/cat']);
    assert.equal(picked.code, 0, picked.stderr);
    const [ep3] = (await endpoints('blue')).filter((e) => e.network === 'dual-net');
    assert.deepEqual([ep3?.ip, ep3?.ip6], ['10.1.6.77', 'fd00:b:6::77'], JSON.stringify(ep3));
    const shown = await dk.run(['inspect', 'd6pick', '--format', '{{range .NetworkSettings.Networks}}{{.IPAddress}} {{.GlobalIPv6Address}}{{end}}']);
    assert.equal(shown.stdout.trim(), '10.1.6.77 fd00:b:6::77');
    const echo6 = await dk.run(['run', '--rm', '--network', 'blue-dual', 'bb', 'sh', '-c', 'echo picked | nc -w 2 fd00:b:6::77 8888']);
    assert.equal(echo6.stdout.trim(), 'picked', echo6.stderr);
    assert.equal((await dk.run(['rm', '-f', 'd6pick'])).code, 0);
    assert.ok(await within(3000, async () => (await endpoints('blue')).filter((e) => e.network === 'dual-net').length === 0) >= 0, 'both picked addresses went back');
    assert.ok(await within(3000, async () => (await endpoints('blue')).filter((e) => e.network === 'dual-net').length === 0) >= 0);
    assert.equal((await dk.run(['network', 'rm', 'blue-dual'])).code, 0);
  } finally {
    // Also when it failed: the next tests count this tenant's endpoints.
    await dk.run(['rm', '-f', 'd6srv', 'd6again']);
    await dk.run(['network', 'rm', 'blue-dual', 'blue-dual2']);
    await within(3000, async () => (await endpoints('blue')).every((e) => e.network !== 'dual-net'));
    await weft('net', 'rm', '-t', 'blue', 'dual-net');
  }
});

test('bad options make docker network create fail with Weft\'s message and change nothing', { skip: !root && 'needs root' }, async () => {
  const create = (...o: string[]) => dk.run(['network', 'create', '-d', DRIVER, '--ipam-driver', DRIVER, ...o, 'bad']);
  const cases: Array<[string[], RegExp]> = [
    [['-o', 'tenant=nope', '-o', 'network=contiv-net'], /tenant nope/],
    [['-o', 'tenant=blue', '-o', 'network=contiv-net', '-o', 'group=elsewhere'], /group blue\/elsewhere is on network other-net, not contiv-net/],
    [['-o', 'tenant=blue', '-o', 'network=contiv-net', '--subnet', '10.9.0.0/24'], /--subnet 10\.9\.0\.0\/24 conflicts with network blue\/contiv-net \(10\.1\.2\.0\/24\)/],
    [['-o', 'tenant=blue', '-o', 'colour=red', '-o', 'network=contiv-net'], /unknown option -o colour/],
    [['-o', 'tenant=blue', '-o', 'network=missing'], /network blue\/missing does not exist; give --subnet/],
    [['-o', 'tenant=blue', '-o', 'network=../../users'], /-o network: '\.\.\/\.\.\/users' is not a Weft name/],
  ];
  for (const [opts, why] of cases) {
    const r = await create(...opts);
    assert.notEqual(r.code, 0, `${opts.join(' ')} was accepted`);
    assert.match(r.stderr, why);
    assert.match(r.stderr, /weft: /, 'the message is Weft\'s');
  }
  assert.equal((await dk.run(['network', 'ls', '-q', '--filter', 'name=bad'])).stdout.trim(), '');
  assert.deepEqual((await h.api('GET', '/api/v1/tenants/blue/docker-networks')).json.items, []);
  assert.deepEqual((await h.api('GET', '/api/v1/tenants/blue/networks')).json.items.map((n: any) => n.name).sort(), ['contiv-net', 'other-net']);
});

test('with --subnet and no Weft network, the network is created with the --docker-token-file user\'s rights (never the host\'s)', { skip: !root && 'needs root' }, async () => {
  const create = ['network', 'create', '-d', DRIVER, '--ipam-driver', DRIVER, '--subnet', '10.1.9.0/24', '-o', 'tenant=blue', '-o', 'network=made', 'made'];
  const refused = await dk.run(create);
  assert.notEqual(refused.code, 0);
  assert.match(refused.stderr, /weft: network blue\/made does not exist: create it with `weft net create -t blue -s 10\.1\.9\.0\/24 made`, or give the agent --docker-token-file/);
  assert.equal((await h.api('GET', '/api/v1/tenants/blue/networks/made')).status, 404, 'the host certificate created nothing');
  // A tenant user of blue lends Docker its rights: it can create in blue, and only there.
  assert.equal((await h.api('POST', '/api/v1/users', { name: 'docker-blue', role: 'tenant', tenants: ['blue'], password: 'docker-blue-pw' })).status, 201);
  const token = (await h.api('POST', '/api/v1/login', { username: 'docker-blue', password: 'docker-blue-pw' })).json.token as string;
  assert.ok(token, 'the user has a token');
  const tokenFile = join(h.dir, 'docker.token');
  writeFileSync(tokenFile, token, { mode: 0o600 });
  await h.stopAgent();
  await h.startAgent(['--docker-api', dk.socket, '--docker-token-file', tokenFile]);
  const r = await dk.run(create);
  assert.equal(r.code, 0, r.stderr);
  const elsewhere = await dk.run(['network', 'create', '-d', DRIVER, '--ipam-driver', DRIVER, '--subnet', '10.1.8.0/24', '-o', 'tenant=default', '-o', 'network=nope', 'nope']);
  assert.notEqual(elsewhere.code, 0, 'not in a tenant the user may not use');
  const net = await h.api('GET', '/api/v1/tenants/blue/networks/made');
  assert.equal(net.json.subnet, '10.1.9.0/24');
  const run = await dk.run(['run', '--rm', '--network', 'made', 'bb', 'ip', '-4', '-o', 'addr', 'show', 'eth0']);
  assert.match(run.stdout, /inet 10\.1\.9\.\d+\/24/, run.stderr);
  assert.equal((await dk.run(['network', 'rm', 'made'])).code, 0);
});

test('published ports, docker network connect and disconnect', { skip: !root && 'needs root' }, async () => {
  for (const [name, group] of [['blue-db', 'db'], ['blue-else', 'elsewhere']] as const) {
    const r = await dk.run(['network', 'create', '-d', DRIVER, '--ipam-driver', DRIVER, '-o', 'tenant=blue', '-o', `group=${group}`, name]);
    assert.equal(r.code, 0, r.stderr);
  }
  const web = await dk.run(['run', '-d', '--name', 'web', '-p', '18081:8888', '--network', 'blue-db', 'bb', 'nc', '-ll', '-p', '8888', '-e', '/bin/cat']);
  assert.equal(web.code, 0, web.stderr);
  const published = await h.exec(h.hostNs, ['busybox', 'nc', '-w', '2', h.hostIp, '18081'], { input: 'hi\n' });
  assert.equal(published.stdout.trim(), 'hi', `the published port answers (${published.stderr})`);

  assert.equal((await dk.run(['network', 'connect', 'blue-else', 'web'])).code, 0);
  const two = await endpoints('blue');
  assert.deepEqual(two.map((e) => e.network).sort(), ['contiv-net', 'other-net']);
  const addrs = await dk.run(['exec', 'web', 'ip', '-4', '-o', 'addr', 'show']);
  assert.match(addrs.stdout, /eth1\s+inet 10\.1\.3\.\d+\/24/, addrs.stdout);
  assert.equal((await dk.run(['network', 'disconnect', 'blue-else', 'web'])).code, 0);
  assert.ok(await within(2000, async () => (await endpoints('blue')).map((e) => e.network).join() === 'contiv-net') >= 0, 'disconnect released the second address');

  assert.equal((await dk.run(['rm', '-f', 'web'])).code, 0);
  assert.ok(await within(3000, async () => (await endpoints('blue')).length === 0) >= 0);
  const hostNat = (await h.exec(h.hostNs, ['nft', 'list', 'table', 'inet', 'weft'])).stdout;
  assert.match(hostNat, /masquerade/, 'the host table is there');
  assert.doesNotMatch(hostNat, /18081/, 'the published port is gone with the container');
  for (const n of ['blue-db', 'blue-else']) assert.equal((await dk.run(['network', 'rm', n])).code, 0);
});

test('a Docker Engine restart brings restart-policy containers back connected, and leaks nothing', { skip: !root && 'needs root' }, async () => {
  assert.equal((await dk.run(['network', 'create', '-d', DRIVER, '--ipam-driver', DRIVER, '-o', 'tenant=blue', '-o', 'group=db', 'blue-db'])).code, 0);
  const r1 = await dk.run(['run', '-d', '--restart', 'always', '--name', 'r1', '--network', 'blue-db', 'bb', 'nc', '-ll', '-p', '8888', '-e', '/bin/cat']);
  assert.equal(r1.code, 0, r1.stderr);
  const talk = async () => (await dk.run(['run', '--rm', '--network', 'blue-db', 'bb', 'sh', '-c', 'echo hi | nc -w 1 r1 8888'])).stdout.trim();
  assert.equal(await talk(), 'hi');

  await dk.restart();
  assert.ok(await within(20_000, async () => (await dk.run(['inspect', 'r1', '--format', '{{.State.Running}}'])).stdout.trim() === 'true', 250) >= 0, 'r1 is running again');
  assert.ok(await within(5000, async () => (await talk()) === 'hi') >= 0, 'and reachable by name as before');
  // The --rm clients' releases finish in the background, within moments.
  const settled = await within(3000, async () => (await endpoints('blue')).length === 1);
  const eps = await endpoints('blue');
  assert.ok(settled >= 0, `one endpoint, r1's: ${JSON.stringify(eps.map((e) => e.containerName ?? e.containerId))}`);
  assert.equal(eps[0].containerName, 'r1');
  let hostLinks = '';
  await within(3000, async () => !/wd[0-9a-f]{12}/.test(hostLinks = (await h.exec(h.hostNs, ['ip', '-o', 'link', 'show'])).stdout));
  assert.doesNotMatch(hostLinks, /wd[0-9a-f]{12}/, 'no Docker-side veth left behind in the host');
  const tenantVeths = (await h.exec(`${h.tag}-t2`, ['ip', '-o', 'link', 'show', 'type', 'veth'])).stdout.split('\n').filter((l) => / we[0-9a-f]{12}@/.test(l));
  assert.equal(tenantVeths.length, 1, `one veth in the tenant:\n${tenantVeths.join('\n')}`);

  assert.equal((await dk.run(['rm', '-f', 'r1'])).code, 0);
  assert.ok(await within(3000, async () => (await endpoints('blue')).length === 0) >= 0);
  assert.equal((await dk.run(['network', 'rm', 'blue-db'])).code, 0);
});

test('Docker and podman containers on the same Weft groups reach each other and obey the same policy', { skip: !root && 'needs root' }, async () => {
  await weft('policy', 'create', '-t', 'blue', 'db-policy');
  await weft('policy', 'rule-add', '-t', 'blue', 'db-policy', '1', '-direction=in', '-protocol=tcp', '-action=deny');
  await weft('policy', 'rule-add', '-t', 'blue', 'db-policy', '2', '-direction=in', '-protocol=tcp', '-port=8888', '-action=allow', '-priority=10');
  await weft('group', 'update', '-t', 'blue', '-p', 'db-policy', 'db');
  for (const g of ['db', 'app']) {
    const r = await dk.run(['network', 'create', '-d', DRIVER, '--ipam-driver', DRIVER, '-o', 'tenant=blue', '-o', `group=${g}`, `blue-${g}`]);
    assert.equal(r.code, 0, r.stderr);
  }
  assert.ok(await within(5000, async () => existsSync(`${h.cniConfDir}/weft-blue-app.conflist`)) >= 0);
  const pm = await startPodman(h.cniConfDir, [dirname(h.pluginPath)], h.hostNs);
  try {
    const serve = 'nc -ll -p 8888 -e /bin/cat & nc -ll -p 8889 -e /bin/cat & wait';
    assert.equal((await dk.run(['run', '-d', '--name', 'ddb', '--network', 'blue-db', 'bb', 'sh', '-c', serve])).code, 0);
    const pdb = await pm.run(['run', '-d', '--name', 'pdb', ...RUN_FLAGS, '--network', 'weft-blue-db', IMAGE, 'sh', '-c', serve]);
    assert.equal(pdb.code, 0, pdb.stderr);
    const ipOf = async (name: string) => (await endpoints('blue')).find((e) => e.containerName === name)?.ip as string;
    assert.ok(await within(5000, async () => Boolean(await ipOf('ddb')) && Boolean(await ipOf('pdb'))) >= 0, 'both endpoints are named');
    const [ddb, pdbIp] = [await ipOf('ddb'), await ipOf('pdb')];
    await new Promise((r) => setTimeout(r, 300));
    const fromPodman = async (ip: string, port: number) => (await pm.run(['run', '--rm', ...RUN_FLAGS, '--network', 'weft-blue-app', IMAGE, 'sh', '-c', `echo hi | nc -w 1 ${ip} ${port}`])).stdout.trim();
    const fromDocker = async (ip: string, port: number) => (await dk.run(['run', '--rm', '--network', 'blue-app', 'bb', 'sh', '-c', `echo hi | nc -w 1 ${ip} ${port}`])).stdout.trim();
    const observed = [await fromPodman(ddb, 8888), await fromPodman(ddb, 8889), await fromDocker(pdbIp, 8888), await fromDocker(pdbIp, 8889), await fromDocker(ddb, 8888), await fromPodman(pdbIp, 8888)];
    assert.deepEqual(observed, ['hi', '', 'hi', '', 'hi', 'hi'], 'podman app → docker db: 8888 only; docker app → podman db: 8888 only; and each to its own kind');
  } finally {
    await pm.cleanup();
    await dk.run(['rm', '-f', 'ddb']);
  }
  assert.ok(await within(3000, async () => (await endpoints('blue')).length === 0) >= 0, 'nothing left');
  for (const g of ['db', 'app']) assert.equal((await dk.run(['network', 'rm', `blue-${g}`])).code, 0);
});

test('Docker endpoints that Docker no longer has, and unclaimed addresses, are collected', { skip: !root && 'needs root' }, async () => {
  assert.equal((await dk.run(['network', 'create', '-d', DRIVER, '--ipam-driver', DRIVER, '-o', 'tenant=blue', '-o', 'group=db', 'blue-db'])).code, 0);
  const keep = await dk.run(['run', '-d', '--name', 'keep', '--network', 'blue-db', 'bb', 'sleep', '3600']);
  assert.equal(keep.code, 0, keep.stderr);
  // What an agent killed in the middle of `docker rm`, or a RequestAddress never followed by CreateEndpoint, leaves.
  const leak = (containerId: string) => h.api('POST', '/api/v1/endpoints', { tenant: 'blue', network: 'contiv-net', group: 'db', containerId, host: `${h.tag}-h`, ifname: 'eth0', labels: { runtime: 'docker' } });
  assert.equal((await leak('ab'.repeat(32))).status, 201);
  assert.equal((await leak('ipam-0123456789abcdef')).status, 201);
  assert.equal((await endpoints('blue')).length, 3);
  assert.ok(await within(10_000, async () => (await endpoints('blue')).length === 1, 250) >= 0, 'both leaks released after the grace period');
  assert.equal((await endpoints('blue'))[0].containerName, 'keep', 'the live container keeps its endpoint');
  assert.equal((await dk.run(['rm', '-f', 'keep'])).code, 0);
  assert.ok(await within(3000, async () => (await endpoints('blue')).length === 0) >= 0);
  assert.equal((await dk.run(['network', 'rm', 'blue-db'])).code, 0);
});

test('docker run --label gives the pod its labels and namespace (those that are labels), and NetworkPolicy selects it by them', { skip: !root && 'needs root' }, async () => {
  assert.equal((await dk.run(['network', 'create', '-d', DRIVER, '--ipam-driver', DRIVER, '-o', 'tenant=blue', '-o', 'group=app', 'blue-app'])).code, 0);
  const labels = ['--label', 'pod=a', '--label', 'namespace=x', '--label', 'vendor=ACME Inc', '--label', 'runtime=cni', '--label', 'group=db'];
  const srv = await dk.run(['run', '-d', '--name', 'xa', ...labels, '--network', 'blue-app', 'bb', 'nc', '-ll', '-p', '8888', '-e', '/bin/cat']);
  assert.equal(srv.code, 0, srv.stderr);
  const ep = async () => (await endpoints('blue')).find((e) => e.containerName === 'xa');
  assert.ok(await within(5000, async () => (await ep())?.labels?.pod === 'a') >= 0, `the labels came: ${JSON.stringify(await ep())}`);
  const xa = await ep();
  assert.deepEqual(xa.labels, { runtime: 'docker', network: 'contiv-net', group: 'app', pod: 'a', namespace: 'x' }, 'runtime, network and group stay; a value with a space is no label value');
  const probe = async () => (await dk.run(['run', '--rm', '--label', 'namespace=y', '--network', 'blue-app', 'bb', 'sh', '-c', `echo hi | nc -w 1 ${xa.ip} 8888`])).stdout.trim();
  assert.equal(await probe(), 'hi');
  const isolate = { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name: 'a-from-z', namespace: 'x', tenant: 'blue' }, spec: { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{ from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'z' } } }] }] } };
  try {
    assert.equal((await h.api('POST', '/api/v1/apply', { documents: [isolate] })).status, 200);
    assert.ok(await within(5000, async () => (await probe()) === '') >= 0, 'x/a, selected by its Docker labels, takes nothing but from z');
  } finally {
    await h.api('POST', '/api/v1/apply', { delete: true, documents: [isolate] });
    await dk.run(['rm', '-f', 'xa']);
  }
  assert.ok(await within(3000, async () => (await endpoints('blue')).length === 0) >= 0);
  assert.equal((await dk.run(['network', 'rm', 'blue-app'])).code, 0);
});
