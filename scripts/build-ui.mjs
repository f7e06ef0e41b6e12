// Links the web UI's modules (tsc's output in dist/ui) into one file, dist/ui/weft-ui.js, which the page
// loads: one request instead of a waterfall of nine over TLS (~150 ms of the first paint on this machine
// kind, bench:ui). The code is linked, not rewritten or minified; nothing from node_modules goes in
// (src/ui imports only its own files: server/ui.test.ts checks).
import { build } from 'esbuild';

await build({
  entryPoints: ['dist/ui/app.js'],
  outfile: 'dist/ui/weft-ui.js',
  bundle: true,
  platform: 'browser',
  format: 'esm',
  target: 'es2022',
  sourcemap: false,
  legalComments: 'none',
  logLevel: 'warning',
});
