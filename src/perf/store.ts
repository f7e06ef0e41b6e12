import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { chmod, mkdir, open, readdir, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { PerfError, invalidField } from './errors.js';
import { RUN_ID_PATTERN, buildResult, validateResult, type BenchResult, type BenchRunInput } from './results.js';

/** Larger than any honest record (100,000 samples and latencies are a few MB); a bigger file is refused unread. */
export const MAX_RECORD_BYTES = 32 * 1024 * 1024;

const RECORD_FILE = /^([a-z0-9-]{1,64})\.json$/;

/**
 * A run id: its start time in UTC to the millisecond, then 8 random hex digits
 * (`20250102-030405-678-9f0c1a2b`), so sorting ids sorts runs by time and two runs in one millisecond
 * still differ.
 */
export function newRunId(time: Date, random: string = randomBytes(4).toString('hex')): string {
  const iso = time.toISOString();
  return `${iso.slice(0, 10).replace(/-/g, '')}-${iso.slice(11, 19).replace(/:/g, '')}-${iso.slice(20, 23)}-${random}`;
}

export interface RunListing {
  /** Newest first. */
  results: BenchResult[];
  /** Files that are not valid records, with why: shown on the page, never drawn. */
  refused: Array<{ id: string; reason: string }>;
  /** Older runs beyond the limit asked for. */
  more: number;
}

/** A directory of run records, one `ID.json` each. */
export class ResultStore {
  constructor(readonly dir: string, private readonly newId: (time: Date) => string = newRunId) {}

  /** Writes the run whole or not at all (a temporary file renamed over), readable by all (0644, in a 0755 dir). */
  async save(input: BenchRunInput): Promise<BenchResult> {
    const record = buildResult(this.newId(new Date(input.time)), input);
    const created = await mkdir(this.dir, { recursive: true, mode: 0o755 });
    // The umask may have taken bits off; a directory that was already there keeps the mode its owner chose.
    if (created !== undefined) await chmod(this.dir, 0o755);
    const tmp = join(this.dir, `.${record.id}.${randomBytes(4).toString('hex')}.tmp`);
    const fh = await open(tmp, 'wx', 0o644);
    try {
      await fh.chmod(0o644);
      await fh.writeFile(`${JSON.stringify(record, null, 2)}\n`);
      await fh.sync();
      await fh.close();
      await rename(tmp, join(this.dir, `${record.id}.json`));
    } catch (e) {
      await fh.close().catch(() => undefined);
      await unlink(tmp).catch(() => undefined);
      throw e;
    }
    return record;
  }

  /**
   * One run; WEFT_NOT_FOUND if there is none, WEFT_INVALID_FIELD naming the field if its file is not a
   * valid record (`record` when the file itself is wrong: a link, not JSON, too large). Messages begin
   * `run ID: `.
   */
  async read(id: string): Promise<BenchResult> {
    if (!RUN_ID_PATTERN.test(id)) throw invalidField('id', 'must match ^[a-z0-9-]{1,64}$');
    try {
      const record = validateResult(parseJson(await this.readFile(id)));
      if (record.id !== id) throw invalidField('id', `is ${record.id}, not its file's name`);
      return record;
    } catch (e) {
      if (!(e instanceof PerfError)) throw e;
      throw new PerfError(e.code, `run ${id}: ${e.message}`, { ...(e.field === undefined ? {} : { field: e.field }), cause: e });
    }
  }

  /** The newest `limit` runs by id (ids begin with their time), then sorted by their recorded time. */
  async list(limit = 100): Promise<RunListing> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { results: [], refused: [], more: 0 };
      throw e;
    }
    const ids = names.flatMap((n) => RECORD_FILE.exec(n)?.[1] ?? []).sort().reverse();
    const out: RunListing = { results: [], refused: [], more: Math.max(0, ids.length - limit) };
    for (const id of ids.slice(0, limit)) {
      try {
        out.results.push(await this.read(id));
      } catch (e) {
        if (!(e instanceof PerfError)) throw e;
        out.refused.push({ id, reason: e.message });
      }
    }
    out.results.sort((a, b) => (a.time === b.time ? b.id.localeCompare(a.id) : Date.parse(b.time) - Date.parse(a.time)));
    return out;
  }

  /**
   * The file's text, but never through a symbolic link (it could point anywhere), never from a FIFO or
   * device (opening is non-blocking, then only a regular file is read) and never more than MAX_RECORD_BYTES.
   */
  private async readFile(id: string): Promise<string> {
    let fh;
    try {
      fh = await open(join(this.dir, `${id}.json`), constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') throw new PerfError('WEFT_NOT_FOUND', 'not found');
      if (code === 'ELOOP') throw invalidField('record', 'is a symbolic link, not a file');
      throw e;
    }
    try {
      const st = await fh.stat();
      if (!st.isFile()) throw invalidField('record', 'is not a regular file');
      if (st.size > MAX_RECORD_BYTES) throw invalidField('record', `is ${st.size} bytes, more than ${MAX_RECORD_BYTES}`);
      // Only the size stat saw: a file growing meanwhile is not read past the limit.
      const buf = Buffer.alloc(st.size);
      const { bytesRead } = await fh.read(buf, 0, st.size, 0);
      return buf.subarray(0, bytesRead).toString('utf8');
    } finally {
      await fh.close();
    }
  }
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw invalidField('record', 'is not JSON');
  }
}
