/**
 * The request target as Docker's router will see it, or why it is refused. Hooks are matched on it, so
 * it must be the path Docker routes: Go decodes percent-escapes and takes the path of an absolute-form
 * target, and its router may clean `//` and dot segments; a hook matched on the raw text would be walked
 * around by `/v1.41/containers/%63reate` or `POST http://x/v1.41/containers/create`. No Docker client
 * sends such paths (image names and ids are plain), so anything not already canonical is refused.
 */
export function checkTarget(url: string): string | undefined {
  if (!url.startsWith('/')) return 'the request target must be a path (no absolute or authority form)';
  const path = url.split('?')[0] ?? '';
  if (path.length > 4096) return 'the path is over 4096 characters';
  if (/[%\\\0-\x20\x7f]/.test(path)) return 'the path has a percent-escape, a backslash, a space or a control character';
  const segs = path.split('/').slice(1);
  if (segs.slice(0, -1).some((s) => s === '') || segs.some((s) => s === '.' || s === '..')) return 'the path has an empty, . or .. segment';
  return undefined;
}
