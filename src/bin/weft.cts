#!/usr/bin/env -S node --use-openssl-ca
// Start-up file for `weft` (package.json's bin, and what every test runs). The commands that start
// processes run the CLI from the modules tsc emitted (cli.js), which loads the server, the agent or the lab
// as asked. Every other command runs the same CLI from one CommonJS file, cli.bundle.cjs, which
// `npm run build` makes from cli.js without those parts (scripts/bundle-cli.mjs): loading ~30 ES
// modules one at a time, and Node's ES module loader itself, cost more than the request (issue 13;
// docs/decisions.md, "CLI start-up"). This file is CommonJS for the same reason. A process runs one copy
// or the other, never both, so no error meets a class of the other copy (runCli's instanceof holds).
// startup.test.ts runs every top-level command and checks which copy ran.
//
// The bundle runs through run-bundle.cjs: compiled with the V8 code cache the build left beside it, when
// that cache was made for this very bundle. --use-openssl-ca (the line above; `env -S` splits it): a
// TLS context that is given a CA (the client always is, once weft knows its server's CA) still makes Node 20
// parse its own ~140 bundled root certificates first, ~25 ms of a ~170 ms call; with OpenSSL's store
// that costs nothing until a root is needed. The roots differ only for a server weft has no CA for
// (the system's store instead of Node's copy of Mozilla's). `node dist/bin/weft.cjs` runs the same without it.
const DAEMON_COMMANDS: readonly string[] = ['server', 'agent', 'up', 'lab'];

if (DAEMON_COMMANDS.includes(process.argv[2] ?? '')) void import('./cli.js');
else require('./run-bundle.cjs').runBundle(`${__dirname}/cli.bundle.cjs`, `${__dirname}/cli.bundle.cache`);
