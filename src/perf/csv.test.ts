import { test } from 'node:test';
import assert from 'node:assert/strict';
import { testdata } from './golden.js';
import { CSV_HEADER, csvCell, renderCsv } from './csv.js';
import { validateResult, type BenchResult } from './results.js';

/** RFC 4180 read back: quoted cells may hold commas, doubled quotes and line breaks. */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let cell = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i] as string;
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') (cell += '"'), i++;
      else if (c === '"') quoted = false;
      else cell += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') row.push(cell), (cell = '');
    else if (c === '\r' && text[i + 1] === '\n') row.push(cell), rows.push(row), (row = []), (cell = ''), i++;
    else cell += c;
  }
  assert.equal(cell + row.join(''), '', 'the text ends with a line break');
  return rows;
}

const limited = () => validateResult(JSON.parse(testdata('run-limited.json')));

test('a run as CSV: a header, a row per sample and per latency, every row the same width', () => {
  const r = limited();
  const rows = parseCsv(renderCsv(r));
  assert.deepEqual(rows[0], [...CSV_HEADER]);
  assert.equal(rows.length, 1 + r.throughput.length + r.latenciesMs.length);
  for (const row of rows) assert.equal(row.length, CSV_HEADER.length);
  const col = (name: string) => CSV_HEADER.indexOf(name as (typeof CSV_HEADER)[number]);
  const first = rows[1] as string[];
  assert.deepEqual([first[col('series')], Number(first[col('t_seconds')]), Number(first[col('value')]), first[col('unit')]], ['throughput', 0.5, 94e6, 'bit/s']);
  const lat = rows.filter((x) => x[col('series')] === 'connect_latency').map((x) => Number(x[col('value')]));
  assert.deepEqual(lat, r.latenciesMs);
  assert.equal(first[col('netprofile')], 'gold');
});

test('text cells are quoted and formula-looking cells defused, so names cannot break or drive a spreadsheet', () => {
  assert.equal(csvCell('plain'), 'plain');
  assert.equal(csvCell('a,b'), '"a,b"');
  assert.equal(csvCell('say "hi"'), '"say ""hi"""');
  assert.equal(csvCell('two\nlines'), '"two\nlines"');
  assert.equal(csvCell('=HYPERLINK("http://x")'), `"'=HYPERLINK(""http://x"")"`);
  assert.equal(csvCell('@SUM(A1)'), "'@SUM(A1)");
  // A record that skipped validation (the type allows any string) still comes out as one well-formed row each.
  const hostile: BenchResult = { ...limited(), tenant: 'a,"b"\r\nc', network: '=1+1', throughput: [{ t: 1, bitsPerSecond: 1 }], latenciesMs: [] };
  const rows = parseCsv(renderCsv(hostile));
  assert.equal(rows.length, 2);
  assert.equal(rows[1]?.[2], 'a,"b"\r\nc');
  assert.equal(rows[1]?.[3], "'=1+1");
});
