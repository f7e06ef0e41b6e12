import type { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { Client } from '../../client/index.js';
import { usage } from '../errors.js';
import { intArg, type Io } from '../kit.js';
import { renderTable } from '../output.js';

export interface LabOps {
  up(opts: { hosts: number; dir?: string; prefix?: string; store?: 'sqlite' | 'etcd'; log: (l: string) => void }): Promise<{ serverUrl: string; token: string; hosts: Array<{ name: string; vtep: string }> }>;
  down(opts: { dir?: string }): Promise<{ processes: number; namespaces: number; exited: string[]; foreign: string[] }>;
  run(opts: { host: string; network: string; name: string; argv: string[]; dir?: string; log: (l: string) => void }): Promise<number>;
  read(dir?: string): { serverUrl: string; token: string; caFile: string; serverPid: number; hosts: Array<{ name: string; vtep: string; agentPid: number }> };
  alive(pid: number): boolean;
}

export function labCommands(program: Command, io: Io, loadLab: () => Promise<LabOps>): void {
  const l = program.command('lab').description('a multi-host Weft on this machine: hosts are network namespaces on a shared underlay')
    .option('--dir <dir>', 'where the lab keeps its state, logs and data', '/run/weft-lab');
  const dirOf = (cmd: Command) => (cmd.parent?.opts()['dir'] as string | undefined);

  l.command('up').description('create the underlay and hosts, start the server and an agent per host')
    .option('--hosts <n>', 'how many hosts', intArg('--hosts', 1, 16), 3)
    .option('--store <store>', 'sqlite (one server), or etcd (a 3-member etcd cluster and 2 servers)', 'sqlite')
    .option('--prefix <prefix>', 'prefix of the lab\'s namespace and link names', 'wl')
    .addHelpText('after', '\nExamples:\n  $ weft lab up --hosts 3\n  $ weft lab up --hosts 3 --store etcd\n  $ eval "$(weft lab env)" && weft host ls\n')
    .action(async (o, cmd: Command) => {
      if (o.store !== 'sqlite' && o.store !== 'etcd') throw usage(`--store: '${o.store}' is not sqlite or etcd`);
      if (!/^[a-z]{1,4}$/.test(o.prefix)) throw usage(`--prefix: '${o.prefix}' must be 1-4 lower-case letters`);
      const s = await (await loadLab()).up({ hosts: o.hosts, prefix: o.prefix, store: o.store, ...(dirOf(cmd) ? { dir: dirOf(cmd) as string } : {}), log: (x) => io.err(`${x}\n`) });
      io.out(`lab up: ${s.hosts.map((h) => h.name).join(', ')}\nserver: ${s.serverUrl}\ntoken: ${s.token}\nnext: eval "$(weft lab env)"; weft lab run host1 --network weft-default-<network> --name c1 -- sh\n`);
    });

  l.command('env').description('print the shell exports that point the CLI at the lab')
    .addHelpText('after', '\nExample:\n  $ eval "$(weft lab env)"\n')
    .action(async (_o, cmd: Command) => {
      const s = (await loadLab()).read(dirOf(cmd));
      io.out(`export WEFT_SERVER=${s.serverUrl} WEFT_TOKEN=${s.token} WEFT_CA=${s.caFile}\n`);
    });

  l.command('status').description('the lab\'s processes and hosts')
    .addHelpText('after', '\nExample:\n  $ weft lab status\n')
    .action(async (_o, cmd: Command) => {
      const lab = await loadLab();
      const s = lab.read(dirOf(cmd));
      const hosts = await new Client({ servers: s.serverUrl.split(','), token: s.token, tls: { ca: readFileSync(s.caFile, 'utf8') } }).request('GET', '/api/v1/hosts').catch(() => ({ items: [] }));
      const state = new Map((hosts.items as Array<{ name: string; state: string }>).map((h) => [h.name, h.state]));
      io.out(`server ${s.serverUrl} (pid ${s.serverPid}, ${lab.alive(s.serverPid) ? 'running' : 'stopped'})\n`);
      io.out(`${renderTable(s.hosts, [
        { header: 'HOST', get: (h) => h.name }, { header: 'UNDERLAY', get: (h) => h.vtep },
        { header: 'AGENT', get: (h) => `pid ${h.agentPid} ${lab.alive(h.agentPid) ? 'running' : 'stopped'}` }, { header: 'STATE', get: (h) => state.get(h.name) ?? 'unknown' },
      ])}\n`);
    });

  l.command('run <host>').description('run a command in a fresh "container" namespace plugged in through the CNI plugin of a host')
    .requiredOption('--network <name>', 'conflist name: weft.<tenant>.<group or network> (or weft-<tenant>-<name> while unambiguous)')
    .requiredOption('--name <name>', 'container name (also its CNI container id)')
    .argument('<command...>', 'the command and its arguments, after --')
    .addHelpText('after', '\nExamples:\n  $ weft lab run host1 --network weft-default-db --name db1 -- busybox nc -ll -p 8888 -e /bin/cat\n  $ weft lab run host3 --network weft-default-db --name app1 -- sh -c \'echo hi | busybox nc -w 1 10.1.2.2 8888\'\n')
    .action(async (host: string, argv: string[], o, cmd: Command) => {
      if (!/^[a-z0-9][a-z0-9-]{0,20}$/.test(o.name)) throw usage(`--name: '${o.name}' must be lower-case letters, digits and dashes (at most 21)`);
      const dir = cmd.parent?.opts()['dir'] as string | undefined;
      process.exitCode = await (await loadLab()).run({ host, network: o.network, name: o.name, argv, ...(dir ? { dir } : {}), log: (x) => io.err(`${x}\n`) });
    });

  l.command('down').description('stop every lab process and remove every namespace and link it made')
    .addHelpText('after', '\nExample:\n  $ weft lab down\n')
    .action(async (_o, cmd: Command) => {
      const r = await (await loadLab()).down(dirOf(cmd) ? { dir: dirOf(cmd) as string } : {});
      io.out(`lab down: stopped ${r.processes} processes, removed ${r.namespaces} namespaces\n`);
      // A process that had ended before `down` is news (a crash, most often): named on stderr.
      if (r.exited.length) io.err(`lab down: already exited before down: ${r.exited.join(', ')}\n`);
      if (r.foreign.length) io.err(`lab down: not the lab's any more, not signalled: ${r.foreign.join(', ')}\n`);
    });
}
