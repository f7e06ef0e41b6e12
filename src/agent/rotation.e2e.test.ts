import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startTestHost, within, type TestHost } from '../testkit/host.js';
import { tlsFetch } from '../testkit/server.js';
import { summarize } from '../pki/index.js';

/** Host certificates that live 30 s: the agent renews at two thirds, and nothing notices. */
const root = process.getuid?.() === 0;
let h: TestHost;

before(async () => {
  if (!root) return;
  h = await startTestHost('rot', { serverArgs: ['--host-cert-ttl', '30s'] });
  assert.equal((await h.api('POST', '/api/v1/tenants/default/networks', { name: 'n', subnet: '10.7.0.0/24' })).status, 201);
  assert.ok(await within(5000, async () => existsSync(join(h.cniConfDir, 'weft-default-n.conflist'))) >= 0);
});
after(async () => h?.cleanup());

const stateFile = (f: string) => readFileSync(join(h.dir, 'agent-state', f), 'utf8');

async function container(name: string): Promise<string> {
  const netns = await h.container(name);
  const r = await h.cni('ADD', { conflist: 'weft-default-n', containerId: name, netns });
  assert.equal(r.code, 0, r.stdout);
  return r.json.ips[0].address.split('/')[0] as string;
}

test('the agent renews its certificate before it expires: no flow drops, the old one stops working, the agent keeps working', { skip: !root && 'needs root' }, async () => {
  const first = { cert: stateFile('agent.crt'), key: stateFile('agent.key') };
  const firstCert = summarize(first.cert);
  await container('c1');
  const ip2 = await container('c2');
  // A TCP session held open across the rotation: an echo server in c2, a client in c1 fed a line a second.
  const echo = spawn('ip', ['netns', 'exec', `${h.tag}-c2`, 'busybox', 'nc', '-ll', '-p', '7000', '-e', '/bin/cat'], { stdio: 'ignore' });
  const ping = spawn('ip', ['netns', 'exec', `${h.tag}-c1`, 'ping', '-i', '0.2', '-w', '45', ip2], { stdio: ['ignore', 'pipe', 'ignore'] });
  let pingOut = '';
  ping.stdout.on('data', (d) => (pingOut += d));
  try {
    await new Promise((r) => setTimeout(r, 500));
    const client = spawn('ip', ['netns', 'exec', `${h.tag}-c1`, 'busybox', 'nc', ip2, '7000'], { stdio: ['pipe', 'pipe', 'ignore'] });
    let echoed = '';
    client.stdout.on('data', (d) => (echoed += d));
    let sent = 0;
    const sessionStart = Date.now();
    const feed = setInterval(() => client.stdin.write(`line ${++sent}\n`), 1000);

    const renewedIn = await within(30_000, async () => summarize(stateFile('agent.crt')).serial !== firstCert.serial, 500);
    assert.ok(renewedIn >= 0, 'a new certificate was saved before the first one ended');
    const second = summarize(stateFile('agent.crt'));
    assert.ok(second.notAfter > firstCert.notAfter && Date.now() < firstCert.notAfter.getTime(), 'renewed while the first was still valid');
    console.log(`# renewed ${Math.round((firstCert.notAfter.getTime() - Date.now()) / 1000)} s before the first certificate ended`);

    await new Promise((r) => setTimeout(r, Math.max(0, firstCert.notAfter.getTime() - Date.now()) + 1500));
    const old = await tlsFetch(`${h.server.url}/api/v1/tenants`, { tls: first });
    assert.equal(old.status, 401, 'the first certificate is refused once it has expired');

    // The agent works on: a new container is wired (the server was asked), and a network made now gets its
    // conflist (the watch goes on, re-opened with the new certificate).
    await container('c3');
    assert.equal((await h.exec(`${h.tag}-c3`, ['ping', '-c', '1', '-W', '1', ip2])).code, 0);
    assert.equal((await h.api('POST', '/api/v1/tenants/default/networks', { name: 'm', subnet: '10.8.0.0/24' })).status, 201);
    assert.ok(await within(5000, async () => existsSync(join(h.cniConfDir, 'weft-default-m.conflist'))) >= 0, 'the agent still follows changes');

    clearInterval(feed);
    await new Promise((r) => setTimeout(r, 1200));
    client.stdin.end();
    const lines = echoed.trim().split('\n');
    assert.equal(lines.length, sent, `every line came back over the one TCP session (${lines.length}/${sent})`);
    assert.ok(sessionStart < firstCert.notAfter.getTime() - 5000 && Date.now() > firstCert.notAfter.getTime(), 'the session spanned the rotation and the expiry');
    client.kill();
  } finally {
    echo.kill();
    await new Promise((r) => ping.once('exit', r));
  }
  const loss = /([0-9.]+)% packet loss/.exec(pingOut)?.[1];
  assert.equal(loss, '0', `no ping was lost across the rotation:\n${pingOut.split('\n').slice(-3).join('\n')}`);
});
