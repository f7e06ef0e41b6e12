#!/usr/bin/env node
// Start-up file for `weft` (package.json's bin, and what every test runs). The commands that start
// processes run the CLI from the modules tsc emitted (cli.js), which loads the server, the agent or the lab
// as asked. Every other command runs the same CLI from one CommonJS file, cli.bundle.cjs, which
// `npm run build` makes from cli.js without those parts (scripts/bundle-cli.mjs): loading ~30 ES
// modules one at a time, and Node's ES module loader itself, cost more than the request (issue 13;
// docs/decisions.md, "CLI start-up"). This file is CommonJS for the same reason. A process runs one copy
// or the other, never both, so no error meets a class of the other copy (runCli's instanceof holds).
// startup.test.ts runs every top-level command and checks which copy ran.
//
// Run as a program, this file starts Node with --use-openssl-ca: the build replaces the first line with
// two that are both shell and JavaScript (scripts/bundle-cli.mjs; `env -S` would say it in one line, but
// BusyBox's env, Alpine's, has no -S). Why: a TLS context given a CA (the client's is, whenever weft knows
// its server's CA) still makes Node 20 parse its own ~140 built-in root certificates first, ~25 ms of a
// ~170 ms call; OpenSSL's store costs nothing until a root is looked up. The roots differ only for a
// server weft has no CA for (the system's store instead of Node's copy of Mozilla's). `node
// dist/bin/weft.cjs` runs the same, without the flag. Only Node options belong there: any V8 flag makes
// Node's code cache of its own modules mismatch (docs/decisions.md, "CLI start-up").
const DAEMON_COMMANDS: readonly string[] = ['server', 'agent', 'up', 'lab'];

if (DAEMON_COMMANDS.includes(process.argv[2] ?? '')) void import('./cli.js');
else require('./cli.bundle.cjs');
