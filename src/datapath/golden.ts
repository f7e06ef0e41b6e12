import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** For tests only. Where golden files live: src/datapath/testdata (this file runs from dist/datapath). */
export const TESTDATA = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'src', 'datapath', 'testdata');

/** Golden files live in src/; `UPDATE_GOLDEN=1 npm test` rewrites them, to be reviewed as a diff. */
export function golden(name: string, actual: string): void {
  const src = join(TESTDATA, name);
  if (process.env['UPDATE_GOLDEN'] === '1') writeFileSync(src, actual);
  // A missing golden file is a failure, not a new golden: otherwise a test with a typo in its name passes.
  assert.ok(existsSync(src), `${name} is missing: run the tests once with UPDATE_GOLDEN=1 and review it`);
  assert.equal(actual, readFileSync(src, 'utf8'), `${name} differs from the golden file`);
}
