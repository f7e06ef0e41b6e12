import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeRunner } from '../../exec/index.js';
import { advance, Generations, parseGeneration } from './generation.js';

test('a generation is read as inode:generation; anything else is unknown, never a match', async () => {
  assert.equal(parseGeneration('4026532244 17\n'), '4026532244:17');
  for (const bad of ['- -\n', '', '4026532244\n', '12 34 56\n', 'x 1\n']) assert.equal(parseGeneration(bad), undefined, JSON.stringify(bad));
  assert.equal(advance('4026532244:17', 2), '4026532244:19');
  const runner = new FakeRunner((argv) => (argv[1] === '/run/netns/t1' ? { stdout: '9 5\n' } : { code: 1 }));
  const gens = new Generations(runner, process.execPath);
  assert.equal(await gens.read('t1'), '9:5');
  assert.equal(await gens.read(undefined), undefined, 'a failed read is unknown');
  assert.deepEqual(runner.calls.map((c) => c.argv.slice(1)), [['/run/netns/t1'], ['/proc/self/ns/net']]);
  assert.equal(await new Generations(runner, '/nonexistent/weft-nftgen').read('t1'), undefined, 'without the helper nothing is read');
});
