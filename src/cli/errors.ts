/**
 * Exit codes, stable for scripts: 0 success, 1 server error or unreachable server, 2 bad usage or
 * input, 3 not found, 4 conflict (exists, in use, stale revision, a quota or limit reached), 5 not
 * authenticated or not allowed.
 */
export const EXIT = { ok: 0, server: 1, usage: 2, notFound: 3, conflict: 4, auth: 5 } as const;

export class CliError extends Error {
  constructor(message: string, readonly exitCode: number, readonly code?: string) {
    super(message);
    this.name = 'CliError';
  }
}

export const usage = (message: string) => new CliError(message, EXIT.usage, 'usage');

export function exitCodeForStatus(status: number): number {
  if (status === 404) return EXIT.notFound;
  if (status === 409 || status === 412 || status === 410 || status === 429) return EXIT.conflict;
  if (status === 401 || status === 403) return EXIT.auth;
  if (status >= 400 && status < 500) return EXIT.usage;
  return EXIT.server;
}
