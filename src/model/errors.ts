/**
 * The one catalogue of error codes. Each code maps once to an HTTP status (and through it a CLI exit
 * code) and to a CNI error code (7 invalid config, 11 try again later, 999 internal); the Docker
 * plugin's `Err` carries the message.
 */
export const ERROR_CATALOGUE = {
  WEFT_MALFORMED: { status: 400, title: 'Malformed request', cni: 6 },
  WEFT_INVALID_FIELD: { status: 400, title: 'Invalid field', cni: 7 },
  WEFT_UNKNOWN_FIELD: { status: 400, title: 'Unknown field', cni: 2 },
  WEFT_UNAUTHENTICATED: { status: 401, title: 'Authentication required', cni: 11 },
  WEFT_FORBIDDEN: { status: 403, title: 'Forbidden', cni: 11 },
  WEFT_NOT_FOUND: { status: 404, title: 'Not found', cni: 7 },
  WEFT_EXISTS: { status: 409, title: 'Already exists', cni: 7 },
  WEFT_IN_USE: { status: 409, title: 'Object in use', cni: 7 },
  WEFT_OVERLAP: { status: 409, title: 'Address range overlaps', cni: 7 },
  WEFT_POOL_EXHAUSTED: { status: 409, title: 'Pool exhausted', cni: 11 },
  WEFT_ADDRESS_IN_USE: { status: 409, title: 'Address in use', cni: 7 },
  WEFT_HISTORY_COMPACTED: { status: 410, title: 'Revision compacted', cni: 11 },
  WEFT_REVISION_AHEAD: { status: 410, title: 'Revision ahead of the store', cni: 11 },
  WEFT_STALE_REVISION: { status: 412, title: 'Stale revision', cni: 11 },
  WEFT_REQUEST_TIMEOUT: { status: 408, title: 'Request not received in time', cni: 11 },
  WEFT_TOO_LARGE: { status: 413, title: 'Request or change too large', cni: 7 },
  WEFT_UNSUPPORTED_MEDIA: { status: 415, title: 'Unsupported media type', cni: 7 },
  WEFT_INVALID_REFERENCE: { status: 422, title: 'Reference to a missing object', cni: 7 },
  WEFT_INVALID_VALUE: { status: 422, title: 'Semantically invalid value', cni: 7 },
  WEFT_IMMUTABLE: { status: 422, title: 'Field cannot change', cni: 7 },
  WEFT_QUOTA_EXCEEDED: { status: 429, title: 'Quota exceeded', cni: 11 },
  WEFT_TOO_MANY_WATCHERS: { status: 429, title: 'Too many watch streams', cni: 11 },
  WEFT_TOO_MANY_LOGINS: { status: 429, title: 'Too many logins at once', cni: 11 },
  WEFT_TOO_MANY_REPORTS: { status: 429, title: 'A report from this host is still being taken', cni: 11 },
  WEFT_BUSY: { status: 429, title: 'The server is busy with requests of this kind', cni: 11 },
  WEFT_STORE_CONFLICT: { status: 503, title: 'Store busy, retry', cni: 11 },
  WEFT_STORE_UNAVAILABLE: { status: 503, title: 'Store unavailable, retry', cni: 11 },
  /** The store's disk or space quota is full: an operator must free space; writes resume by themselves after. */
  WEFT_STORE_FULL: { status: 503, title: 'Store full: free space, then retry', cni: 11 },
  WEFT_DEADLINE: { status: 503, title: 'Request took too long', cni: 11 },
  WEFT_INTERNAL: { status: 500, title: 'Internal error', cni: 999 },
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
