/**
 * Contiv's netctl took Go-style single-dash long flags (`-direction=in`, `-policy db-policy`); people
 * have scripts full of them. They become `--direction=in` here. Single letters stay short flags, and
 * nothing after `--` is touched. A few netctl spellings map to our names.
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
