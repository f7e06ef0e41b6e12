import { Command, CommanderError } from 'commander';
import { isWeftError } from '../model/index.js';
import { normaliseArgv } from './argv.js';
import { CliError, EXIT, exitCodeForStatus } from './errors.js';
import { ApiError } from '../client/index.js';
import type { Io } from './kit.js';
import { tenantCommands } from './commands/tenant.js';
import { networkCommands } from './commands/network.js';
import { groupCommands } from './commands/group.js';
import { policyCommands } from './commands/policy.js';
import { profileCommands } from './commands/profiles.js';
import { clusterCommands } from './commands/cluster.js';
import { authCommands } from './commands/auth.js';
import { historyCommands } from './commands/history.js';
import { auditCommands, tokenCommands } from './commands/tokens.js';
import { explainCommands } from './commands/explain.js';
import { labCommands } from './commands/lab.js';
import { daemonCommands, type Daemons } from './commands/daemon.js';

export const VERSION = '0.1.0';

export function buildProgram(io: Io, daemons: Daemons): Command {
  const program = new Command('weft')
    .description('Weft: policy-based networking for containers (tenants, networks, groups, policies)')
    .version(VERSION, '-v, --version')
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.out(s), writeErr: (s) => io.err(s) })
    .showHelpAfterError('(add --help for usage and examples)')
    .addHelpText('after', `
Server: --server, WEFT_SERVER, ~/.config/weft/config.json (written by \`weft login\`), http://127.0.0.1:9700.
Token: --token-file or --token, then WEFT_TOKEN_FILE or WEFT_TOKEN, then that config, then (local server only)
the admin token of \`weft up\`. Prefer files: a --token on the command line shows in \`ps\`.
Contiv netctl spellings work: -t blue, -direction=in, -policy=db-policy.
Exit status: 0 ok, 1 unexpected failure, 2 bad usage or input, 3 not found, 4 conflict, 5 auth,
6 server failed or unreachable (try again later).

Example (Contiv's tutorial):
  $ weft net create -s 10.1.2.0/24 -g 10.1.2.1 contiv-net
  $ weft policy create db-policy
  $ weft policy rule-add db-policy 1 -direction=in -protocol=tcp -action=deny
  $ weft policy rule-add db-policy 2 -direction=in -protocol=tcp -port=8888 -action=allow -priority=10
  $ weft group create -policy=db-policy contiv-net db
`);
  tenantCommands(program, io);
  networkCommands(program, io);
  groupCommands(program, io);
  policyCommands(program, io);
  profileCommands(program, io);
  clusterCommands(program, io);
  authCommands(program, io);
  historyCommands(program, io);
  tokenCommands(program, io);
  auditCommands(program, io);
  explainCommands(program, io);
  daemonCommands(program, io, daemons);
  labCommands(program, io, daemons.lab);
  return program;
}

/** Runs the CLI and returns the exit status; never calls process.exit itself. */
export async function runCli(argv: readonly string[], io: Io, daemons: Daemons): Promise<number> {
  const program = buildProgram(io, daemons);
  try {
    await program.parseAsync(normaliseArgv(argv), { from: 'user' });
    return EXIT.ok;
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help') return EXIT.ok;
      // commander.executeSubCommandAsync / missing sub-command shows help with exit 1: a usage error.
      return EXIT.usage;
    }
    if (e instanceof ApiError) {
      io.err(`weft: ${e.message}\n`);
      return exitCodeForStatus(e.status, e.code);
    }
    if (e instanceof CliError) {
      io.err(`weft: ${e.message}\n`);
      return e.exitCode;
    }
    if (isWeftError(e)) {
      io.err(`weft: ${e.message}\n`);
      return exitCodeForStatus(e.status);
    }
    io.err(`weft: ${(e as Error).stack ?? String(e)}\n`);
    return EXIT.failed;
  }
}
