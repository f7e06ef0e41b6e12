import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Each src/ folder's README says what it may import ("May import: `model`, `client`, ..."); this holds the
 * code to it, so a layer boundary is checked, not prose (Cilium checks that policy never imports the
 * datapath the same way). Product code only: tests may reach into any layer, and `bench`, `bin` and
 * `testkit` are harness and wiring.
 */
const SRC = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'src');
const UNCHECKED = new Set(['bench', 'bin', 'testkit']);

/** Folders with a README (plugins/cni and plugins/docker are folders of their own). */
function folders(): string[] {
  const out: string[] = [];
  for (const d of readdirSync(SRC)) {
    const p = join(SRC, d);
    if (!statSync(p).isDirectory()) continue;
    if (existsSync(join(p, 'README.md'))) out.push(d);
    for (const sub of readdirSync(p)) if (existsSync(join(p, sub, 'README.md')) && statSync(join(p, sub)).isDirectory()) out.push(`${d}/${sub}`);
  }
  return out;
}

/** The folders named in backticks on the README's "May import:" line (the rest of that line is prose). */
function allowed(folder: string, known: ReadonlySet<string>): Set<string> {
  const text = readFileSync(join(SRC, folder, 'README.md'), 'utf8');
  const line = /May import:([^\n]*(?:\n(?!\n)[^\n]*)*)/.exec(text)?.[1] ?? '';
  const sentence = line.split(/\bNever\b/)[0] ?? '';
  return new Set([...sentence.matchAll(/`([a-z/]+)`/g)].map((m) => m[1] as string).filter((n) => known.has(n)));
}

/** Helpers only tests import, by name: they may reach the testkit like the tests themselves. */
const TEST_HELPER = /(^|\/)(golden|testing)\.ts$/;

function sources(dir: string, helpers = false): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    if (statSync(p).isDirectory()) return existsSync(join(p, 'README.md')) ? [] : sources(p, helpers);
    return f.endsWith('.ts') && !f.endsWith('.test.ts') && TEST_HELPER.test(p) === helpers ? [p] : [];
  });
}

/** The folder (as named in READMEs) a relative import lands in. */
function folderOf(file: string, known: ReadonlySet<string>): string | undefined {
  const rel = relative(SRC, file).split('/');
  const two = rel.slice(0, 2).join('/');
  return known.has(two) ? two : known.has(rel[0] ?? '') ? rel[0] : undefined;
}

test('every folder imports only what its README allows', () => {
  const all = folders();
  const known = new Set(all);
  assert.ok(all.includes('model') && all.includes('plugins/cni'), `folders found: ${all.join(', ')}`);
  const violations: string[] = [];
  for (const folder of all.filter((f) => !UNCHECKED.has(f))) {
    const ok = allowed(folder, known);
    for (const file of sources(join(SRC, folder))) {
      const code = readFileSync(file, 'utf8');
      for (const m of code.matchAll(/(?:^|\n)\s*(?:import|export)\b[^'"]*?from\s+'(\.[^']+)'/g)) {
        const target = folderOf(resolve(dirname(file), m[1] as string), known);
        if (target === undefined || target === folder) continue;
        if (!ok.has(target)) violations.push(`${relative(SRC, file)} imports ${target} (its README allows: ${[...ok].join(', ') || 'no other folder'})`);
      }
    }
  }
  assert.deepEqual(violations, []);
});

test('product code never imports a test helper (golden.ts, testing.ts) nor the testkit', () => {
  const all = folders();
  const known = new Set(all);
  const violations: string[] = [];
  for (const folder of all.filter((f) => !UNCHECKED.has(f))) {
    const ok = allowed(folder, known);
    for (const file of sources(join(SRC, folder))) {
      for (const m of readFileSync(file, 'utf8').matchAll(/(?:^|\n)\s*(?:import|export)\b[^'"]*?from\s+'(\.[^']+)'/g)) {
        const spec = m[1] as string;
        const testkit = folderOf(resolve(dirname(file), spec), known) === 'testkit' && !ok.has('testkit');
        if (/\/(golden|testing)\.js$/.test(spec) || testkit) violations.push(`${relative(SRC, file)} imports ${spec}`);
      }
    }
  }
  assert.deepEqual(violations, []);
});
