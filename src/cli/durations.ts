// Duration and audit-event flags. Their parsers live in model/auth.ts beside TypeBox schemas, so this file
// loads model's index (TypeBox included): only the daemons' flags and `audit` import it at registration;
// `host add` and `token create` import it when they run (a client verb's start-up stays lean, see plain-model.ts).
import { AUDIT_EVENTS, DURATION_PATTERN, isWeftError, parseDuration } from '../model/index.js';
import { usage } from './errors.js';

export { AUDIT_EVENTS };

/** A lifetime flag (`30m`, `12h`, `7d`, `never`) as milliseconds, or null for never: the model's one parser. */
export const lifetimeArg = (flag: string) => (text: string): number | null => {
  try {
    return parseDuration(text.trim(), flag);
  } catch (e) {
    throw usage(isWeftError(e) ? e.message : String(e));
  }
};

/** A duration flag (`90s`, `15m`, `1h`, `2d`) in whole seconds within [min, max]; `never` is not one. */
export const durationArg = (flag: string, min: number, max: number) => (text: string): number => {
  const ms = lifetimeArg(flag)(text);
  if (ms === null || ms / 1000 < min || ms / 1000 > max) throw usage(`${flag}: ${text} is outside ${min}s-${max}s`);
  return ms / 1000;
};

/** `--ttl` of a token: checked here with the server's own pattern, before anything is sent. */
export const ttlArg = (value: string): string => {
  if (!new RegExp(DURATION_PATTERN).test(value)) throw usage(`--ttl: '${value}' is not a duration like 30m, 12h, 7d, or never`);
  return value;
};
