import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { startTestHost, within, type TestHost } from '../testkit/host.js';
import { startPodman, IMAGE, RUN_FLAGS, type Podman } from '../testkit/podman.js';

const root = process.getuid?.() === 0;
let h: TestHost;
let pm: Podman;

before(async () => {
  if (!root) return;
  h = await startTestHost('pm');
  const ok = async (m: string, p: string, b?: unknown) => assert.ok((await h.api(m, p, b)).status < 300, `${m} ${p}`);
  await ok('POST', '/api/v1/tenants/default/networks', { name: 'contiv-net', subnet: '10.1.2.0/24', gateway: '10.1.2.1' });
  await ok('POST', '/api/v1/tenants/default/policies', { name: 'db-policy' });
  await ok('POST', '/api/v1/tenants/default/groups', { name: 'db', network: 'contiv-net', policies: ['db-policy'] });
  assert.ok(await within(5000, async () => existsSync(join(h.cniConfDir, 'weft-default-db.conflist'))) >= 0);
  pm = await startPodman(h.cniConfDir, [dirname(h.pluginPath)], h.hostNs);
});
after(async () => {
  await pm?.cleanup();
  await h?.cleanup();
});

test('podman runs containers on --network weft-default-db and they talk', { skip: !root && 'needs root' }, async () => {
  const web = await pm.run(['run', '-d', '--name', 'web', ...RUN_FLAGS, '--network', 'weft-default-db', IMAGE, 'sh', '-c', 'nc -ll -p 8888 -e /bin/cat']);
  assert.equal(web.code, 0, web.stderr);
  const eps = (await h.api('GET', '/api/v1/endpoints?tenant=default')).json.items;
  const ep = eps.find((e: any) => e.containerName === 'web');
  assert.ok(ep, `the endpoint carries the container name: ${JSON.stringify(eps)}`);
  assert.equal(ep.group, 'db');
  const inspect = await pm.run(['inspect', 'web', '--format', '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}']);
  assert.equal(inspect.stdout.trim(), ep.ip, 'podman reports the address Weft allocated');
  await new Promise((r) => setTimeout(r, 300));
  const client = await pm.run(['run', '--rm', ...RUN_FLAGS, '--network', 'weft-default-db', IMAGE, 'sh', '-c', `echo hi | nc -w 1 ${ep.ip} 8888`]);
  assert.equal(client.code, 0, client.stderr);
  assert.equal(client.stdout.trim(), 'hi');
  // podman writes the resolver from the CNI result: names of the tenant resolve, with its search domain.
  const named = await pm.run(['run', '--rm', ...RUN_FLAGS, '--network', 'weft-default-db', IMAGE, 'sh', '-c', 'cat /etc/resolv.conf; echo hi | nc -w 1 web 8888']);
  assert.equal(named.code, 0, named.stderr);
  assert.match(named.stdout, /nameserver 10\.1\.2\.1/);
  assert.match(named.stdout, /search .*default\.weft/);
  assert.equal(named.stdout.trim().split('\n').pop(), 'hi', `web resolved by name: ${named.stdout}`);
  const after = (await h.api('GET', '/api/v1/endpoints?tenant=default')).json.items;
  assert.equal(after.length, 1, 'the --rm client released its endpoint');

  const rm = await pm.run(['rm', '-f', '-t', '0', 'web']);
  assert.equal(rm.code, 0, rm.stderr);
  assert.equal((await h.api('GET', '/api/v1/endpoints?tenant=default')).json.items.length, 0, 'podman rm released the address');
});

test('dual stack: podman containers get an IPv6 address beside the IPv4 one, resolve each other by AAAA and talk over IPv6', { skip: !root && 'needs root' }, async () => {
  assert.ok((await h.api('POST', '/api/v1/tenants/default/networks', { name: 'dual', subnet: '10.1.9.0/24', subnet6: 'fd00:9::/64' })).status < 300);
  assert.ok((await h.api('POST', '/api/v1/tenants/default/groups', { name: 'dual6', network: 'dual' })).status < 300);
  assert.ok(await within(5000, async () => existsSync(join(h.cniConfDir, 'weft-default-dual6.conflist'))) >= 0);
  const srv = await pm.run(['run', '-d', '--name', 'srv6', ...RUN_FLAGS, '--network', 'weft-default-dual6', IMAGE, 'sh', '-c', 'nc -ll -p 8888 -e /bin/cat']);
  assert.equal(srv.code, 0, srv.stderr);
  const ep = (await h.api('GET', '/api/v1/endpoints?tenant=default')).json.items.find((e: any) => e.containerName === 'srv6');
  assert.equal(ep?.ip6, 'fd00:9::2', JSON.stringify(ep));
  const inspect = await pm.run(['inspect', 'srv6', '--format', '{{range .NetworkSettings.Networks}}{{.IPAddress}} {{.GlobalIPv6Address}}{{end}}']);
  assert.equal(inspect.stdout.trim(), `${ep.ip} ${ep.ip6}`, 'podman reports both addresses Weft allocated');
  await new Promise((r) => setTimeout(r, 300));
  const client = await pm.run(['run', '--rm', ...RUN_FLAGS, '--network', 'weft-default-dual6', IMAGE, 'sh', '-c',
    `ip -6 addr show dev eth0; ip -6 route; echo hi | nc -w 1 ${ep.ip6} 8888; nslookup -type=aaaa srv6 10.1.9.1`]);
  assert.equal(client.code, 0, client.stderr + client.stdout);
  assert.match(client.stdout, /inet6 fd00:9::3\/64/);
  assert.match(client.stdout, /default via fd00:9::1 dev eth0/);
  assert.match(client.stdout, /^hi$/m, 'a TCP echo over IPv6');
  assert.match(client.stdout, /Address: fd00:9::2/, 'srv6 resolves to its IPv6 address');
  assert.equal((await pm.run(['rm', '-f', '-t', '0', 'srv6'])).code, 0);
  assert.ok(!(await h.api('GET', '/api/v1/endpoints?tenant=default')).json.items.some((e: any) => e.network === 'dual'), 'both addresses went with the container');
});

test('IPv6 only: podman containers get one IPv6 address and nothing of IPv4, resolve each other over IPv6 and talk', { skip: !root && 'needs root' }, async () => {
  assert.ok((await h.api('POST', '/api/v1/tenants/default/networks', { name: 'six', subnet6: 'fd00:19::/64' })).status < 300);
  assert.ok((await h.api('POST', '/api/v1/tenants/default/groups', { name: 'only6', network: 'six' })).status < 300);
  assert.ok(await within(5000, async () => existsSync(join(h.cniConfDir, 'weft-default-only6.conflist'))) >= 0);
  const srv = await pm.run(['run', '-d', '--name', 'srv6only', ...RUN_FLAGS, '--network', 'weft-default-only6', IMAGE, 'sh', '-c', 'nc -ll -p 8888 -e /bin/cat']);
  assert.equal(srv.code, 0, srv.stderr);
  const ep = (await h.api('GET', '/api/v1/endpoints?tenant=default')).json.items.find((e: any) => e.containerName === 'srv6only');
  assert.deepEqual([ep?.ip, ep?.ip6], [undefined, 'fd00:19::2'], JSON.stringify(ep));
  const inspect = await pm.run(['inspect', 'srv6only', '--format', '{{range .NetworkSettings.Networks}}[{{.IPAddress}}] {{.GlobalIPv6Address}}{{end}}']);
  assert.equal(inspect.stdout.trim(), '[] fd00:19::2', 'podman reports the one IPv6 address Weft allocated');
  await new Promise((r) => setTimeout(r, 300));
  const client = await pm.run(['run', '--rm', ...RUN_FLAGS, '--network', 'weft-default-only6', IMAGE, 'sh', '-c',
    'echo "v4[$(ip -4 addr show dev eth0)]"; ip -6 route; cat /etc/resolv.conf; echo hi | nc -w 1 srv6only 8888; nslookup -type=aaaa srv6only fd00:19::1']);
  assert.equal(client.code, 0, client.stderr + client.stdout);
  assert.match(client.stdout, /^v4\[\]$/m, 'no IPv4 address on eth0');
  assert.match(client.stdout, /default via fd00:19::1 dev eth0/);
  assert.match(client.stdout, /nameserver fd00:19::1/, 'the resolver is the IPv6 gateway');
  assert.match(client.stdout, /^hi$/m, 'srv6only resolved over IPv6 and a TCP echo answered');
  assert.match(client.stdout, /Address: fd00:19::2/);
  assert.equal((await pm.run(['rm', '-f', '-t', '0', 'srv6only'])).code, 0);
  assert.ok(!(await h.api('GET', '/api/v1/endpoints?tenant=default')).json.items.some((e: any) => e.network === 'six'), 'the address went with the container');
});
