// Copies golden files and other test data beside the compiled tests (tsc copies only .ts output).
import { cpSync, existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

function walk(dir) {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (!statSync(p).isDirectory()) continue;
    if (name === 'testdata') cpSync(p, p.replace(/^src/, 'dist'), { recursive: true });
    else walk(p);
  }
}
if (existsSync('src')) walk('src');
// The web UI's page and styles beside its compiled modules (src/ui → dist/ui), served by the server at /ui.
if (existsSync('src/ui/static')) cpSync('src/ui/static', 'dist/ui', { recursive: true });
