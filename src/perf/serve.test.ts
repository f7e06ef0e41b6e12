import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ProcessRunner } from '../exec/index.js';
import { TESTDATA, testdata } from './golden.js';
import { PerfError } from './errors.js';
import { pngAvailable } from './png.js';
import { ResultStore } from './store.js';
import { MAX_URL_LENGTH, parseServeAddress, startResultsServer, type ResultsServer } from './serve.js';

test('--serve: a bare :PORT is loopback only; other addresses are given on purpose', () => {
  assert.deepEqual(parseServeAddress(':8080'), { host: '127.0.0.1', port: 8080 });
  assert.deepEqual(parseServeAddress('0.0.0.0:8080'), { host: '0.0.0.0', port: 8080 });
  assert.deepEqual(parseServeAddress('[::1]:8080'), { host: '::1', port: 8080 });
  assert.deepEqual(parseServeAddress('[::]:1'), { host: '::', port: 1 });
  assert.deepEqual(parseServeAddress(':0'), { host: '127.0.0.1', port: 0 }, 'any free port');
  assert.deepEqual(parseServeAddress('localhost:65535'), { host: 'localhost', port: 65535 });
  for (const bad of ['8080', ':65536', ':99999', ':-1', ':80a', ':', '', 'example.com:80', '::1:80', '0.0.0.0:', '[::1]', '[example]:80', '1.2.3:80', ':8080/x']) {
    assert.throws(() => parseServeAddress(bad), (e: unknown) => e instanceof PerfError && e.code === 'WEFT_INVALID_FIELD' && e.field === '--serve' && e.message.startsWith('--serve: '), `'${bad}'`);
  }
});

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/** A request with the path sent exactly as written (fetch would normalise ../ and %2e away). */
function ask(port: number, path: string, method = 'GET'): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** What a raw request line gets back: the status, or 0 if the server closed without answering. */
function askRaw(port: number, line: string): Promise<number> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    let got = '';
    s.on('data', (d) => (got += d.toString('latin1')));
    s.on('error', () => undefined);
    s.on('close', () => resolve(Number(/^HTTP\/1\.1 (\d{3})/.exec(got)?.[1] ?? 0)));
    s.write(`${line}\r\nHost: x\r\nConnection: close\r\n\r\n`);
  });
}

let root: string;
let server: ResultsServer;
let plain: ResultsServer;
const ids: Record<string, string> = {};

before(async () => {
  root = mkdtempSync(join(tmpdir(), 'weft-perf-serve-'));
  const dir = join(root, 'results');
  mkdirSync(dir);
  for (const f of ['run-limited', 'run-loopback', 'run-flat']) {
    const { id } = JSON.parse(testdata(`${f}.json`)) as { id: string };
    copyFileSync(join(TESTDATA, `${f}.json`), join(dir, `${id}.json`));
  }
  for (const r of (await new ResultStore(dir).list()).results) ids[r.netprofile?.name ?? 'none'] = r.id;
  // A valid record outside the directory: nothing the server answers may come from it.
  const outside = await new ResultStore(join(root, 'outside')).save({ ...(await new ResultStore(dir).read(ids['gold'] as string)), tenant: 'topsecret' });
  writeFileSync(join(root, 'secret.json'), JSON.stringify(outside));
  symlinkSync(join(root, 'outside', `${outside.id}.json`), join(dir, 'linked.json'));
  writeFileSync(join(dir, 'spoiled.json'), JSON.stringify({ ...outside, id: 'spoiled', tenant: undefined }));
  server = await startResultsServer({ store: new ResultStore(dir), host: '127.0.0.1', port: 0, runner: new ProcessRunner() });
  plain = await startResultsServer({ store: new ResultStore(dir), host: '127.0.0.1', port: 0 });
});

after(async () => {
  await server.close();
  await plain.close();
  rmSync(root, { recursive: true, force: true });
});

const noScripts = (a: Answer) => {
  const csp = String(a.headers['content-security-policy']);
  assert.match(csp, /default-src 'none'/);
  assert.doesNotMatch(csp, /script-src|unsafe-inline|unsafe-eval/);
  assert.equal(a.headers['x-content-type-options'], 'nosniff');
};

test('the server listens on the address it was given, on a port the OS chose; a taken port is the flag at fault', async () => {
  assert.match(server.url, /^http:\/\/127\.0\.0\.1:\d+\/$/);
  assert.notEqual(server.port, 0);
  await assert.rejects(startResultsServer({ store: new ResultStore(root), host: '127.0.0.1', port: server.port }), {
    code: 'WEFT_INVALID_FIELD',
    field: '--serve',
    message: `--serve: 127.0.0.1:${server.port} is in use`,
  });
});

test('the index lists runs newest first, each with its summary and both charts inline, and names refused files', async () => {
  const a = await ask(server.port, '/');
  assert.equal(a.status, 200);
  assert.equal(a.headers['content-type'], 'text/html; charset=utf-8');
  noScripts(a);
  const html = a.body.toString('utf8');
  // The one stylesheet is allowed by its hash, nothing else inline.
  const style = /<style>([\s\S]*?)<\/style>/.exec(html)?.[1] ?? '';
  assert.ok(String(a.headers['content-security-policy']).includes(`style-src 'sha256-${createHash('sha256').update(style).digest('base64')}'`));
  assert.doesNotMatch(html, /<script|\sstyle=|\son\w+=/);
  const order = ['silver', 'none', 'gold'].map((p) => html.indexOf(`id="run-${ids[p]}"`));
  assert.ok(order.every((i) => i > 0) && order[0]! < order[1]! && order[1]! < order[2]!, `newest first: ${order.join(', ')}`);
  assert.equal(html.match(/<svg /g)?.length, 6);
  assert.match(html, /<td>96\.4 Mbit\/s<\/td><td>96\.3 Mbit\/s<\/td><td>98\.8 Mbit\/s<\/td>/);
  assert.match(html, /run spoiled: tenant: missing/);
  assert.match(html, /run linked: record: is a symbolic link/);
  assert.doesNotMatch(html, /topsecret/);
  assert.match(html, /throughput\.png/);
  const without = (await ask(plain.port, '/')).body.toString('utf8');
  assert.match(without, /PNG needs rsvg-convert: install librsvg2-bin/);
  assert.doesNotMatch(without, /\.png/);
});

test('each run as JSON, CSV and SVG, with its content type; HEAD gives the same headers and no body', async () => {
  const id = ids['gold'] as string;
  const cases: Array<[string, string]> = [
    [`/runs/${id}.json`, 'application/json; charset=utf-8'],
    [`/runs/${id}.csv`, 'text/csv; charset=utf-8; header=present'],
    [`/runs/${id}/throughput.svg`, 'image/svg+xml; charset=utf-8'],
    [`/runs/${id}/latency.svg`, 'image/svg+xml; charset=utf-8'],
    [`/runs/${id}.json?download=1`, 'application/json; charset=utf-8'],
  ];
  for (const [path, type] of cases) {
    const get = await ask(server.port, path);
    assert.equal(get.status, 200, path);
    assert.equal(get.headers['content-type'], type, path);
    noScripts(get);
    const head = await ask(server.port, path, 'HEAD');
    assert.equal(head.status, 200);
    assert.equal(head.body.length, 0);
    assert.equal(head.headers['content-length'], String(get.body.length));
  }
  const json = JSON.parse((await ask(server.port, `/runs/${id}.json`)).body.toString('utf8'));
  assert.deepEqual(json, await new ResultStore(join(root, 'results')).read(id));
  assert.match((await ask(server.port, `/runs/${id}/throughput.svg`)).body.toString('utf8'), /^<svg [^>]*>\n<title>Throughput shop\/default: app → db port 8888<\/title>/);
});

test('PNG when rsvg-convert is installed', { skip: !(await pngAvailable(new ProcessRunner())) && 'rsvg-convert is not installed' }, async () => {
  const a = await ask(server.port, `/runs/${ids['gold']}/latency.png`);
  assert.equal(a.status, 200);
  assert.equal(a.headers['content-type'], 'image/png');
  assert.equal(a.body.subarray(1, 4).toString('latin1'), 'PNG');
});

test('a server without a runner for rsvg-convert answers PNG with 404 saying what to install', async () => {
  assert.equal(plain.png, false);
  const none = await ask(plain.port, `/runs/${ids['gold']}/latency.png`);
  assert.equal(none.status, 404);
  assert.match(none.body.toString('utf8'), /librsvg2-bin/);
});

test('only GET and HEAD: anything else is 405 with Allow', async () => {
  for (const m of ['POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS']) {
    const a = await ask(server.port, '/', m);
    assert.equal(a.status, 405, m);
    assert.equal(a.headers['allow'], 'GET, HEAD');
  }
});

test('nothing outside the directory, and nothing but the routes, is ever served', async () => {
  const id = ids['gold'] as string;
  const paths = [
    '/runs/nope.json', `/runs/${id}.JSON`, `/runs/${id}/other.svg`, `/runs/${id}.json/`, '/favicon.ico', '/runs/', '/runs',
    '/runs/../secret.json', '/runs/../../etc/passwd', '/../secret.json', '//secret.json', '/secret.json',
    '/runs/..%2fsecret.json', '/runs/%2e%2e%2fsecret.json', '/runs/%2E%2E/secret.json', `/runs/${id}%2fthroughput.svg`,
    `/runs/${id}%2Ejson`, `/runs/${id}.json%00`, '/runs/..%5csecret.json', `/runs/${id}/..%2f..%2fsecret.json/throughput.svg`,
    `http://127.0.0.1/runs/${id}.json`, '/runs/outside.json',
  ];
  for (const p of paths) {
    const a = await ask(server.port, p);
    assert.equal(a.status, 404, p);
    noScripts(a);
    assert.doesNotMatch(a.body.toString('utf8'), /topsecret/, p);
  }
  const linked = await ask(server.port, '/runs/linked.json');
  assert.equal(linked.status, 500, 'a link in the directory is refused, not followed');
  assert.doesNotMatch(linked.body.toString('utf8'), /topsecret/);
  assert.match((await ask(server.port, '/runs/spoiled/throughput.svg')).body.toString('utf8'), /^run spoiled: tenant: missing/);
});

test('huge URLs are refused and the server goes on answering', async () => {
  assert.equal((await ask(server.port, `/runs/${'a'.repeat(MAX_URL_LENGTH)}.json`)).status, 414);
  const huge = await askRaw(server.port, `GET /${'a'.repeat(100_000)} HTTP/1.1`);
  assert.ok(huge === 431 || huge === 0, `a 100 kB URL got ${huge}`);
  assert.equal((await askRaw(server.port, 'GET / HTTP/1.1')), 200);
});
