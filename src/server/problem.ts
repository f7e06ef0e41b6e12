import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { ERROR_CATALOGUE, LIMIT_DEFAULTS, WeftError, type ErrorCode } from '../model/index.js';

/** RFC 9457 problem details, with our stable `code` and the offending `field`. */
export interface Problem {
  type: string;
  title: string;
  status: number;
  code: ErrorCode;
  detail: string;
  field?: string;
}

export function problemOf(e: WeftError): Problem {
  return {
    type: `urn:weft:error:${e.code}`,
    title: ERROR_CATALOGUE[e.code].title,
    status: e.status,
    code: e.code,
    detail: e.message,
    ...(e.field !== undefined ? { field: e.field } : {}),
  };
}

export interface AjvError { instancePath?: string; keyword?: string; message?: string; params?: Record<string, unknown> }

/**
 * Turns an ajv error into a field path (`rules.0.ports`) and a sentence. `prefix`: where the validated
 * value sits in the body (`documents.3.spec` for a document of `weft apply`).
 */
export function fromValidation(errors: AjvError[], context: string | undefined, prefix?: string): WeftError {
  const first = errors[0] ?? {};
  const base = [...(prefix ? [prefix] : []), ...(first.instancePath ?? '').split('/').filter(Boolean)].join('.');
  const where = context === 'body' || context === undefined ? '' : `${context} `;
  if (first.keyword === 'additionalProperties') {
    const extra = String(first.params?.['additionalProperty'] ?? '?');
    const field = base ? `${base}.${extra}` : extra;
    // In a map of labels every key is allowed that looks like one: this one does not.
    if (/(^|\.)(labels|selector|matchLabels)$/.test(base)) {
      return new WeftError('WEFT_INVALID_FIELD', `${where}${field}: '${extra}' is not a label key (letters, digits, '.', '_', '-' and '/', starting with a letter or digit, at most 63)`, { field });
    }
    return new WeftError('WEFT_UNKNOWN_FIELD', `${where}${field}: unknown field`, { field });
  }
  if (first.keyword === 'required') {
    const missing = String(first.params?.['missingProperty'] ?? '?');
    const field = base ? `${base}.${missing}` : missing;
    return new WeftError('WEFT_INVALID_FIELD', `${where}${field}: is required`, { field });
  }
  const field = base || (context ?? 'body');
  // A YAML file's unquoted 80 or 1 arrives as a number (weft apply -f).
  const detail = first.keyword === 'type' && first.params?.['type'] === 'string'
    ? 'must be a string (in YAML, quote it: "80")'
    : first.keyword === 'pattern' && /name|tenant|network|group|policy|id$/i.test(field)
    ? 'must be a DNS label: lower-case letters, digits and inner dashes, at most 63 characters'
    : first.keyword === 'enum'
      ? `must be one of ${(first.params?.['allowedValues'] as unknown[] | undefined)?.join(', ') ?? '?'}`
      : first.keyword === 'pattern' && field.endsWith('protocol')
        ? 'must be tcp, udp, sctp, icmp, any or a protocol number'
        : first.keyword === 'pattern' && field.endsWith('ports')
          ? "must be a port like 80 or a range like 8000-8080"
          : first.message ?? 'is invalid';
  return new WeftError('WEFT_INVALID_FIELD', `${where}${field}: ${detail}`, { field });
}

/** Every error leaves the server as problem+json; unknown errors are logged and reported as internal. */
export function toWeftError(err: FastifyError | Error, bodyLimit: number = LIMIT_DEFAULTS.bodyLimit): WeftError {
  if (err instanceof WeftError) return err;
  const fe = err as FastifyError & { validation?: AjvError[]; validationContext?: string };
  if (fe.validation) return fromValidation(fe.validation, fe.validationContext);
  switch (fe.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new WeftError('WEFT_TOO_LARGE', `the request body is larger than ${bodyLimit} bytes (--body-limit)`);
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new WeftError('WEFT_UNSUPPORTED_MEDIA', 'send the body as application/json');
    // An empty body, or one that is not JSON, is refused by app.ts's own parser (json-body.ts) with its
    // own WeftError: fastify's FST_ERR_CTP_EMPTY_JSON_BODY and FST_ERR_CTP_INVALID_JSON_BODY never come.
  }
  if (err instanceof SyntaxError || fe.statusCode === 400) return new WeftError('WEFT_MALFORMED', `malformed request: ${err.message}`);
  if (fe.statusCode === 404) return new WeftError('WEFT_NOT_FOUND', err.message);
  return new WeftError('WEFT_INTERNAL', 'internal error (see the server log)', { cause: err });
}

export function sendProblem(req: FastifyRequest, reply: FastifyReply, err: FastifyError | Error): FastifyReply {
  const e = toWeftError(err, (req.server as { limits?: { bodyLimit: number } }).limits?.bodyLimit);
  req.problem = e;
  if (e.code === 'WEFT_INTERNAL') req.log.error({ err }, 'request failed');
  return reply.code(e.status).type('application/problem+json').send(problemOf(e));
}
