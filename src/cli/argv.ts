/**
 * Contiv's netctl took Go-style single-dash long flags (`-direction=in`, `-policy db-policy`); people
 * have scripts full of them. They become `--direction=in` here. Single letters stay short flags, and
 * nothing after `--` is touched. A few netctl spellings map to our names; `-ojson` is kubectl's `-o json`.
 */
const ALIASES: Record<string, string> = {
  'networkprofile': 'netprofile',
  'network-profile': 'netprofile',
  'from-ip-address': 'from-cidr',
  'to-ip-address': 'to-cidr',
  'from-ip': 'from-cidr',
  'to-ip': 'to-cidr',
  'preferred-ip': 'ip',
  'json': 'output=json',
};

export function normaliseArgv(argv: readonly string[]): string[] {
  const out: string[] = [];
  let passthrough = false;
  for (const arg of argv) {
    if (passthrough || arg === '--') {
      passthrough = true;
      out.push(arg);
      continue;
    }
    // kubectl's spelling of an output format, the value joined to its short flag: `-ojson` is `-o json`,
    // not a netctl-style long flag `--ojson` (no such flag).
    const joined = /^-o(json|yaml|table)$/.exec(arg);
    if (joined?.[1]) {
      out.push('-o', joined[1]);
      continue;
    }
    const m = /^--?([a-z][a-z0-9-]+)(=.*)?$/.exec(arg);
    if (!m?.[1]) {
      out.push(arg);
      continue;
    }
    const name = ALIASES[m[1]] ?? m[1];
    out.push(`--${name}${m[2] ?? ''}`);
  }
  return out;
}
