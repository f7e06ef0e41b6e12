import assert from 'node:assert/strict';
import { WeftError, type ErrorCode } from '../model/index.js';

/** Asserts that `p` fails with a WeftError of this code, message and (optionally) field. For tests. */
export async function rejectsWith(p: Promise<unknown>, code: ErrorCode, message: RegExp, field?: string): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof WeftError, `expected a WeftError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    assert.match(e.message, message);
    if (field !== undefined) assert.equal(e.field, field);
    return true;
  });
}
