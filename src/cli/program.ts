import { Command, CommanderError } from 'commander';
import { isWeftError } from '../model/plain.js';
import { normaliseArgv } from './argv.js';
import { CliError, EXIT, exitCodeForStatus } from './errors.js';
import { ApiError } from '../client/index.js';
import { onceEach, type Io } from './kit.js';
import { terminalText } from './output.js';
import type { Daemons } from './commands/daemon.js';

type Register = (program: Command, io: Io, daemons: Daemons) => void;

/**
 * Every top-level command, in the order `weft --help` lists them, and the module that declares it. Only
 * the module a command line names is imported (issue 13: a client verb starts in <= 150 ms; importing
 * all of them costs what they import); help and unknown commands load them all, so help stays
 * complete and a typo still gets "did you mean". startup.test.ts checks that `names` matches what each
 * module declares.
 */
export const COMMAND_MODULES: ReadonlyArray<{ names: readonly string[]; load: () => Promise<Register> }> = [
  { names: ['tenant'], load: async () => (await import('./commands/tenant.js')).tenantCommands },
  { names: ['net', 'network'], load: async () => (await import('./commands/network.js')).networkCommands },
  { names: ['group'], load: async () => (await import('./commands/group.js')).groupCommands },
  { names: ['policy'], load: async () => (await import('./commands/policy.js')).policyCommands },
  { names: ['netprofile', 'service', 'app-profile'], load: async () => (await import('./commands/profiles.js')).profileCommands },
  { names: ['endpoint', 'ep', 'host', 'global'], load: async () => (await import('./commands/cluster.js')).clusterCommands },
  { names: ['login', 'user'], load: async () => (await import('./commands/auth.js')).authCommands },
  { names: ['history', 'watch'], load: async () => (await import('./commands/history.js')).historyCommands },
  { names: ['token'], load: async () => (await import('./commands/tokens.js')).tokenCommands },
  { names: ['audit'], load: async () => (await import('./commands/audit.js')).auditCommands },
  { names: ['apply', 'delete', 'get'], load: async () => { const m = await import('./commands/apply.js'); return (p, io) => { m.applyCommands(p, io); m.getCommands(p, io); }; } },
  { names: ['explain'], load: async () => (await import('./commands/explain.js')).explainCommands },
  { names: ['verify'], load: async () => (await import('./commands/verify.js')).verifyCommands },
  { names: ['attach', 'detach'], load: async () => (await import('./commands/attach.js')).attachCommands },
  { names: ['docker-proxy'], load: async () => (await import('./commands/docker-proxy.js')).dockerProxyCommands },
  { names: ['bench'], load: async () => (await import('./commands/bench.js')).benchCommands },
  { names: ['inventory'], load: async () => (await import('./commands/inventory.js')).inventoryCommands },
  { names: ['install', 'uninstall'], load: async () => { const m = await import('./commands/install.js'); return (p, io) => m.installCommands(p, io); } },
  { names: ['flows', 'top'], load: async () => { const m = await import('./commands/flows.js'); return (p, io) => { m.flowCommands(p, io); m.topCommands(p, io); }; } },
  { names: ['server', 'agent', 'up'], load: async () => (await import('./commands/daemon.js')).daemonCommands },
  { names: ['lab'], load: async () => { const { labCommands } = await import('./commands/lab.js'); return (p, io, d) => labCommands(p, io, d.lab); } },
];

/** The modules a command line needs: the one naming its first word, none for the version, else all (help, a typo). */
export function modulesFor(argv: readonly string[]): typeof COMMAND_MODULES {
  const first = argv[0];
  if (first === '-v' || first === '--version') return [];
  const one = COMMAND_MODULES.find((m) => first !== undefined && m.names.includes(first));
  return one ? [one] : COMMAND_MODULES;
}

export const VERSION = '0.1.0';

/** The program with the commands `argv` needs (all of them when argv is omitted). */
export async function buildProgram(io: Io, daemons: Daemons, argv?: readonly string[]): Promise<Command> {
  const program = new Command('weft')
    .description('Weft: policy-based networking for containers (tenants, networks, groups, policies)')
    .version(VERSION, '-v, --version')
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.out(s), writeErr: (s) => io.err(terminalText(s)) })
    .showHelpAfterError('(add --help for usage and examples)')
    .addHelpText('after', `
Server: --server, WEFT_SERVER, ~/.config/weft/config.json (written by \`weft login\`), https://127.0.0.1:9700.
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
  const modules = argv === undefined ? COMMAND_MODULES : modulesFor(argv);
  // Imported together, registered in table order (the order of `weft --help`).
  for (const register of await Promise.all(modules.map((m) => m.load()))) register(program, io, daemons);
  onceEach(program);
  return program;
}

/** Runs the CLI and returns the exit status; never calls process.exit itself. */
export async function runCli(argv: readonly string[], io: Io, daemons: Daemons): Promise<number> {
  const args = normaliseArgv(argv);
  try {
    const program = await buildProgram(io, daemons, args);
    await program.parseAsync(args, { from: 'user' });
    return EXIT.ok;
  } catch (e) {
    if (e instanceof CommanderError) {
      // `commander.help` with exitCode 1 is usage shown for a missing sub-command (`weft`, `weft tenant`): a usage error.
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || (e.code === 'commander.help' && e.exitCode === 0)) return EXIT.ok;
      // commander.executeSubCommandAsync / missing sub-command shows help with exit 1: a usage error.
      return EXIT.usage;
    }
    if (e instanceof ApiError) {
      io.err(`weft: ${terminalText(e.message)}\n`);
      return exitCodeForStatus(e.status, e.code);
    }
    if (e instanceof CliError) {
      io.err(`weft: ${terminalText(e.message)}\n`);
      return e.exitCode;
    }
    if (isWeftError(e)) {
      io.err(`weft: ${terminalText(e.message)}\n`);
      return exitCodeForStatus(e.status);
    }
    io.err(`weft: ${terminalText((e as Error).stack ?? String(e))}\n`);
    return EXIT.failed;
  }
}
