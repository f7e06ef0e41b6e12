import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { goldenFiles } from '../testkit/golden.js';

/** For tests only. */

const here = dirname(fileURLToPath(import.meta.url));

/** The checkout these tests run from (dist/install or dist-inst/install → two up): its dist/bin/weft.cjs is real. */
export const PACKAGE_DIR = join(here, '..', '..');

/** Golden files live in src/install/testdata. */
export const { golden } = goldenFiles('install');

/** A throwaway root; removed when the test ends. */
export function tempRoot(t: { after(fn: () => void): void }): string {
  const root = mkdtempSync(join(tmpdir(), 'weft-install-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  return root;
}

/** Every path below `root` with its type, mode and (files) content hash, or (links) target: "exactly as before" is this, equal. */
export function listing(root: string): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const name of readdirSync(dir).sort()) {
      const p = join(dir, name);
      const s = lstatSync(p);
      const mode = (s.mode & 0o7777).toString(8);
      const rel = relative(root, p);
      if (s.isSymbolicLink()) out.push(`${rel} link ${readlinkSync(p)}`);
      else if (s.isDirectory()) {
        out.push(`${rel}/ ${mode}`);
        walk(p);
      } else out.push(`${rel} ${mode} ${createHash('sha256').update(readFileSync(p)).digest('hex').slice(0, 16)}`);
    }
  };
  walk(root);
  return out;
}

/** Writes `content` at `path` below `root`, making its directories (0755). */
export function put(root: string, path: string, content: string, mode = 0o644): void {
  const file = join(root, path);
  mkdirSync(dirname(file), { recursive: true, mode: 0o755 });
  writeFileSync(file, content, { mode });
}
