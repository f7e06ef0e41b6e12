import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The checkout the tests run from (this file runs from dist/testkit). */
const CHECKOUT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/**
 * For tests only: golden files of one src/ folder, in src/FOLDER/testdata (read from src, so a build
 * never needs copying them). `UPDATE_GOLDEN=1` rewrites them, to be reviewed as a diff.
 */
export function goldenFiles(folder: string) {
  const dir = join(CHECKOUT, 'src', folder, 'testdata');
  return {
    TESTDATA: dir,
    testdata: (name: string): string => readFileSync(join(dir, name), 'utf8'),
    golden(name: string, actual: string): void {
      const file = join(dir, name);
      if (process.env['UPDATE_GOLDEN'] === '1') writeFileSync(file, actual);
      // A missing golden file is a failure, not a new golden: otherwise a test with a typo in its name passes.
      assert.ok(existsSync(file), `${name} is missing: run the tests once with UPDATE_GOLDEN=1 and review it`);
      assert.equal(actual, readFileSync(file, 'utf8'), `${name} differs from the golden file`);
    },
  };
}
