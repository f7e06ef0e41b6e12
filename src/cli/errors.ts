/**
 * Exit codes, stable for scripts: 0 success, 1 an unexpected failure (a fault of the CLI itself, a server
 * it refuses to trust), 2 bad usage or input, 3 not found, 4 conflict (exists, in use, stale revision, a
 * quota or limit reached), 5 not authenticated or not allowed, 6 the server failed or could not be reached
 * (5xx: its store unavailable or busy, a deadline, an internal error; a 408: the request timed out before
 * it was read; no answer at all): try again later.
 * 6 is apart from 1 because Node itself exits 1 on a crash: a retry loop must not retry a bug.
 */
export const EXIT = { ok: 0, failed: 1, usage: 2, notFound: 3, conflict: 4, auth: 5, unavailable: 6 } as const;

export class CliError extends Error {
  constructor(message: string, readonly exitCode: number, readonly code?: string) {
    super(message);
    this.name = 'CliError';
  }
}

export const usage = (message: string) => new CliError(message, EXIT.usage, 'usage');

/** `status` 0: no server answered (the client's ApiError); `code` tells a refused server (tls, plain-http) from an absent one. */
export function exitCodeForStatus(status: number, code?: string): number {
  if (status === 0) return code === 'unreachable' ? EXIT.unavailable : code === 'plain-http' ? EXIT.usage : EXIT.failed;
  if (status === 404) return EXIT.notFound;
  // The server gave up waiting for the request's body (a slow link, a stalled client): nothing was done,
  // and the same call may well work again, as CNI's code 11 for it says.
  if (status === 408) return EXIT.unavailable;
  if (status === 409 || status === 412 || status === 410 || status === 429) return EXIT.conflict;
  if (status === 401 || status === 403) return EXIT.auth;
  if (status >= 400 && status < 500) return EXIT.usage;
  if (status >= 500) return EXIT.unavailable;
  return EXIT.failed;
}
