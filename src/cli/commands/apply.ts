import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { ApiError } from '../../client/index.js';
import { act, type Ctx, type Io, leaf } from '../kit.js';
import { usage } from '../errors.js';
import { YAML } from '../output.js';
import { APPLY_KINDS, documentOf, type ApplyKind } from '../../model/index.js';

/** Larger files are refused before parsing (the server takes at most 1,000 documents in one request). */
const MAX_FILE_BYTES = 32 * 1024 * 1024;

interface Parsed { documents: unknown[]; lines: number[] }

function readSource(file: string): string {
  let text: string;
  try {
    text = readFileSync(file === '-' ? 0 : file, 'utf8');
  } catch (e) {
    throw usage(`--filename: cannot read ${file === '-' ? 'standard input' : file}: ${(e as Error).message}`);
  }
  if (Buffer.byteLength(text) > MAX_FILE_BYTES) throw usage(`--filename: ${file} is larger than ${MAX_FILE_BYTES} bytes`);
  return text;
}

/** The documents of a YAML (or JSON) stream, each with the line it starts on; empty documents are skipped. */
export function parseDocuments(text: string, name: string): Parsed {
  const lineAt = (offset: number) => text.slice(0, offset).split('\n').length;
  const documents: unknown[] = [];
  const lines: number[] = [];
  for (const d of YAML().parseAllDocuments(text)) {
    const first = d.errors[0];
    if (first) throw usage(`${name}: line ${first.linePos?.[0]?.line ?? lineAt(first.pos[0])}: ${first.message.split('\n')[0]}`);
    if (d.contents === null) continue;
    const line = lineAt(d.contents.range?.[0] ?? 0);
    let value: unknown;
    try {
      value = d.toJS({ maxAliasCount: 100 });
    } catch (e) {
      throw usage(`${name}: line ${line}: ${(e as Error).message}`);
    }
    if (value === null || value === undefined) continue;
    if (typeof value !== 'object' || Array.isArray(value)) throw usage(`${name}: line ${line}: a document must be a mapping (kind, metadata, spec)`);
    documents.push(value);
    lines.push(line);
  }
  if (documents.length === 0) throw usage(`${name}: no documents`);
  return { documents, lines };
}

function report(ctx: Ctx, outcome: { dryRun: boolean; results: Array<{ kind: string; tenant?: string; name: string; action: string }> }): void {
  if (ctx.format !== 'table') return ctx.show(outcome);
  for (const r of outcome.results) ctx.print(`${r.kind.toLowerCase()} ${r.tenant ? `${r.tenant}/` : ''}${r.name} ${r.action}${outcome.dryRun ? ' (dry run)' : ''}`);
}

export function applyCommands(program: Command, io: Io): void {
  for (const remove of [false, true]) {
    const verb = remove ? 'delete' : 'apply';
    leaf(program, {
      name: verb,
      summary: remove
        ? 'delete the objects YAML documents name (all or nothing; those already gone are reported absent)'
        : 'create or replace the objects of YAML documents (all or nothing; unchanged ones are not written)',
      example: remove
        ? ['weft delete -f shop.yaml', 'weft delete -f shop.yaml --dry-run']
        : ['weft apply -f shop.yaml', 'weft apply -f shop.yaml -t shop --dry-run', 'cat shop.yaml | weft apply -f -'],
    })
      .requiredOption('-f, --filename <file>', 'YAML or JSON documents, separated by ---; - reads standard input')
      .option('--dry-run', 'check and report what would change; change nothing')
      .addHelpText('after', remove ? '' : `
Each document is one whole object (fields it leaves out are unset, or their defaults):
  kind: Network                  # Tenant, Netprofile, Network, Policy, Group, Service or AppProfile
  metadata: { name: front, tenant: shop }   # tenant: default -t, then "default"
  spec: { subnet: 10.20.0.0/24 }            # the fields its create takes (see \`weft net create --help\`)
Written in one transaction, in dependency order whatever the documents' order.
`)
      .action(act(io, async (ctx) => {
        const file = String(ctx.opts['filename']);
        const { documents, lines } = parseDocuments(readSource(file), file === '-' ? '<stdin>' : file);
        try {
          report(ctx, await ctx.client.request('POST', '/api/v1/apply', { tenant: ctx.tenant, documents, ...(ctx.opts['dryRun'] ? { dryRun: true } : {}), ...(remove ? { delete: true } : {}) }));
        } catch (e) {
          // The server names a document by its place: say where it is in the file.
          const m = e instanceof ApiError ? /^documents\.(\d+)/.exec(e.message) : null;
          const line = m ? lines[Number(m[1])] : undefined;
          if (e instanceof ApiError && line !== undefined) throw new ApiError(e.status, e.code, `${file === '-' ? '<stdin>' : file}:${line}: ${e.message}`);
          throw e;
        }
      }));
  }
}

/** `weft get` kinds: the words it takes, and where each kind is listed in a tenant. */
const GET_KINDS: ReadonlyArray<{ kind: Exclude<ApplyKind, 'Tenant'>; words: string[]; path: string }> = [
  { kind: 'Netprofile', words: ['netprofile', 'netprofiles'], path: 'netprofiles' },
  { kind: 'Network', words: ['net', 'network', 'networks'], path: 'networks' },
  { kind: 'Policy', words: ['policy', 'policies'], path: 'policies' },
  { kind: 'Group', words: ['group', 'groups'], path: 'groups' },
  { kind: 'Service', words: ['service', 'services'], path: 'services' },
  { kind: 'AppProfile', words: ['app-profile', 'app-profiles'], path: 'app-profiles' },
];

type Obj = { name: string; tenant?: string } & Record<string, unknown>;

export function getCommands(program: Command, io: Io): void {
  leaf(program, {
    name: 'get <kind> [name]',
    summary: 'print objects as the documents `weft apply -f` takes (YAML by default): applying them back changes nothing',
    example: ['weft get all -t shop > shop.yaml', 'weft get group web -t shop', 'weft get networks -o json'],
  })
    .addHelpText('after', `\nKinds: all (the tenant and everything in it), tenant, ${GET_KINDS.map((k) => k.words[0]).join(', ')}.\n`)
    .action(act(io, async (ctx, word, name) => {
      const docs = await documentsFor(ctx, word ?? '', name || undefined);
      if (ctx.format === 'json') return ctx.print(JSON.stringify(docs, null, 2));
      ctx.print(docs.map((d) => YAML().stringify(d).trimEnd()).join('\n---\n'));
    }));
}

async function documentsFor(ctx: Ctx, word: string, name: string | undefined): Promise<unknown[]> {
  const tenant = async () => documentOf('Tenant', (await ctx.client.request('GET', `/api/v1/tenants/${encodeURIComponent(ctx.tenant)}`)) as Obj);
  const list = async (k: (typeof GET_KINDS)[number]) => {
    const base = `/api/v1/tenants/${encodeURIComponent(ctx.tenant)}/${k.path}`;
    const items = name !== undefined ? [(await ctx.client.request('GET', `${base}/${encodeURIComponent(name)}`)) as Obj] : ((await ctx.client.request('GET', base)).items as Obj[]);
    return items.map((o) => documentOf(k.kind, o));
  };
  if (word === 'all') {
    if (name !== undefined) throw usage('get all: takes no name (it prints the tenant and everything in it)');
    const out: unknown[] = [await tenant()];
    for (const k of GET_KINDS) out.push(...(await list(k)));
    return out;
  }
  if (word === 'tenant' || word === 'tenants') {
    if (name !== undefined) ctx.tenant = name;
    return [await tenant()];
  }
  const k = GET_KINDS.find((x) => x.words.includes(word));
  if (!k) throw usage(`get: '${word}' is not a kind; one of all, tenant, ${GET_KINDS.map((x) => x.words[0]).join(', ')} (documents: ${APPLY_KINDS.join(', ')})`);
  return list(k);
}
