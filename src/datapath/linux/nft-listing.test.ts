import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeRunner } from '../../exec/index.js';
import type { NftTable } from '../table.js';
import { Generations } from './generation.js';
import { NftTables } from './nft.js';

// How a table in a namespace the agent does not own (the host's) is checked: by its listing. A fake
// kernel: every listing names the transactions committed so far, so a listing kept from before the last
// commit never matches the kernel's.

function kernel(opts: { listing?: 'fails' } = {}) {
  let commits = 0;
  const runner = new FakeRunner((argv) => {
    if (argv.includes('-f')) commits++;
    if (argv.includes('list')) return opts.listing === 'fails' ? { code: 1, stderr: 'Error: Could not process rule: No such file or directory' } : { stdout: `table inet t { # after ${commits} commits }\n` };
    return undefined;
  });
  // No generation helper: the host namespace's checks list the table.
  return { runner, nft: new NftTables(runner, new Generations(runner, undefined)) };
}

const table = (checked: string[], unchecked: string[]): NftTable => ({
  family: 'inet', name: 't', chains: [],
  maps: [
    { name: 'peers', type: 'ipv4_addr', set: true, interval: false, elements: checked, checked: true },
    { name: 'other', type: 'ipv4_addr', set: true, interval: false, elements: unchecked },
  ],
});

const look = (nft: NftTables, t: NftTable) => nft.ensure(undefined, t, { view: 'touched', owned: false });

test('a table listed whole is listed again after a change to any of its maps, a map not checked too: the next check does not replace it', async () => {
  const { nft } = kernel();
  assert.equal(await look(nft, table(['192.0.2.1'], ['198.51.100.1'])), 'replace');
  assert.equal(await look(nft, table(['192.0.2.1'], ['198.51.100.1'])), 'unchanged');
  assert.equal(await look(nft, table(['192.0.2.1'], ['198.51.100.1', '198.51.100.2'])), 'delta');
  // Listed whole, the listing held the unchecked map's elements too: kept from before the delta, it
  // no longer matched, and this check replaced a table nobody else had touched.
  assert.equal(await look(nft, table(['192.0.2.1'], ['198.51.100.1', '198.51.100.2'])), 'unchanged');
});

test('a table whose listing fails is never taken as matching: each check writes it whole', async () => {
  const { nft, runner } = kernel({ listing: 'fails' });
  assert.equal(await look(nft, table(['192.0.2.1'], [])), 'replace');
  // Two failed listings (after the write, at the check) were once both '' and so equal: drift went unseen.
  assert.equal(await look(nft, table(['192.0.2.1'], [])), 'replace');
  assert.equal(runner.calls.filter((c) => c.argv.includes('-f')).length, 2);
});
