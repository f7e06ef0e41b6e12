import type { Command } from 'commander';
import { DEFAULT_DATA_DIR } from '../config.js';
import { intArg, type Io } from '../kit.js';

export interface RunningDaemon {
  url: string;
  adminToken: string | undefined;
  close(): Promise<void>;
}

/** The long-running processes, injected by bin/ so the CLI does not import the server. */
export interface Daemons {
  startServer(opts: { listen: string; dataDir: string; store: string; logLevel: string; historyLimit?: number }): Promise<RunningDaemon>;
}

function announce(io: Io, d: RunningDaemon, dataDir: string, store: string): void {
  if (d.adminToken !== undefined) {
    io.out('First start: created user admin. Its token is shown once here');
    io.out(store === 'sqlite' ? ` and saved in ${dataDir}/admin.token (mode 0600):\n` : ':\n');
    io.out(`  ${d.adminToken}\n`);
    io.out(`Use it with: weft login --server ${d.url} --token <token>   (or export WEFT_TOKEN=...)\n`);
  }
  io.out(`weft server listening on ${d.url} (store: ${store === 'sqlite' ? `sqlite ${dataDir}/weft.db` : store})\n`);
}

/** Runs until SIGINT or SIGTERM, then closes cleanly. */
async function untilSignalled(d: RunningDaemon, io: Io): Promise<void> {
  await new Promise<void>((resolve) => {
    const stop = (sig: string) => {
      io.err(`${sig}: shutting down\n`);
      process.off('SIGINT', onInt);
      process.off('SIGTERM', onTerm);
      resolve();
    };
    const onInt = () => stop('SIGINT');
    const onTerm = () => stop('SIGTERM');
    process.on('SIGINT', onInt);
    process.on('SIGTERM', onTerm);
  });
  await d.close();
}

export function daemonCommands(program: Command, io: Io, daemons: Daemons): void {
  program.command('server')
    .description('run the control plane: REST API, allocation, history and watch, on SQLite by default')
    .option('--listen <host:port>', 'address to serve the API on', '127.0.0.1:9700')
    .option('--data-dir <dir>', 'where the SQLite store and admin.token live', DEFAULT_DATA_DIR)
    .option('--store <store>', 'sqlite, memory (throw-away), or etcd://HOST:PORT,... (multi-host work)', 'sqlite')
    .option('--history-limit <revisions>', 'how many revisions of change history to keep', intArg('--history-limit', 10, 100_000_000))
    .option('--log-level <level>', 'fatal, error, warn, info, debug', 'info')
    .addHelpText('after', '\nExamples:\n  $ weft server\n  $ weft server --listen 0.0.0.0:9700 --data-dir /srv/weft\n')
    .action(async (o) => {
      const d = await daemons.startServer({ listen: o.listen, dataDir: o.dataDir, store: o.store, logLevel: o.logLevel, ...(o.historyLimit ? { historyLimit: o.historyLimit } : {}) });
      announce(io, d, o.dataDir, o.store);
      await untilSignalled(d, io);
    });

  program.command('up')
    .description('run Weft on this host in the foreground: the server (SQLite) and this host\'s agent; Ctrl-C stops both')
    .option('--listen <host:port>', 'address to serve the API on', '127.0.0.1:9700')
    .option('--data-dir <dir>', 'where the SQLite store and admin.token live', DEFAULT_DATA_DIR)
    .option('--log-level <level>', 'fatal, error, warn, info, debug', 'info')
    .addHelpText('after', '\nExample:\n  $ weft up            # then, in another shell: weft tenant ls\n')
    .action(async (o) => {
      const d = await daemons.startServer({ listen: o.listen, dataDir: o.dataDir, store: 'sqlite', logLevel: o.logLevel });
      announce(io, d, o.dataDir, 'sqlite');
      io.out('agent: not in this build yet (the host agent and CNI plugin are the next milestone); the control plane is up\n');
      await untilSignalled(d, io);
    });
}
