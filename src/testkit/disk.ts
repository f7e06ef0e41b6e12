import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ProcessRunner } from '../exec/index.js';

const runner = new ProcessRunner();

/**
 * A small filesystem of its own (tmpfs, root only) that a test fills to its last byte: the "full disk"
 * fault for a server whose data dir lives on it. `fill()` writes a filler file until the kernel answers
 * ENOSPC; `free()` deletes it; `unmount()` removes everything (call it in an after() hook).
 */
export interface SmallDisk {
  /** The mount point; give a server a directory under it (the mount point itself cannot be removed). */
  dir: string;
  /** Fills what is left; returns the bytes the filler took. */
  fill(): number;
  /** Deletes the filler: the space is back at once. */
  free(): void;
  unmount(): Promise<void>;
}

const FILLER = '.filler';

export async function mountSmallDisk(sizeMiB = 16): Promise<SmallDisk> {
  const dir = mkdtempSync(join(tmpdir(), 'weft-disk-'));
  await runner.run(['mount', '-t', 'tmpfs', '-o', `size=${sizeMiB}m,mode=0700`, 'tmpfs', dir]);
  const filler = join(dir, FILLER);
  return {
    dir,
    fill() {
      const fd = openSync(filler, 'a');
      let bytes = 0;
      try {
        // Big blocks first, then single pages for the tail: stops only at ENOSPC.
        for (const block of [Buffer.alloc(1 << 20), Buffer.alloc(4096), Buffer.alloc(1)]) {
          try {
            for (;;) bytes += writeSync(fd, block);
          } catch (e) {
            if ((e as NodeJS.ErrnoException).code !== 'ENOSPC') throw e;
          }
        }
      } finally {
        closeSync(fd);
      }
      return bytes;
    },
    free() {
      rmSync(filler, { force: true });
    },
    async unmount() {
      // Lazily if something still holds a file there: the mount point must not outlive the test.
      if ((await runner.run(['umount', dir], { allowFailure: true })).code !== 0) await runner.run(['umount', '-l', dir], { allowFailure: true });
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
