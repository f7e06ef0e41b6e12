import { Option, type Command } from 'commander';
import { connect } from 'node:net';
import { join } from 'node:path';
import { ProcessRunner } from '../../exec/index.js';
import { parseAttachRequest, parseDetachRequest, type AttachAnswer, type AttachRequest, type DetachRequest } from '../../model/plain.js';
import { CliError, EXIT, exitCodeForStatus, usage } from '../errors.js';
import { collect, type Io } from '../kit.js';
import { parseFormat, renderData } from '../output.js';
import { findTarget, RUNTIMES, type RuntimeChoice } from '../target.js';

const DEFAULT_RUN_DIR = '/run/weft';
/** Attaching converges the tenant and may wait for the server: generous, but never for ever. */
const AGENT_TIMEOUT_MS = 60_000;

/** One verb on the agent's socket (the CNI relay's framing, with WEFT_VERB): its exit status and answer. */
export function callAgent(socketPath: string, verb: 'attach' | 'detach', body: AttachRequest | DetachRequest): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const sock = connect(socketPath);
    const chunks: Buffer[] = [];
    sock.setTimeout(AGENT_TIMEOUT_MS, () => {
      sock.destroy();
      reject(new CliError(`the agent did not answer within ${AGENT_TIMEOUT_MS / 1000} s; the ${verb} may still complete: check with \`weft endpoint ls\`, and \`weft detach\` what you do not want`, EXIT.unavailable));
    });
    sock.on('connect', () => sock.end(Buffer.concat([Buffer.from(`WEFT_VERB=${verb}\0\0`), Buffer.from(JSON.stringify(body))])));
    sock.on('data', (d) => chunks.push(d));
    sock.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT' || e.code === 'ECONNREFUSED') reject(new CliError(`no weft agent listens at ${socketPath}: is \`weft agent\` (or \`weft up\`) running on this host? (--run-dir names its directory)`, EXIT.unavailable));
      else if (e.code === 'EACCES') reject(new CliError(`${socketPath}: permission denied; only root may attach (the agent's socket wires containers)`, EXIT.auth));
      else reject(new CliError(`the agent at ${socketPath}: ${e.message}`, EXIT.unavailable));
    });
    sock.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      const nl = text.indexOf('\n');
      let answer: { code?: string | number; message?: string; msg?: string; status?: number } | undefined;
      try {
        answer = JSON.parse(text.slice(nl + 1));
      } catch {
        return reject(new CliError(`the agent at ${socketPath} gave an answer that is not JSON (is it a weft agent of this version?)`, EXIT.failed));
      }
      if (text.slice(0, nl) === '0') return resolve(answer);
      // The socket's own refusals (a request too large or unreadable) speak CNI: `msg`.
      reject(new CliError(answer?.message ?? answer?.msg ?? 'the agent refused without saying why', exitCodeForStatus(answer?.status ?? 500), typeof answer?.code === 'string' ? answer.code : undefined));
    });
  });
}

/** `key=value` labels from repeated --label flags. */
function labelsOf(items: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of items) {
    const at = item.indexOf('=');
    if (at <= 0) throw usage(`--label: '${item}' is not KEY=VALUE`);
    const key = item.slice(0, at);
    if (Object.hasOwn(out, key)) throw usage(`--label: '${key}' is given twice (${key}=${out[key]}, ${item})`);
    out[key] = item.slice(at + 1);
  }
  return out;
}

/** A request checked here as the agent will check it, so a mistake names the flag before anything is asked. */
function checkedBy<T>(parse: (text: string) => T, body: object, flags: Record<string, string>): T {
  try {
    return parse(JSON.stringify(body));
  } catch (e) {
    const field = (e as { field?: string }).field ?? '';
    const [head = '', ...rest] = field.split('.');
    const flag = `${flags[head] ?? head}${rest.length ? ` ${rest.join('.')}` : ''}`;
    throw usage(`${flag}: ${(e as Error).message.replace(/^[^:]*: /, '')}`);
  }
}

const FLAG_OF: Record<string, string> = {
  tenant: '--tenant', network: '--network', group: '--group', ip: '--ip', mac: '--mac', ifname: '--ifname', name: '--name', labels: '--label',
  netns: 'TARGET', containerId: 'TARGET', endpoint: '--endpoint',
};

function common(c: Command): Command {
  return c.requiredOption('-n, --network <name>', 'the network (of --tenant)')
    .option('-t, --tenant <name>', 'tenant', 'default')
    .addOption(new Option('--runtime <kind>', 'what TARGET names (auto: a namespace under /run/netns, else a podman, else a Docker container)').choices(RUNTIMES).default('auto'))
    .option('--run-dir <dir>', 'where the agent of this host keeps its socket', DEFAULT_RUN_DIR)
    .option('-o, --output <format>', 'table, json or yaml', 'table');
}

export function attachCommands(program: Command, io: Io): void {
  const runner = new ProcessRunner();
  common(program.command('attach <target>')
    .description('add an interface on a Weft network to a running container or network namespace (pipework, with policy and DNS)'))
    .option('-g, --group <name>', 'the endpoint group (its policies apply to the interface)')
    .option('--ip <address>', 'this address (default: the next free one of the network)')
    .option('--mac <address>', 'this MAC (default: derived from the address)')
    .option('--ifname <name>', 'the interface in the target (default: the first free of eth1, eth2, ...)')
    .option('--name <name>', "its DNS name in the tenant (default: the container's or namespace's name)")
    .option('--label <key=value>', 'a label of the endpoint (repeat)', collect, [])
    .option('--default-route', "route the target's default traffic through this interface, replacing its default route (detach does not restore it); default: its subnet only")
    .addHelpText('after', `
TARGET is a podman or Docker container (name or id; DOCKER_HOST applies), a namespace name under
/run/netns, or a namespace file. Run it as root on the host where TARGET runs: it speaks to that host's
agent, which allocates the address on the server, converges the tenant with the interface's policy and
wires it. The interface is released by \`weft detach\`, or by the agent when the namespace goes.
A /proc/PID/ns/net path is refused (the number is reused when the process ends): pin it first with
\`ip netns attach NAME PID\`.

Examples (Contiv's tutorial network):
  $ weft attach web --network contiv-net --group db
  $ weft attach web --network contiv-net --ip 10.1.2.50 --ifname eth2
  $ ip netns add probe && weft attach probe -n contiv-net -g app --default-route
`)
    .action(async (ref: string, o: Record<string, any>) => {
      const format = parseFormat(o['output']);
      const t = await findTarget(runner, ref, o['runtime'] as RuntimeChoice);
      const body = checkedBy<AttachRequest>(parseAttachRequest, {
        tenant: o['tenant'], network: o['network'], netns: t.netns, containerId: t.containerId,
        ...(o['group'] ? { group: o['group'] } : {}), ...(o['ip'] ? { ip: o['ip'] } : {}), ...(o['mac'] ? { mac: o['mac'] } : {}),
        ...(o['ifname'] ? { ifname: o['ifname'] } : {}), ...((o['name'] ?? t.name) ? { name: o['name'] ?? t.name } : {}),
        ...((o['label'] as string[]).length ? { labels: labelsOf(o['label']) } : {}), defaultRoute: o['defaultRoute'] === true,
      }, FLAG_OF);
      const a = await callAgent(join(o['runDir'], 'agent.sock'), 'attach', body) as AttachAnswer;
      if (format !== 'table') return io.out(`${renderData(a, format)}\n`);
      const dns = a.dns ? `; DNS ${a.dns.nameservers.join(', ')}, search ${a.dns.search.join(' ')}` : '';
      const addrs = [a.ip !== undefined ? `${a.ip}/${a.prefixLength}` : undefined, a.ip6 !== undefined ? `${a.ip6}/${a.prefixLength6}` : undefined].filter((x) => x !== undefined).join(' and ');
      io.out(`attached ${a.ifname} ${addrs} (endpoint ${a.endpoint}) to ${t.what} on ${body.tenant}/${body.network}${body.group ? `, group ${body.group}` : ''}; gateway ${a.gateway ?? a.gateway6}${body.defaultRoute ? ' (default route)' : ''}${dns}\n`);
    });

  common(program.command('detach [target]')
    .description('remove the interfaces `weft attach` gave a container or namespace on a network, and release their addresses'))
    .option('--ifname <name>', 'only this interface (default: every attached one on the network)')
    .option('--endpoint <id>', 'this one attached endpoint (`weft endpoint ls`), instead of a TARGET (one that is gone or renamed)')
    .addHelpText('after', `
Only interfaces made by \`weft attach\` are removed; those a runtime made (podman's, Docker's) are its own.

Examples:
  $ weft detach web --network contiv-net
  $ weft detach --endpoint 8a1f03c2d4e5f607 --network contiv-net
`)
    .action(async (ref: string | undefined, o: Record<string, any>) => {
      const format = parseFormat(o['output']);
      if ((ref === undefined) === (o['endpoint'] === undefined)) throw usage('give TARGET or --endpoint ID (one of them)');
      const t = ref === undefined ? undefined : await findTarget(runner, ref, o['runtime'] as RuntimeChoice);
      const body = checkedBy<DetachRequest>(parseDetachRequest, {
        tenant: o['tenant'], network: o['network'], ...(t ? { containerId: t.containerId } : { endpoint: o['endpoint'] }),
        ...(o['ifname'] ? { ifname: o['ifname'] } : {}),
      }, FLAG_OF);
      const a = await callAgent(join(o['runDir'], 'agent.sock'), 'detach', body) as { detached: string[] };
      if (format !== 'table') return io.out(`${renderData(a, format)}\n`);
      io.out(`detached ${a.detached.join(', ')} of ${t?.what ?? `endpoint ${o['endpoint']}`} from ${body.tenant}/${body.network}\n`);
    });
}
