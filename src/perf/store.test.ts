import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ProcessRunner } from '../exec/index.js';
import { PerfError } from './errors.js';
import { RUN_ID_PATTERN, type BenchRunInput } from './results.js';
import { ResultStore, newRunId } from './store.js';

const run = (time: string, tenant = 'shop'): BenchRunInput => ({
  time,
  tenant,
  network: 'default',
  fromGroup: 'app',
  toGroup: 'db',
  port: 8888,
  durationSeconds: 1,
  netprofile: null,
  throughput: [{ t: 1, bitsPerSecond: 1e9 }],
  latenciesMs: [0.2],
});

function withDir(fn: (dir: string) => Promise<void>): () => Promise<void> {
  return async () => {
    const dir = mkdtempSync(join(tmpdir(), 'weft-perf-store-'));
    try {
      await fn(dir);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
}

test('ids are the UTC start time to the millisecond and a random part, and sort as the runs do', () => {
  assert.equal(newRunId(new Date('2026-12-01T09:08:07.654Z'), '9f0c1a2b'), '20261201-090807-654-9f0c1a2b');
  const ids = ['2026-12-01T09:59:59.999Z', '2026-12-01T10:00:00.000Z', '2027-01-01T00:00:00.000Z'].map((t) => newRunId(new Date(t)));
  for (const id of ids) assert.match(id, RUN_ID_PATTERN);
  assert.deepEqual([...ids].sort(), ids);
  assert.notEqual(newRunId(new Date(0)), newRunId(new Date(0)));
});

test('a saved run is one 0644 file in a 0755 directory, with nothing left beside it, and reads back equal', withDir(async (root) => {
  const dir = join(root, 'results', 'bench');
  const old = process.umask(0o077);
  try {
    const store = new ResultStore(dir);
    const saved = await store.save(run('2026-12-01T10:00:00.000Z'));
    assert.equal(statSync(dir).mode & 0o777, 0o755);
    assert.equal(statSync(join(dir, `${saved.id}.json`)).mode & 0o777, 0o644);
    assert.deepEqual(readdirSync(dir), [`${saved.id}.json`]);
    assert.deepEqual(await store.read(saved.id), saved);
    assert.deepEqual(saved.summary.throughputBitsPerSecond, { mean: 1e9, median: 1e9, p99: 1e9 });
  } finally {
    process.umask(old);
  }
}));

test('a run that would not read back is never written', withDir(async (dir) => {
  await assert.rejects(new ResultStore(dir, () => '../escape').save(run('2026-12-01T10:00:00.000Z')), { code: 'WEFT_INVALID_FIELD', field: 'id' });
  await assert.rejects(new ResultStore(dir).save(run('2026-12-01T10:00:00.000Z', 'Not A Name')), { field: 'tenant' });
  assert.deepEqual(readdirSync(dir), []);
}));

test('list is newest first, limited, and says how many older runs it left out', withDir(async (dir) => {
  const store = new ResultStore(dir);
  for (const t of ['2026-12-01T10:00:00.000Z', '2026-12-03T10:00:00.000Z', '2026-12-02T10:00:00.000Z']) await store.save(run(t));
  const all = await store.list();
  assert.deepEqual(all.results.map((r) => r.time), ['2026-12-03T10:00:00.000Z', '2026-12-02T10:00:00.000Z', '2026-12-01T10:00:00.000Z']);
  assert.equal(all.more, 0);
  const two = await store.list(2);
  assert.deepEqual(two.results.map((r) => r.time), ['2026-12-03T10:00:00.000Z', '2026-12-02T10:00:00.000Z']);
  assert.equal(two.more, 1);
  assert.deepEqual(await new ResultStore(join(dir, 'none')).list(), { results: [], refused: [], more: 0 });
}));

test('ids outside ^[a-z0-9-]{1,64}$ are refused before any file is touched; a missing run is not found', withDir(async (dir) => {
  const store = new ResultStore(dir);
  for (const id of ['../etc/passwd', '..', 'a/b', 'A', '', 'x'.repeat(65), 'a.json', 'a\u0000b']) await assert.rejects(store.read(id), { code: 'WEFT_INVALID_FIELD', field: 'id' });
  await assert.rejects(store.read('nope'), { code: 'WEFT_NOT_FOUND', message: 'run nope: not found' });
}));

test('corrupt, renamed, linked and special files are refused by name; the good runs still list', withDir(async (root) => {
  const dir = join(root, 'results');
  const store = new ResultStore(dir);
  const good = await store.save(run('2026-12-01T10:00:00.000Z'));
  // A valid record outside the directory, reachable only by a symbolic link.
  const secret = await new ResultStore(join(root, 'elsewhere')).save(run('2026-12-01T09:00:00.000Z', 'secret'));
  symlinkSync(join(root, 'elsewhere', `${secret.id}.json`), join(dir, 'linked.json'));
  writeFileSync(join(dir, 'truncated.json'), '{"version":1,"id":"trun');
  writeFileSync(join(dir, 'spoiled.json'), JSON.stringify({ ...good, id: 'spoiled', port: 'eighty' }));
  copyFileSync(join(dir, `${good.id}.json`), join(dir, 'renamed.json'));
  await new ProcessRunner().run(['mkfifo', join(dir, 'fifo.json')]);
  writeFileSync(join(dir, 'notes.txt'), 'not a record name');

  await assert.rejects(store.read('linked'), (e: unknown) => e instanceof PerfError && e.message === 'run linked: record: is a symbolic link, not a file');
  await assert.rejects(store.read('truncated'), { code: 'WEFT_INVALID_FIELD', field: 'record', message: 'run truncated: record: is not JSON' });
  await assert.rejects(store.read('spoiled'), { field: 'port', message: /^run spoiled: port: / });
  await assert.rejects(store.read('renamed'), { field: 'id' });
  await assert.rejects(store.read('fifo'), { field: 'record', message: 'run fifo: record: is not a regular file' });

  const listing = await store.list();
  assert.deepEqual(listing.results.map((r) => r.id), [good.id]);
  assert.deepEqual(listing.refused.map((f) => f.id).sort(), ['fifo', 'linked', 'renamed', 'spoiled', 'truncated']);
}));
