import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { summarise } from './stats.js';

/** The C load generator (httpload.c), built with the rest by scripts/build-shim.mjs when OpenSSL's headers are there. */
export const HTTPLOAD = join(dirname(fileURLToPath(import.meta.url)), 'weft-httpload');

export interface LoadRun {
  /** Requests answered per second of the run. */
  rate: number;
  lat: ReturnType<typeof summarise>;
  /** The load generator's own CPU (user + system) per request, µs. */
  clientUs: number;
  /** Requests that found every connection busy when they were due (open loop). */
  waited: number;
  /** Answers with a status of 300 or more. */
  failed: number;
  /** Each answer's first "ip" field ('-' where none): what a caller checks for distinct addresses. */
  ips: string[];
  over10: number;
}

export interface LoadTarget {
  url: URL;
  ca: string;
  /** The client's certificate and key (PEM), for mTLS; none: no client certificate. */
  cert?: string;
  key?: string;
}

/**
 * Runs weft-httpload: `count` POSTs of `body` (its `%d` the request's number) to `path`, over `conns`
 * kept-alive connections; `rate` 0 a closed loop, else an open loop at that rate. The certificate material
 * goes through files in a private directory, removed afterwards.
 */
export async function httpload(t: LoadTarget, path: string, body: string, conns: number, count: number, rate: number): Promise<LoadRun> {
  const dir = mkdtempSync(join(tmpdir(), 'weft-httpload-'));
  try {
    writeFileSync(join(dir, 'ca.pem'), t.ca, { mode: 0o600 });
    if (t.cert && t.key) {
      writeFileSync(join(dir, 'cert.pem'), t.cert, { mode: 0o600 });
      writeFileSync(join(dir, 'key.pem'), t.key, { mode: 0o600 });
    }
    const mtls = t.cert !== undefined && t.key !== undefined;
    const argv = [t.url.hostname, t.url.port, join(dir, 'ca.pem'), mtls ? join(dir, 'cert.pem') : '-', mtls ? join(dir, 'key.pem') : '-', path, String(conns), String(count), String(rate), body];
    const out = await new Promise<string>((resolve, reject) => {
      const p = spawn(HTTPLOAD, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      p.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
      p.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
      p.on('error', reject);
      p.on('exit', (code) => (code === 0 ? resolve(stdout) : reject(new Error(`weft-httpload exited with ${code}: ${stderr.trim()}`))));
    });
    return parseLoad(out, count);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** weft-httpload's output: "done SECONDS CPU_US WAITED FAILED", then "LATENCY_US STATUS IP" per request. */
export function parseLoad(out: string, count: number): LoadRun {
  const [head = '', ...lines] = out.trim().split('\n');
  const m = /^done ([0-9.]+) ([0-9]+) ([0-9]+) ([0-9]+)$/.exec(head);
  if (!m) throw new Error(`weft-httpload: no summary line (${head.slice(0, 80)})`);
  if (lines.length !== count) throw new Error(`weft-httpload: ${lines.length} answers for ${count} requests`);
  const lat: number[] = [];
  const ips: string[] = [];
  for (const l of lines) {
    const [us = '', , ip = '-'] = l.split(' ');
    lat.push(Number(us) / 1000);
    ips.push(ip);
  }
  return {
    rate: count / Number(m[1]), lat: summarise(lat), clientUs: Number(m[2]) / count, waited: Number(m[3]), failed: Number(m[4]), ips,
    over10: lat.filter((x) => x > 10).length,
  };
}

/** Whether the load generator was built (it needs OpenSSL's headers: libssl-dev). */
export const haveHttpload = () => existsSync(HTTPLOAD);
