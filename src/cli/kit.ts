import { Command, InvalidArgumentError, Option } from 'commander';
import { ApiError, Client } from '../client/index.js';
import { resolveTarget } from './config.js';
import { usage } from './errors.js';
import { parseFormat, renderData, renderTable, terminalText, type Column, type Format } from './output.js';

/** What every command's action gets: a client for the resolved server, the output format, and printers. */
export interface Ctx {
  client: Client;
  format: Format;
  tenant: string;
  opts: Record<string, any>;
  print(text: string): void;
  show(data: unknown): void;
  table<T>(rows: readonly T[], columns: ReadonlyArray<Column<T>>, names?: (r: T) => string): void;
}

export interface Io {
  out(text: string): void;
  err(text: string): void;
  env: NodeJS.ProcessEnv;
  /** Ends the process (bin passes process.exit); a daemon stopped by a signal uses it only if it will not end by itself. */
  exit?: (code: number) => void;
}

interface LeafSpec {
  name: string;
  summary: string;
  example: string | string[];
  tenant?: boolean;
  /**
   * Give -o/--output (default); rule-add uses -o for --to-network, so it has only --output; `documents`:
   * -o json or yaml, YAML by default (what `weft get` prints is documents, never a table).
   */
  output?: 'short' | 'long' | 'documents' | false;
  /** Run this one when the parent is given alone (`weft global` shows the settings). */
  isDefault?: boolean;
}

/** Declares a leaf command with the flags every command shares. */
export function leaf(parent: Command, spec: LeafSpec): Command {
  const examples = Array.isArray(spec.example) ? spec.example : [spec.example];
  const c = parent.command(spec.name, { isDefault: spec.isDefault === true }).description(spec.summary)
    .addHelpText('after', `\nExample${examples.length > 1 ? 's' : ''}:\n${examples.map((e) => `  $ ${e}`).join('\n')}\n`);
  if (spec.tenant !== false) c.option('-t, --tenant <name>', 'tenant', 'default');
  if (spec.output === 'long') c.option('--output <format>', 'table, json or yaml', 'table');
  else if (spec.output === 'documents') c.option('-o, --output <format>', 'yaml or json', 'yaml');
  else if (spec.output !== false) c.option('-o, --output <format>', 'table, json or yaml', 'table');
  c.option('-q, --quiet', 'print names only (lists)');
  c.addOption(new Option('--server <url>', 'server URL(s), comma-separated (default: WEFT_SERVER, config, https://127.0.0.1:9700)'));
  c.addOption(new Option('--token-file <file>', 'read the API token from this file (default: WEFT_TOKEN, WEFT_TOKEN_FILE, then the config from `weft login`)'));
  c.addOption(new Option('--token <token>', 'API token; visible to every user in `ps` and shell history: prefer --token-file'));
  c.addOption(new Option('--ca <file>', "the server's CA certificate (default: WEFT_CA, the config from `weft login`, /var/lib/weft/ca.crt)"));
  return c;
}

export function makeCtx(opts: Record<string, any>, io: Io): Ctx {
  const format = parseFormat(opts['output'] ?? 'table');
  const print = (t: string) => io.out(`${t}\n`);
  return {
    // The server warns about what succeeded but deserves a look (a conflist name that became ambiguous).
    client: new Client(resolveTarget({ server: opts['server'], token: opts['token'], tokenFile: opts['tokenFile'], ca: opts['ca'] }, io.env), { onWarning: (w) => io.err(`warning: ${terminalText(w)}\n`) }),
    format,
    tenant: opts['tenant'] ?? 'default',
    opts,
    print,
    show: (data) => print(renderData(data, format === 'table' ? 'yaml' : format)),
    table(rows, columns, names) {
      if (format !== 'table') return print(renderData(rows, format));
      if (opts['quiet'] && names) return rows.length ? print(rows.map(names).join('\n')) : undefined;
      print(renderTable(rows, columns));
    },
  };
}

/** Wraps an action so it receives a Ctx; errors propagate to the top level, which sets the exit code. */
export function act(io: Io, fn: (ctx: Ctx, ...args: string[]) => Promise<void>) {
  return async (...args: unknown[]) => {
    const cmd = args[args.length - 1] as Command;
    // A missing optional argument comes as '' (never a name: names are not empty).
    const positional = args.slice(0, -2).map((a) => (a === undefined ? '' : Array.isArray(a) ? a.join(' ') : String(a)));
    try {
      await fn(makeCtx(cmd.opts(), io), ...positional);
    } catch (e) {
      throw e instanceof ApiError ? byOption(e, cmd) : e;
    }
  };
}

/** Per command, the body fields its options fill under another name (`--port` fills `ports`). */
const optionFields = new WeakMap<Command, Record<string, string>>();

/** Says which body field an option of `cmd` fills where the names differ (option attribute → field). */
export function fillsFields(cmd: Command, fields: Record<string, string>): Command {
  optionFields.set(cmd, fields);
  return cmd;
}

/**
 * The server's refusal of a body field that an option filled, said as the option the user typed: `--from-cidr
 * (fromCidr): not a CIDR...` instead of the API's field name alone. A field no option fills stays as it is.
 */
export function byOption(e: ApiError, cmd: Command): ApiError {
  const field = e.field;
  if (field === undefined) return e;
  const fields = optionFields.get(cmd) ?? {};
  // The field or a part of it (`policies.1`, `labels.zone`), filled by an option the user gave.
  const fills = (x: Option) => { const f = fields[x.attributeName()] ?? x.attributeName(); return field === f || field.startsWith(`${f}.`); };
  const o = (cmd.options as Option[]).find((x) => x.long !== undefined && fills(x) && cmd.getOptionValueSource(x.attributeName()) === 'cli');
  if (!o) return e;
  const detail = e.message.startsWith(`${field}: `) ? e.message.slice(field.length + 2) : e.message;
  return new ApiError(e.status, e.code, `${o.long} (${field}): ${detail}`, field);
}

/** For a create/update: print a one-line confirmation, or the object in json/yaml. */
export function done(ctx: Ctx, obj: unknown, sentence: string): void {
  if (ctx.format === 'table') ctx.print(sentence);
  else ctx.show(obj);
}

export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/**
 * Every option that takes one value refuses a second (commander keeps the last: `rule-add ... --action
 * deny --action allow` stored an allow rule, silently); the repeatable ones collect (`collect`). An empty
 * value is refused too (`net create -e ''` made a vxlan network: empty read as unset).
 */
export function onceEach(cmd: Command): void {
  for (const o of cmd.options as Option[]) {
    if (!(o.required || o.optional) || o.variadic) continue;
    const parse = o.parseArg;
    o.argParser((value: string, previous: unknown) => {
      if (value === '') throw new InvalidArgumentError('empty; give a value (leave the option out for its default)');
      if (parse === collect) return collect(value, previous as string[] | undefined);
      // Given on the command line already (its value may equal the default: `-j allow -j deny`); false: its
      // --no- form came first (the pair is refused as such before the action, below).
      if (cmd.getOptionValueSource(o.attributeName()) === 'cli' && previous !== false) {
        throw new InvalidArgumentError(`given twice (${String(previous)} first); give it once`);
      }
      return parse ? parse(value, previous) : value;
    });
  }
  // `-n gold --no-netprofile`: one attribute, the last word winning (it detached gold's profile, silently).
  for (const no of (cmd.options as Option[]).filter((o) => o.negate)) {
    const yes = (cmd.options as Option[]).find((o) => !o.negate && o.attributeName() === no.attributeName());
    if (!yes) continue;
    const given = new Set<string>();
    cmd.on(`option:${yes.name()}`, () => given.add(yes.long ?? yes.name()));
    cmd.on(`option:${no.name()}`, () => given.add(no.long ?? no.name()));
    cmd.hook('preAction', () => {
      if (given.size > 1) throw usage(`give ${[...given].join(' or ')}, not both`);
    });
  }
  for (const sub of cmd.commands) onceEach(sub);
}

export const intArg = (flag: string, min: number, max: number) => (value: string): number => {
  if (!/^-?[0-9]+$/.test(value)) throw usage(`${flag}: '${value}' is not a whole number`);
  const n = Number(value);
  if (n < min || n > max) throw usage(`${flag}: ${n} is outside ${min}-${max}`);
  return n;
};

/** A flag spelled `--flag true|false` or `--flag=false`; anything else is a usage error naming it. */
export const boolArg = (flag: string) => (value: string): boolean => {
  if (value === 'true' || value === 'false') return value === 'true';
  throw usage(`${flag}: '${value}' is not true or false`);
};

/** A path segment from user input, encoded: a name like `../users` must not reach another route. */
export const seg = (x: string | number) => encodeURIComponent(String(x));

export function tenantPath(ctx: Ctx, rest: string): string {
  return `/api/v1/tenants/${encodeURIComponent(ctx.tenant)}/${rest}`;
}

/** Lists a tenant-scoped collection in one tenant, or in every visible tenant with --all. */
export async function listScoped<T>(ctx: Ctx, collection: string, all: boolean): Promise<T[]> {
  if (!all) return (await ctx.client.request<{ items: T[] }>('GET', tenantPath(ctx, collection))).items;
  const tenants = (await ctx.client.request<{ items: Array<{ name: string }> }>('GET', '/api/v1/tenants')).items;
  const out: T[] = [];
  for (const t of tenants) out.push(...(await ctx.client.request<{ items: T[] }>('GET', `/api/v1/tenants/${t.name}/${collection}`)).items);
  return out;
}

/** The `inspect NAME` and `rm NAME` verbs every tenant-scoped object has. */
export function inspectAndRm(io: Io, parent: Command, collection: string, kind: string, rmNote = ''): void {
  const cli = parent.name();
  leaf(parent, { name: 'inspect <name>', summary: `show a ${kind}`, example: [`weft ${cli} inspect NAME`, `weft ${cli} inspect -t blue NAME -o json`] })
    .action(act(io, async (ctx, name) => ctx.show(await ctx.client.request('GET', tenantPath(ctx, `${collection}/${seg(name)}`)))));
  leaf(parent, { name: 'rm <name>', summary: `delete a ${kind}${rmNote}`, example: `weft ${cli} rm NAME` })
    .action(act(io, async (ctx, name) => {
      await ctx.client.request('DELETE', tenantPath(ctx, `${collection}/${seg(name)}`));
      done(ctx, { deleted: { kind, tenant: ctx.tenant, name } }, `${kind} ${ctx.tenant}/${name} deleted`);
    }));
}
