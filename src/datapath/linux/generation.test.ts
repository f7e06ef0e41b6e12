import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeRunner } from '../../exec/index.js';
import { advance, compare, Generations, parseGeneration } from './generation.js';

test('a generation is read as inode:generation; anything else is unknown, never a match', async () => {
  assert.equal(parseGeneration('4026532244 17\n'), '4026532244:17');
  for (const bad of ['- -\n', '', '4026532244\n', '12 34 56\n', 'x 1\n']) assert.equal(parseGeneration(bad), undefined, JSON.stringify(bad));
  assert.equal(advance('4026532244:17', 2), '4026532244:19');
  const runner = new FakeRunner((argv) => (argv.length === 2 ? { stdout: '9 5\n' } : { stdout: '9 6\n- -\n' }));
  const gens = new Generations(runner, process.execPath);
  assert.equal(await gens.read('t1'), '9:5');
  assert.equal(await gens.read(undefined), undefined, 'a namespace the helper cannot read is unknown');
  assert.equal(await gens.read('t1'), '9:6', 'the second exec answered for both');
  assert.deepEqual(runner.calls.map((c) => c.argv.slice(1)), [['/run/netns/t1'], ['/run/netns/t1', '/proc/self/ns/net']], 'one exec asks for every namespace asked about so far');
  assert.equal(await new Generations(runner, '/nonexistent/weft-netwatch').read('t1'), undefined, 'without the helper nothing is read');
});

test('a generation is the same, behind our own commits, past them (someone else), or of another namespace', () => {
  assert.equal(compare('7:10', '7:10'), 'same');
  assert.equal(compare('7:9', '7:10'), 'behind');
  assert.equal(compare('7:11', '7:10'), 'past');
  assert.equal(compare('8:10', '7:10'), 'other');
  assert.equal(compare('7:100', '7:99'), 'past', 'numbers, not strings');
});

test('a big nft transaction is given time in proportion to its size', async () => {
  const { nftTimeoutMs, NftTables } = await import('./nft.js');
  assert.equal(nftTimeoutMs(''), 30_000);
  assert.equal(nftTimeoutMs('x'.repeat(19_300_000)), 230_000, 'a 19 MB replace (50,000 mixed rules) gets almost 4 minutes');
  const timeouts: Array<number | undefined> = [];
  const runner = { run: async (argv: readonly string[], o?: { timeoutMs?: number }) => { if (argv.includes('-f')) timeouts.push(o?.timeoutMs); return { code: 0, stdout: '', stderr: '' }; } };
  const big = { family: 'inet', name: 'weft', maps: [{ name: 'm', type: 'ipv4_addr', set: true, interval: false, elements: Array.from({ length: 200_000 }, (_, i) => `10.${i >> 16}.${(i >> 8) & 255}.${i & 255}`) }], chains: [] };
  await new NftTables(runner, new Generations(runner, undefined)).ensure('t1', big);
  assert.deepEqual(timeouts, [70_000], 'the replace of this ~4 MB table is allowed 70 s, not the runner\'s 30');
});

test('after an nft commit that threw (killed at its timeout: the kernel may have taken it), the next change replaces the table instead of a delta on the one before', async () => {
  const { NftTables } = await import('./nft.js');
  const scripts: string[] = [];
  let throwNext = false;
  const runner = {
    run: async (argv: readonly string[], o?: { input?: string }) => {
      if (argv.includes('-f')) {
        scripts.push(o?.input ?? '');
        if (throwNext) {
          throwNext = false;
          throw new Error('nft -f -: killed after 30 s');
        }
      }
      return { code: 0, stdout: '', stderr: '' };
    },
  };
  const nft = new NftTables(runner, new Generations(runner, undefined));
  const table = (ip: string) => ({ family: 'inet', name: 'weft', maps: [{ name: 'm', type: 'ipv4_addr : verdict', interval: false, elements: [`${ip} : accept`] }], chains: [] });
  assert.equal(await nft.ensure('t1', table('10.0.0.1'), { trustLast: true }), 'replace');
  assert.equal(await nft.ensure('t1', table('10.0.0.2'), { trustLast: true }), 'delta');
  throwNext = true;
  await assert.rejects(nft.ensure('t1', table('10.0.0.3'), { trustLast: true }), /killed/);
  scripts.length = 0;
  assert.equal(await nft.ensure('t1', table('10.0.0.2'), { trustLast: true }), 'replace', 'not "unchanged" against 10.0.0.2: the killed commit may have put 10.0.0.3 in the kernel');
  assert.match(scripts[0] ?? '', /delete table inet weft/);
});
