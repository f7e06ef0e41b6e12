import { ApiError } from './client.js';

/**
 * The longest line a server stream (the NDJSON watch) may send: 16 MiB. One line is one change, and
 * the largest a user can make under the default quotas is a policy of 10,000 rules with every field at
 * its longest, 5.8 MiB as a watch line (agent/sync.test.ts measures it); this is ~2.7 times that, and
 * twice the server's default --watch-buffer. A line past it is not a change but a broken or hostile
 * server: the stream ends and the caller re-lists, instead of buffering until memory runs out.
 */
export const MAX_LINE_BYTES = 16 * 1024 * 1024;

/**
 * The lines of a byte stream, without their newlines, decoded as UTF-8 once whole (a character split
 * between chunks stays intact). Each chunk is searched once, never the held bytes again, so a long line
 * costs linear time. Throws (ending the iteration, which destroys the stream) once a line has more than
 * `maxBytes` without its newline; an unterminated tail at the end of the stream is dropped.
 */
export async function* linesOf(body: AsyncIterable<Buffer>, maxBytes: number = MAX_LINE_BYTES): AsyncGenerator<string> {
  let parts: Buffer[] = [];
  let held = 0;
  for await (const chunk of body) {
    let start = 0;
    for (let nl = chunk.indexOf(10); nl >= 0; nl = chunk.indexOf(10, start)) {
      if (held + nl - start > maxBytes) throw lineTooLong(maxBytes);
      parts.push(chunk.subarray(start, nl));
      const line = Buffer.concat(parts).toString('utf8');
      parts = [];
      held = 0;
      start = nl + 1;
      yield line;
    }
    if (held + chunk.length - start > maxBytes) throw lineTooLong(maxBytes);
    if (start < chunk.length) {
      parts.push(chunk.subarray(start));
      held += chunk.length - start;
    }
  }
}

const lineTooLong = (maxBytes: number) =>
  new ApiError(0, 'line-too-long', `the server sent a line longer than ${maxBytes} bytes without ending it; the stream was abandoned (a change is never that large)`);
