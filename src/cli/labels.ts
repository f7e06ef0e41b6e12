import { usage } from './errors.js';

/**
 * `key=value` (set) and `key-` (remove) words of `weft ep label` and `weft host label`, as the merge the
 * server takes (null removes). act() joins a variadic argument with spaces; a label never holds one.
 * fromEntries: every key an own property, so the server judges each (`__proto__` too).
 */
export function labelChanges(joined: string | undefined): Record<string, string | null> {
  return Object.fromEntries((joined ?? '').split(' ').map((item, i) => {
    const set = /^([^=]+)=(.*)$/.exec(item);
    const gone = /^(.+)-$/.exec(item);
    if (set) return [set[1] as string, set[2] as string];
    if (gone) return [gone[1] as string, null];
    throw usage(`labels.${i}: '${item}' is neither key=value (set) nor key- (remove)`);
  }));
}
