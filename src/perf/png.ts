import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ExecError, type Runner } from '../exec/index.js';
import { PerfError } from './errors.js';

/** What to tell a user who wants PNG on a machine without librsvg's converter (SVG needs nothing). */
export const PNG_UNAVAILABLE = 'PNG needs rsvg-convert: install librsvg2-bin (Debian and Ubuntu: apt-get install librsvg2-bin); the SVG charts need nothing';

/** Whether `rsvg-convert` runs here. */
export async function pngAvailable(runner: Runner): Promise<boolean> {
  try {
    return (await runner.run(['rsvg-convert', '--version'], { allowFailure: true, timeoutMs: 5_000 })).code === 0;
  } catch {
    // The runner rejects even with allowFailure when the program cannot be started at all (ENOENT).
    return false;
  }
}

/**
 * An SVG chart as PNG. The runner hands standard output back as text, which would mangle binary, so
 * rsvg-convert writes into a private temporary directory, read and removed here.
 */
export async function renderPng(runner: Runner, svg: string): Promise<Buffer> {
  const dir = await mkdtemp(join(tmpdir(), 'weft-png-'));
  const out = join(dir, 'chart.png');
  try {
    await runner.run(['rsvg-convert', '--format', 'png', '--output', out], { input: svg, timeoutMs: 15_000 });
    return await readFile(out);
  } catch (e) {
    if (e instanceof ExecError && e.code === -1 && /ENOENT/.test(e.stderr)) throw new PerfError('WEFT_TOOL_MISSING', PNG_UNAVAILABLE, { cause: e });
    throw e;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
