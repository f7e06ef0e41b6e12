import { closeSync, createReadStream, existsSync, fchmodSync, fstatSync, mkdirSync, openSync, readSync, renameSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { createInterface } from 'node:readline';
import type { AuditEntry, AuditEvent } from '../model/index.js';

/** Where audit lines go: a size-bounded file, standard error, or nowhere. */
export interface AuditSink {
  write(entry: AuditEntry): void;
  /** Writes what write() may still hold; a sink that writes at once has nothing to do. */
  flush?(): void;
  /** The file `GET /audit` reads, if there is one. */
  readonly file: string | undefined;
  /** Why there is nothing to read, for the error `GET /audit` answers. */
  readonly describe: string;
  /** Whether the last line could be written, and how many were lost so far (for /healthz); a sink without it never fails. */
  health?(): { writable: boolean; lost: number };
  close(): void;
}

export const DEFAULT_AUDIT_MAX_BYTES = 64 * 1024 * 1024;

/**
 * JSON lines appended synchronously, the lines of one turn of the event loop in one write(2) right after
 * it: a line is on its way to the disk before the next turn serves anything, lines never interleave, and
 * memory never grows behind a slow disk (an async stream would buffer without bound). At `maxBytes` the file becomes `FILE.1` (replacing the older one)
 * and a new file starts, so the log never takes more than twice `maxBytes`. Files are 0600.
 */
export class AuditFile implements AuditSink {
  private fd: number;
  private size = 0;
  private closed = false;
  private lost = 0;
  private failing = false;
  /** The last write was cut short: the file ends inside a line. */
  private torn = false;
  private lastReport = 0;
  /** Lines written this turn of the event loop, not yet in the file. */
  private pending: string[] = [];
  readonly describe: string;

  /**
   * `onError` hears of lost lines at most once a minute (a full disk must not flood the server log too);
   * `onRecovered` once the file takes lines again, with the count lost so far: where the log has a gap.
   */
  constructor(readonly file: string, private readonly maxBytes: number, private readonly onError: (e: Error, lost: number) => void,
    private readonly onRecovered: (lost: number) => void = () => undefined) {
    mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
    this.fd = this.open();
    this.describe = `this server's audit log is ${file}`;
  }

  private open(): number {
    const fd = openSync(this.file, 'a+', 0o600);
    // A file made earlier (or by someone else) with looser permissions is tightened, not trusted.
    fchmodSync(fd, 0o600);
    this.size = fstatSync(fd).size;
    // An earlier run may have left a torn last line (the disk filled up under it).
    const last = Buffer.alloc(1);
    this.torn = this.size > 0 && readSync(fd, last, 0, 1, this.size - 1) === 1 && last[0] !== 0x0a;
    return fd;
  }

  write(entry: AuditEntry): void {
    if (this.closed) return;
    // Lines of one turn of the event loop go out in one write(2) right after it (a busy server answers
    // many requests a turn: a syscall each cost ~5 % of an allocation), before any I/O of the next turn.
    this.pending.push(`${JSON.stringify(entry)}\n`);
    if (this.pending.length === 1) setImmediate(() => this.flush());
  }

  /** Writes the lines waiting; `GET /audit` and close() call it so that nothing waiting is missed. */
  flush(): void {
    if (this.pending.length === 0 || this.fd === -2) return;
    const lines = this.pending;
    this.pending = [];
    // In pieces that each fit before the file's rotation, so no file outgrows `maxBytes`.
    let piece: string[] = [];
    let bytes = 0;
    for (const line of lines) {
      const n = Buffer.byteLength(line);
      if (piece.length > 0 && this.size + bytes + n > this.maxBytes) {
        this.append(piece, bytes);
        piece = [];
        bytes = 0;
      }
      piece.push(line);
      bytes += n;
    }
    this.append(piece, bytes);
  }

  private append(lines: string[], bytes: number): void {
    const text = lines.join('');
    try {
      if (this.fd < 0) this.fd = this.open();
      else if (this.size > 0 && this.size + bytes > this.maxBytes) this.rotate();
      // After a torn line the file ends mid-line: these lines start a fresh one, or the first would be torn too.
      const buf = Buffer.from(this.torn ? `\n${text}` : text);
      const wrote = writeSync(this.fd, buf);
      this.size += wrote;
      this.torn = wrote < buf.length;
      // A disk that fills up takes the head of the text, then refuses the rest: the lines not wholly
      // written are lost.
      if (this.torn) {
        const kept = buf.subarray(0, wrote).toString().split('\n').length - 1 - (buf[0] === 0x0a ? 1 : 0);
        throw Object.assign(new Error(`ENOSPC: no space left on device, wrote ${wrote} of ${buf.length} bytes`), { code: 'ENOSPC', lines: lines.length - kept });
      }
      if (this.failing) {
        this.failing = false;
        this.onRecovered(this.lost);
      }
    } catch (e) {
      this.lost += (e as { lines?: number }).lines ?? lines.length;
      this.failing = true;
      if (Date.now() - this.lastReport < 60_000) return;
      this.lastReport = Date.now();
      this.onError(e as Error, this.lost);
    }
  }

  /**
   * The descriptor is marked closed before anything can fail: writing to a closed number that the
   * process has since reused (the store's file, a socket) would be far worse than losing a line.
   */
  private rotate(): void {
    closeSync(this.fd);
    this.fd = -1;
    renameSync(this.file, `${this.file}.1`);
    this.fd = this.open();
  }

  health(): { writable: boolean; lost: number } {
    return { writable: !this.failing, lost: this.lost };
  }

  close(): void {
    this.flush();
    this.closed = true;
    if (this.fd >= 0) closeSync(this.fd);
    // Not -1: a flush after close must not open the file again.
    this.fd = -2;
  }
}

export class StderrAudit implements AuditSink {
  readonly file = undefined;
  readonly describe = 'this server writes its audit log to standard error (--audit-log -)';
  write(entry: AuditEntry): void {
    try {
      writeSync(2, `${JSON.stringify(entry)}\n`);
    } catch {
      // A closed stderr must not fail requests; there is nowhere left to report it.
    }
  }
  health() { return { writable: true, lost: 0 }; }
  close(): void {}
}

export class NoAudit implements AuditSink {
  readonly file = undefined;
  readonly describe = 'this server keeps no audit log (--audit-log none)';
  write(): void {}
  health() { return { writable: true, lost: 0 }; }
  close(): void {}
}

/** `--audit-log`: a path, `-` for standard error, or `none`. */
export function openAuditSink(spec: string, maxBytes: number, onError: (e: Error, lost: number) => void, onRecovered?: (lost: number) => void): AuditSink {
  if (spec === 'none') return new NoAudit();
  if (spec === '-') return new StderrAudit();
  return new AuditFile(spec, maxBytes, onError, onRecovered);
}

export interface AuditFilter {
  since?: number;
  actor?: string;
  event?: AuditEvent;
  limit: number;
}

export function matches(e: AuditEntry, f: AuditFilter): boolean {
  return (f.since === undefined || Date.parse(e.time) >= f.since) && (f.actor === undefined || e.actor === f.actor) && (f.event === undefined || e.event === f.event);
}

/**
 * The last `limit` matching lines of FILE.1 then FILE, oldest first, read line by line so memory stays
 * bounded by `limit` whatever the file size. Lines that do not parse (a torn last line) are skipped.
 */
export async function readAudit(file: string, f: AuditFilter): Promise<AuditEntry[]> {
  const kept: AuditEntry[] = [];
  for (const path of [`${file}.1`, file]) {
    if (!existsSync(path)) continue;
    const lines = createInterface({ input: createReadStream(path, { encoding: 'utf8' }), crlfDelay: Infinity });
    for await (const line of lines) {
      let e: AuditEntry;
      try {
        e = JSON.parse(line) as AuditEntry;
      } catch {
        continue;
      }
      if (!matches(e, f)) continue;
      kept.push(e);
      if (kept.length >= 2 * f.limit) kept.splice(0, kept.length - f.limit);
    }
  }
  return kept.slice(-f.limit);
}
