import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { AgentFlags, Daemons } from './commands/daemon.js';
import { EXIT } from './errors.js';
import { runCli } from './program.js';

/** Daemons that record the agent's flags and start nothing. */
function recording(): { daemons: Daemons; seen: AgentFlags[] } {
  const seen: AgentFlags[] = [];
  const daemons = {
    startAgent: async (f: AgentFlags) => {
      seen.push(f);
      throw new Error('not started in this test');
    },
  } as unknown as Daemons;
  return { daemons, seen };
}

const run = async (args: string[], d: Daemons) => {
  let err = '';
  const code = await runCli(['agent', '--server', 'https://127.0.0.1:9', ...args], { out: () => undefined, err: (t) => (err += t), env: {} }, d);
  return { code, err };
};

test('weft agent --nft-helper: on by default, off when asked; anything else is refused naming the flag, and nothing starts', async () => {
  const r = recording();
  await run([], r.daemons);
  await run(['--nft-helper', 'off'], r.daemons);
  await run(['--nft-helper', 'on'], r.daemons);
  assert.deepEqual(r.seen.map((f) => f.nftHelper), [true, false, true]);
  const bad = recording();
  const { code, err } = await run(['--nft-helper', 'sometimes'], bad.daemons);
  assert.equal(code, EXIT.usage);
  assert.match(err, /--nft-helper/);
  assert.match(err, /on, off/);
  assert.equal(bad.seen.length, 0, 'refused before anything starts');
});

test('an option that takes one value, given twice, is refused naming it (commander kept the last); repeatable ones collect', async () => {
  const r = recording();
  const { code, err } = await run(['--nft-helper', 'off', '--nft-helper', 'on'], r.daemons);
  assert.equal(code, EXIT.usage);
  assert.match(err, /--nft-helper.*given twice \(off first\)/);
  assert.equal(r.seen.length, 0, 'refused before anything starts');
  let out = '';
  const rule = await runCli(['policy', 'rule-add', 'p', 'r1', '--action', 'deny', '--action', 'allow', '--server', 'https://127.0.0.1:9'], { out: () => undefined, err: (t) => (out += t), env: {} }, r.daemons);
  assert.equal(rule, EXIT.usage);
  assert.match(out, /--action.*given twice \(deny first\)/);
  // The first value the default's own (allow): still a repeat.
  let out1 = '';
  const same = await runCli(['policy', 'rule-add', 'p', 'r1', '-j', 'allow', '-j', 'deny', '--server', 'https://127.0.0.1:9'], { out: () => undefined, err: (t) => (out1 += t), env: {} }, r.daemons);
  assert.equal(same, EXIT.usage, out1);
  assert.match(out1, /--action.*given twice \(allow first\)/);
  // Repeatable: collected, not refused (the call then fails only for want of a server).
  let err2 = '';
  const group = await runCli(['group', 'create', '-p', 'a', '-p', 'b', 'net', 'g', '--server', 'https://127.0.0.1:9'], { out: () => undefined, err: (t) => (err2 += t), env: {} }, r.daemons);
  assert.notEqual(group, EXIT.usage, err2);
  assert.doesNotMatch(err2, /given twice/);
  // An empty value is no value: refused, not read as "unset".
  let err3 = '';
  const empty = await runCli(['network', 'create', '-e', '', '-s', '10.1.0.0/24', 'n', '--server', 'https://127.0.0.1:9'], { out: () => undefined, err: (t) => (err3 += t), env: {} }, r.daemons);
  assert.equal(empty, EXIT.usage);
  assert.match(err3, /--encap.*empty; give a value/);
  // An option and its --no- form together: refused whichever comes first.
  for (const args of [['-n', 'gold', '--no-netprofile'], ['--no-netprofile', '-n', 'gold']]) {
    let e = '';
    const both = await runCli(['group', 'update', ...args, 'db', '--server', 'https://127.0.0.1:9'], { out: () => undefined, err: (t) => (e += t), env: {} }, r.daemons);
    assert.equal(both, EXIT.usage, e);
    assert.match(e, /give --(no-)?netprofile or --(no-)?netprofile, not both/);
  }
});
