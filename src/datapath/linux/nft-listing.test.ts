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

// The same with the generation helper: the kernel counts every transaction, ours and anyone else's.
// `foreignBeforeListing`: someone commits to our table right after our next write, before we list it.
function countingKernel() {
  let gen = 1;
  let ours = 0;
  let foreign = 0;
  let foreignBeforeListing = false;
  let foreignAfterGenRead = false;
  let helperBroken = false;
  const helper = process.execPath; // any file that exists: the fake answers for it
  const runner = new FakeRunner((argv) => {
    if (argv[0] === helper) {
      if (helperBroken) throw Object.assign(new Error('spawn weft-netwatch ENOENT'), { code: 'ENOENT' });
      const now = gen;
      if (foreignAfterGenRead) {
        foreignAfterGenRead = false;
        gen++;
      }
      return { stdout: `4026531840 ${now}\n` };
    }
    if (argv.includes('-f')) {
      gen++;
      ours++;
      return undefined;
    }
    if (argv.includes('list')) {
      if (foreignBeforeListing) {
        foreignBeforeListing = false;
        gen++;
        foreign++;
      }
      return { stdout: `table inet t { # ours ${ours}, foreign ${foreign} }\n` };
    }
    return undefined;
  });
  const gens = new Generations(runner, helper, 0);
  return {
    runner, nft: new NftTables(runner, gens),
    foreignCommit: () => { gen++; foreign++; },
    foreignCommitElsewhere: () => { gen++; },
    foreignBeforeNextListing: () => { foreignBeforeListing = true; },
    /** Someone commits to another table right after the next generation read: that read is stale at once. */
    foreignElsewhereAfterNextRead: () => { foreignAfterGenRead = true; },
    breakHelper: () => { helperBroken = true; },
  };
}

const pass = async (nft: NftTables, t: NftTable) => (await nft.ensureAll(undefined, [t], false))[0];

test('a listing after our write that holds someone else\'s commit is not vouched for: the next check writes the table whole', async () => {
  const k = countingKernel();
  assert.equal(await pass(k.nft, table(['192.0.2.1'], [])), 'replace');
  assert.equal(await pass(k.nft, table(['192.0.2.1'], [])), 'unchanged');
  // Our delta, then someone's commit to the table, then our listing: it holds their change.
  k.foreignBeforeNextListing();
  assert.equal(await pass(k.nft, table(['192.0.2.1', '192.0.2.2'], [])), 'delta');
  // Kept, that listing matched the kernel's at every later check, and their change stayed for good.
  assert.equal(await pass(k.nft, table(['192.0.2.1', '192.0.2.2'], [])), 'replace');
  assert.equal(await pass(k.nft, table(['192.0.2.1', '192.0.2.2'], [])), 'unchanged');
});

test('with nobody else committing in between, the listing after our write is kept: no needless replace, drift still repaired', async () => {
  const k = countingKernel();
  assert.equal(await pass(k.nft, table(['192.0.2.1'], [])), 'replace');
  assert.equal(await pass(k.nft, table(['192.0.2.1', '192.0.2.2'], [])), 'delta');
  // Another table of the namespace changed (the generation moves): ours is listed and matches.
  k.foreignCommitElsewhere();
  assert.equal(await pass(k.nft, table(['192.0.2.1', '192.0.2.2'], [])), 'unchanged');
  // Ours changed by someone: its listing differs, it is written whole.
  k.foreignCommit();
  assert.equal(await pass(k.nft, table(['192.0.2.1', '192.0.2.2'], [])), 'replace');
  assert.equal(await pass(k.nft, table(['192.0.2.1', '192.0.2.2'], [])), 'unchanged');
});

test('someone else committing to another table during a pass, outside our write and listing, costs no replace', async () => {
  const k = countingKernel();
  assert.equal(await pass(k.nft, table(['192.0.2.1'], [])), 'replace');
  // The pass reads the generation, then someone commits elsewhere, then we write and list: the listing
  // holds nothing foreign, and was once thrown away for a commit anywhere since the pass's read, so
  // every pass on a busy host wrote the table whole.
  k.foreignElsewhereAfterNextRead();
  assert.equal(await pass(k.nft, table(['192.0.2.1', '192.0.2.2'], [])), 'delta');
  assert.equal(await pass(k.nft, table(['192.0.2.1', '192.0.2.2'], [])), 'unchanged');
  assert.equal(await pass(k.nft, table(['192.0.2.1', '192.0.2.2'], [])), 'unchanged');
});

test('a generation helper that cannot be started fails no write: the listing is kept as without one', async () => {
  const k = countingKernel();
  assert.equal(await pass(k.nft, table(['192.0.2.1'], [])), 'replace');
  k.breakHelper();
  assert.equal(await pass(k.nft, table(['192.0.2.1', '192.0.2.2'], [])), 'delta');
  assert.equal(await pass(k.nft, table(['192.0.2.1', '192.0.2.2'], [])), 'unchanged');
});
