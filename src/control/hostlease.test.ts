import { after } from 'node:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryStore, SqliteStore } from '../store/index.js';
import { hostLeaseSuite } from './hostlease-suite.js';

const dir = mkdtempSync(join(tmpdir(), 'weft-lease-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

hostLeaseSuite('memory', async () => {
  const store = new MemoryStore();
  return { store, close: () => store.close() };
});
hostLeaseSuite('sqlite', async () => {
  const store = new SqliteStore(join(dir, `lease-${n++}.db`));
  return { store, close: () => store.close() };
});
