// Run by bundle-cli.mjs as `node scripts/cache-cli.cjs tenant ls`: runs that command once from the bundle
// the way weft.cjs does, and at exit writes dist/bin/cli.bundle.cache, V8's code for what the run compiled
// (commander, the command's declaration, the config, the client up to the request). The server given is
// plain http, which the client refuses before connecting: the run needs no server and touches no network.
const { join } = require('node:path');
const { runBundle } = require('../dist/bin/run-bundle.cjs');

const bin = join(__dirname, '..', 'dist', 'bin');
runBundle(join(bin, 'cli.bundle.cjs'), join(bin, 'cli.bundle.cache'), { produce: true });
