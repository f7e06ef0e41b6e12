import { appendFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { LineProcess, RunOptions, RunResult, Runner } from './runner.js';

/**
 * A runner that records every command another runner runs, for post-mortems of what an agent did to the
 * kernel (`WEFT_EXEC_TRACE=DIR weft agent ...`): one line per command in DIR/trace.log (sequence, start
 * and end in ms since the trace began, exit code or the error, argv), and each command's standard input
 * (an `nft -f -` script) in DIR/SEQ.in; what is sent to a long-running helper (weft-nftd's commits) is a
 * line `SEQ T send to N` with the text in DIR/SEQ.in too. Replaying the inputs in order rebuilds what the
 * kernel was given.
 * Costs a synchronous write per command: for debugging, never on by default.
 */
export class TracingRunner implements Runner {
  private seq = 0;
  private readonly t0 = performance.now();
  readonly start?: NonNullable<Runner['start']>;

  constructor(private readonly inner: Runner, private readonly dir: string) {
    // Root's eyes only: the trace holds every tenant's addresses and rules (never stdout, where `wg show`
    // prints a private key).
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    this.line(`# pid ${process.pid}, times in ms since ${new Date().toISOString()}`);
    if (inner.start) {
      const start = inner.start.bind(inner);
      this.start = (argv: readonly string[], onLine: (line: string) => void, onExit: (code: number) => void): LineProcess => {
        const n = this.seq++;
        this.line(`${n} ${this.ms()} start ${JSON.stringify(argv)}`);
        const p = start(argv, onLine, onExit);
        return {
          get pid() { return p.pid; },
          send: (text: string) => {
            const k = this.seq++;
            writeFileSync(join(this.dir, `${k}.in`), text, { mode: 0o600 });
            this.line(`${k} ${this.ms()} send to ${n}`);
            p.send(text);
          },
          stop: () => p.stop(),
        };
      };
    }
  }

  async run(argv: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
    const n = this.seq++;
    const began = this.ms();
    if (opts.input !== undefined) writeFileSync(join(this.dir, `${n}.in`), opts.input, { mode: 0o600 });
    try {
      const r = await this.inner.run(argv, opts);
      this.line(`${n} ${began}-${this.ms()} code=${r.code} ${JSON.stringify(argv)}${r.code ? ` stderr=${JSON.stringify(r.stderr.slice(0, 400))}` : ''}`);
      return r;
    } catch (e) {
      this.line(`${n} ${began}-${this.ms()} threw ${JSON.stringify((e as Error).message.slice(0, 400))} ${JSON.stringify(argv)}`);
      throw e;
    }
  }

  private ms(): number {
    return Math.round(performance.now() - this.t0);
  }

  private line(s: string): void {
    appendFileSync(join(this.dir, 'trace.log'), `${s}\n`, { mode: 0o600 });
  }
}
