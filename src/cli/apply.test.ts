import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_APPLY_DOCUMENTS } from '../model/index.js';
import { MAX_DOCUMENTS, parseDocuments } from './commands/apply.js';

test('the CLI refuses past the same document count as the server', () => {
  assert.equal(MAX_DOCUMENTS, MAX_APPLY_DOCUMENTS);
});

test('parseDocuments: each document with the line its content starts on; empty and comment-only documents skipped', () => {
  const text = '# head\n---\nkind: A\n---\n# only a comment\n---\n\nkind: B\nspec: { x: 1 }\n---\n';
  assert.deepEqual(parseDocuments(text, 'f.yaml'), { documents: [{ kind: 'A' }, { kind: 'B', spec: { x: 1 } }], lines: [3, 8] });
  assert.deepEqual(parseDocuments('{"kind": "A", "metadata": {"name": "x"}}', 'f.json').documents, [{ kind: 'A', metadata: { name: 'x' } }], 'JSON is YAML');
});

test('parseDocuments: what is not a set of mappings is refused naming the file and the line', () => {
  assert.throws(() => parseDocuments('kind: A\n---\nkind: [\n', 'f.yaml'), /^CliError: f\.yaml: line 4: Flow sequence.* \(column 1\)$/);
  assert.throws(() => parseDocuments('kind: A\nspec:\n  a: 1\n  a: 2\n', 'f.yaml'), /^CliError: f\.yaml: line 4: Map keys must be unique \(column 3\)$/);
  assert.throws(() => parseDocuments('kind: A\n---\n- 1\n', 'f.yaml'), /f\.yaml: line 3: a document must be a mapping/);
  assert.throws(() => parseDocuments('---\n# nothing\n', 'f.yaml'), /f\.yaml: no documents/);
  const bomb = `a: &a [x, x, x, x, x, x, x, x, x]\n${Array.from({ length: 12 }, (_, i) => `${String.fromCharCode(98 + i)}: &${String.fromCharCode(98 + i)} [*${String.fromCharCode(97 + i)}, *${String.fromCharCode(97 + i)}, *${String.fromCharCode(97 + i)}, *${String.fromCharCode(97 + i)}]`).join('\n')}\n`;
  assert.throws(() => parseDocuments(bomb, 'bomb.yaml'), /bomb\.yaml: line 1: .*alias/i, 'an alias bomb is refused, not expanded');
  const many = Array.from({ length: MAX_DOCUMENTS + 1 }, (_, i) => `kind: Netprofile\nmetadata: { name: p${i} }`).join('\n---\n');
  assert.throws(() => parseDocuments(many, 'many.yaml'), /many\.yaml: more than 250 documents \(line 751\)/);
});

test('parseDocuments: a list of documents (what `weft get -o json` prints) is its items; an item that is no mapping is refused', () => {
  assert.deepEqual(parseDocuments('[{"kind": "A"}, {"kind": "B"}]', 'get.json').documents, [{ kind: 'A' }, { kind: 'B' }]);
  assert.deepEqual(parseDocuments('- kind: A\n- kind: B\n', 'f.yaml').lines, [1, 2], 'each item on its own line');
  assert.deepEqual(parseDocuments(JSON.stringify([{ kind: 'A', spec: { x: 1 } }, { kind: 'B' }], null, 2), 'get.json').lines, [2, 8]);
  assert.throws(() => parseDocuments('- kind: A\n- 3\n', 'f.yaml'), /f\.yaml: line 2: a document must be a mapping/);
  assert.throws(() => parseDocuments('[{"kind": "A"}, 3]', 'get.json'), /get\.json: line 1: a document must be a mapping .*each item of a list/);
  const many = JSON.stringify(Array.from({ length: MAX_DOCUMENTS + 1 }, (_, i) => ({ kind: 'Netprofile', metadata: { name: `p${i}` } })));
  assert.throws(() => parseDocuments(many, 'many.json'), /many\.json: more than 250 documents/);
});

test('parseDocuments: a stream of millions of empty documents, or an anchor used often enough to come to more than 16 MiB, is refused before it is expanded', () => {
  assert.throws(() => parseDocuments('---\n'.repeat(200_000), 'empty.yaml'), /empty\.yaml: more than 2500 documents, empty ones counted \(line 2501\)/);
  const big = 'x'.repeat(1 << 20);
  const aliases = Array.from({ length: 20 }, (_, i) => `  k${i}: *a`).join('\n');
  assert.throws(() => parseDocuments(`kind: A\nspec:\n  big: &a ${big}\n${aliases}\n`, 'anchor.yaml'), /anchor\.yaml: line 1: the document comes to more than 16777216 bytes once its aliases/);
  // An anchor used a few times is fine.
  assert.deepEqual(parseDocuments('kind: A\nspec:\n  x: &p {port: 80}\n  y: *p\n', 'ok.yaml').documents, [{ kind: 'A', spec: { x: { port: 80 }, y: { port: 80 } } }]);
});
