/**
 * The one catalogue of error codes. Each code maps once to an HTTP status and a CLI exit code;
 * later the CNI error code and Docker `Err` are derived from the same entry.
 */
export const ERROR_CATALOGUE = {
  WEFT_MALFORMED: { status: 400, title: 'Malformed request' },
  WEFT_INVALID_FIELD: { status: 400, title: 'Invalid field' },
  WEFT_UNKNOWN_FIELD: { status: 400, title: 'Unknown field' },
  WEFT_UNAUTHENTICATED: { status: 401, title: 'Authentication required' },
  WEFT_FORBIDDEN: { status: 403, title: 'Forbidden' },
  WEFT_NOT_FOUND: { status: 404, title: 'Not found' },
  WEFT_EXISTS: { status: 409, title: 'Already exists' },
  WEFT_IN_USE: { status: 409, title: 'Object in use' },
  WEFT_OVERLAP: { status: 409, title: 'Address range overlaps' },
  WEFT_POOL_EXHAUSTED: { status: 409, title: 'Pool exhausted' },
  WEFT_ADDRESS_IN_USE: { status: 409, title: 'Address in use' },
  WEFT_HISTORY_COMPACTED: { status: 410, title: 'Revision compacted' },
  WEFT_STALE_REVISION: { status: 412, title: 'Stale revision' },
  WEFT_TOO_LARGE: { status: 413, title: 'Request body too large' },
  WEFT_UNSUPPORTED_MEDIA: { status: 415, title: 'Unsupported media type' },
  WEFT_INVALID_REFERENCE: { status: 422, title: 'Reference to a missing object' },
  WEFT_INVALID_VALUE: { status: 422, title: 'Semantically invalid value' },
  WEFT_IMMUTABLE: { status: 422, title: 'Field cannot change' },
  WEFT_STORE_CONFLICT: { status: 503, title: 'Store busy, retry' },
  WEFT_INTERNAL: { status: 500, title: 'Internal error' },
} as const;

export type ErrorCode = keyof typeof ERROR_CATALOGUE;

export interface ErrorOptions {
  /** The offending input field, as a dotted path (`rules.0.ports`). */
  field?: string;
  cause?: unknown;
}

export class WeftError extends Error {
  readonly code: ErrorCode;
  readonly field: string | undefined;

  constructor(code: ErrorCode, detail: string, options: ErrorOptions = {}) {
    super(detail, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'WeftError';
    this.code = code;
    this.field = options.field;
  }

  get status(): number {
    return ERROR_CATALOGUE[this.code].status;
  }
}

export function isWeftError(e: unknown): e is WeftError {
  return e instanceof WeftError;
}

/** Shorthands for the errors raised most often, so call sites read as sentences. */
export const invalid = (field: string, detail: string): WeftError =>
  new WeftError('WEFT_INVALID_FIELD', `${field}: ${detail}`, { field });
export const notFound = (what: string): WeftError => new WeftError('WEFT_NOT_FOUND', `${what} not found`);
export const badReference = (field: string, what: string): WeftError =>
  new WeftError('WEFT_INVALID_REFERENCE', `${field}: ${what} does not exist`, { field });
