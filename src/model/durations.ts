import { invalid } from './errors.js';

/**
 * Lifetimes and audit events: plain values and parsers, apart from auth.ts's TypeBox schemas so the CLI
 * can check a flag without loading TypeBox (plain.ts). The schemas in auth.ts use the same pattern.
 */
export const DURATION_PATTERN = '^(never|[1-9][0-9]{0,6}[smhd])$';

export const AUDIT_EVENTS = ['write', 'refused', 'login', 'suppressed'] as const;
export type AuditEvent = (typeof AUDIT_EVENTS)[number];

const UNIT_MS = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
/** Ten years: beyond that a lifetime is "never" in disguise, and Date arithmetic stays far from its limits. */
export const MAX_DURATION_MS = 3650 * UNIT_MS.d;

/** `30m`, `12h`, `7d` as milliseconds; `never` as null. `field` names the flag or body field in the error. */
export function parseDuration(text: string, field: string): number | null {
  if (text === 'never') return null;
  const m = /^([1-9][0-9]{0,6})([smhd])$/.exec(text);
  if (!m?.[1] || !m[2]) throw invalid(field, `'${text}' is not a duration like 30m, 12h, 7d, or never`);
  const ms = Number(m[1]) * UNIT_MS[m[2] as keyof typeof UNIT_MS];
  if (ms > MAX_DURATION_MS) throw invalid(field, `'${text}' is longer than 3650d; use never for a token that does not expire`);
  return ms;
}
