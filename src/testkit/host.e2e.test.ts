import { test } from 'node:test';
import assert from 'node:assert/strict';
import { safeList, startTestHost } from './host.js';

// A benchmark interrupted mid-loop ran the host's cleanup while its loop went on making container
// namespaces: 133 of them were left behind (bench:scale's memory part, stopped by SIGTERM).
test('cleanup() while containers are still being made leaves no namespace behind, and refuses new ones', { timeout: 120_000 }, async () => {
  const h = await startTestHost('tkc');
  let made = 0;
  let refused: Error | undefined;
  let stop = false;
  const loop = (async () => {
    for (let i = 0; !stop; i++) {
      try {
        await h.container(`c${i}`);
        made++;
      } catch (e) {
        refused = e as Error;
        return;
      }
    }
  })();
  try {
    while (made < 5) await new Promise((r) => setTimeout(r, 10));
    await h.cleanup();
    await loop;
    assert.match(refused?.message ?? '', /being removed/, 'the loop is refused once cleanup has begun');
    assert.deepEqual(safeList().filter((ns) => ns.startsWith(h.tag)), [], `no namespace of ${h.tag} is left (${made} were made)`);
  } finally {
    stop = true;
    await loop;
    await h.cleanup();
  }
});
