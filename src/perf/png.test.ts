import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ExecError, FakeRunner, ProcessRunner, type Runner } from '../exec/index.js';
import { testdata } from './golden.js';
import { PerfError } from './errors.js';
import { PNG_UNAVAILABLE, pngAvailable, renderPng } from './png.js';
import { validateResult } from './results.js';
import { renderThroughputSvg } from './svg.js';

/** A machine without rsvg-convert: the runner cannot start it. */
const missing: Runner = { run: async (argv) => Promise.reject(new ExecError(argv, -1, `spawn ${argv[0]} ENOENT`)) };

test('without rsvg-convert, PNG is reported unavailable and asking for one names the Debian package', async () => {
  assert.equal(await pngAvailable(missing), false);
  assert.equal(await pngAvailable(new FakeRunner(() => ({ code: 127 }))), false);
  assert.match(PNG_UNAVAILABLE, /librsvg2-bin/);
  await assert.rejects(renderPng(missing, '<svg/>'), (e: unknown) => e instanceof PerfError && e.code === 'WEFT_TOOL_MISSING' && e.message === PNG_UNAVAILABLE);
});

test('rsvg-convert is asked through the runner, the SVG on its standard input', async () => {
  const fake = new FakeRunner();
  await assert.rejects(renderPng(fake, '<svg id="x"/>'), { code: 'ENOENT' }); // the fake writes no file
  assert.deepEqual(fake.calls[0]?.argv.slice(0, 4), ['rsvg-convert', '--format', 'png', '--output']);
  assert.equal(fake.calls[0]?.input, '<svg id="x"/>');
});

const real = new ProcessRunner();
test('with rsvg-convert, a chart becomes a 640x320 PNG', { skip: !(await pngAvailable(real)) && PNG_UNAVAILABLE }, async () => {
  const png = await renderPng(real, renderThroughputSvg(validateResult(JSON.parse(testdata('run-limited.json')))));
  assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  assert.equal(png.subarray(12, 16).toString('latin1'), 'IHDR');
  assert.deepEqual([png.readUInt32BE(16), png.readUInt32BE(20)], [640, 320]);
});
