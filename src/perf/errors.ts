/**
 * Errors of this folder. The codes are the model's catalogue codes (perf may not import `model`, so the
 * names are repeated here), so the CLI maps them to exit codes the same way: a refused record or flag is
 * WEFT_INVALID_FIELD with `field` naming what is wrong, a missing run WEFT_NOT_FOUND, output that is not
 * iperf3's WEFT_MALFORMED. A measurement iperf3 itself reported as failed (its `error`: refused, timed
 * out) is WEFT_BENCH_FAILED, and PNG asked for where rsvg-convert is not installed WEFT_TOOL_MISSING:
 * the catalogue does not have these two yet.
 */
export type PerfErrorCode = 'WEFT_INVALID_FIELD' | 'WEFT_NOT_FOUND' | 'WEFT_MALFORMED' | 'WEFT_BENCH_FAILED' | 'WEFT_TOOL_MISSING';

export class PerfError extends Error {
  readonly field: string | undefined;

  constructor(readonly code: PerfErrorCode, message: string, options: { field?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'PerfError';
    this.field = options.field;
  }
}

export const invalidField = (field: string, detail: string): PerfError =>
  new PerfError('WEFT_INVALID_FIELD', `${field}: ${detail}`, { field });
