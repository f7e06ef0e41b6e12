/**
 * A command line of defaults (`--flag value` pairs and bare `--flag`s) with `overrides` after them, each
 * default whose flag the overrides give left out: `weft` refuses an option given twice rather than keep
 * the last, so "defaults, then what the caller asked" must not repeat a flag.
 */
export function withOverrides(defaults: readonly string[], overrides: readonly string[]): string[] {
  return [...notGiven(defaults, overrides), ...overrides];
}

/** The defaults whose flags `overrides` do not give (see withOverrides). */
export function notGiven(defaults: readonly string[], overrides: readonly string[]): string[] {
  const given = new Set(overrides.filter((a) => a.startsWith('-')).map((a) => a.split('=')[0]));
  const out: string[] = [];
  for (let i = 0; i < defaults.length; i++) {
    const a = defaults[i] as string;
    const takesValue = a.startsWith('-') && !a.includes('=') && i + 1 < defaults.length && !(defaults[i + 1] as string).startsWith('-');
    if (a.startsWith('-') && given.has(a.split('=')[0])) {
      if (takesValue) i++;
      continue;
    }
    out.push(a);
    if (takesValue) out.push(defaults[++i] as string);
  }
  return out;
}
