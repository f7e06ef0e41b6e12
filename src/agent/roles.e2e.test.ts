import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { contivTutorial, startTestHost, tutorialPods, within, type TestHost } from '../testkit/host.js';

// Classes per role (policy/roles.ts) in a real kernel: each db endpoint lets in only its own address on a
// port of its own (#13's rule shape), so sources are told apart by address and destinations are not; the
// tenant table looks the source up in one map and the destination in another, and every connection
// between the containers gets what the rules say, also when an address comes to be named as a
// destination too (its classes take new roles) and stops being so.

const root = process.getuid?.() === 0;
let h: TestHost;
const bg: ChildProcess[] = [];

before(async () => {
  if (!root) return;
  h = await startTestHost('pr');
  await contivTutorial(h);
});
after(async () => {
  for (const p of bg) p.kill('SIGKILL');
  await h?.cleanup();
});

const { ip, run, listen, reach } = tutorialPods(() => h, bg);
const DB = ['db-1', 'db-2', 'db-3'];

/** Every connection between the db containers on the ports 9001-9003: allowed exactly from db-k on 900k. */
async function assertOwnPorts(at: string): Promise<void> {
  for (const from of DB) {
    for (const to of DB) {
      if (from === to) continue;
      for (const k of [1, 2, 3]) {
        const want = from === `db-${k}`;
        // A connection the rules allow may wait for the agent; one they deny must never get through.
        const got = want ? (await within(5000, () => reach(from, to, 9000 + k), 100)) >= 0 : await reach(from, to, 9000 + k);
        assert.equal(got, want, `${at}: ${from} -> ${to}:${9000 + k}`);
      }
    }
  }
}

test('an address named only as a source tells sources apart, not destinations: two class maps, every connection as the rules say, through a flip and back', { skip: !root && 'needs root' }, async () => {
  for (const name of DB) await run(name, 'db');
  await run('app-1', 'app');
  for (const name of DB) for (const port of [8888, 9001, 9002, 9003]) await listen(name, port);
  // db-k's own address on 900k, above db-policy's deny of tcp (priority 1).
  const own = DB.map((name, i) => ({ id: `own${i + 1}`, direction: 'in', action: 'allow', protocol: 'tcp', ports: String(9001 + i), priority: 20, fromCidr: `${ip.get(name)}/32` }));
  const made = await h.api('POST', '/api/v1/tenants/default/policies', { name: 'own', rules: own });
  assert.equal(made.status, 201, JSON.stringify(made.json));
  const attach = await h.weft(['group', 'update', '-p', 'db-policy', '-p', 'own', 'db']);
  assert.equal(attach.code, 0, attach.stderr);
  await assertOwnPorts('source roles');
  assert.ok(!(await reach('app-1', 'db-2', 9001)), 'app-1 is no db-1');
  assert.ok(await reach('app-1', 'db-2', 8888), 'db-policy still lets app in on 8888');

  // The table looks sources and destinations up in maps of their own (the db endpoints are one destination
  // role), each in a chain the forward chain jumps to.
  const list = async (chain: string) => (await h.exec(`${h.tag}-t1`, ['nft', 'list', 'chain', 'inet', 'weft', chain])).stdout;
  const src = /meta mark set ip saddr map @(\w+)/.exec(await list('src_role'))?.[1];
  const dst = /ct mark set ip daddr map @(\w+)/.exec(await list('dst_role'))?.[1];
  assert.ok(src && dst && src !== dst, `two class maps: ${src}, ${dst}`);
  assert.match(await list('forward'), /jump src_role\n\s+jump dst_role/);

  // db-3's address now named as a destination too (db's egress to it on 8888 denied): its classes take new roles.
  const deny = { id: 'to3', direction: 'out', action: 'deny', protocol: 'tcp', ports: '8888', priority: 30, toCidr: `${ip.get('db-3')}/32` };
  const flipped = await h.api('PUT', '/api/v1/tenants/default/policies/own', { name: 'own', rules: [...own, deny] });
  assert.equal(flipped.status, 200, JSON.stringify(flipped.json));
  assert.ok((await within(5000, async () => !(await reach('db-1', 'db-3', 8888)), 100)) >= 0, 'db-1 may not open db-3:8888');
  assert.ok(await reach('db-1', 'db-2', 8888), 'db-2:8888 stays open to db-1');
  assert.ok(await reach('app-1', 'db-3', 8888), 'app is not db: its egress has no such rule');
  await assertOwnPorts('db-3 named both ways');

  // And no more: back as it was.
  const back = await h.api('PUT', '/api/v1/tenants/default/policies/own', { name: 'own', rules: own });
  assert.equal(back.status, 200, JSON.stringify(back.json));
  assert.ok((await within(5000, () => reach('db-1', 'db-3', 8888), 100)) >= 0, 'db-3:8888 open to db-1 again');
  await assertOwnPorts('back');
});
