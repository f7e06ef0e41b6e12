import { InvalidArgumentError, type Command } from 'commander';
import { ApiError } from '../../client/index.js';
import { act, type Ctx, type Io, leaf, tenantPath } from '../kit.js';
import { usage } from '../errors.js';
import { readBounded } from '../config.js';
import { renderData, YAML } from '../output.js';

/** A second -f would silently replace the first (commander keeps the last value). */
function onlyOnce(value: string, previous: string | undefined): string {
  if (previous !== undefined) throw new InvalidArgumentError(`give one file (${previous} was given already); join several with cat a.yaml b.yaml | weft apply -f -`);
  return value;
}

/** Larger files are refused before parsing (the server takes 1 MiB bodies by default, --body-limit). */
const MAX_FILE_BYTES = 8 * 1024 * 1024;
/** What a file's documents may come to once YAML's aliases are expanded: past it, refused before expanding. */
const MAX_EXPANDED = 16 * 1024 * 1024;
/** Documents read, empty ones too: a file of millions of `---` lines took 4 GB and 97 s to find it had none. */
const MAX_READ_DOCUMENTS = 10 * 250;
/** The server's MAX_APPLY_DOCUMENTS (the CLI does not load the model's schemas): more are refused here, before sending. */
export const MAX_DOCUMENTS = 250;

interface Parsed { documents: unknown[]; lines: number[] }

function readSource(file: string): string {
  try {
    return readBounded(file, MAX_FILE_BYTES, '--filename');
  } catch (e) {
    if (e instanceof Error && e.message.startsWith('--filename')) throw usage(e.message);
    throw usage(`--filename: cannot read ${file === '-' ? 'standard input' : file}: ${(e as Error).message}`);
  }
}

type YamlDoc = import('yaml').Document.Parsed;

/**
 * About how many bytes a node comes to with its aliases expanded (each alias counted as what it names,
 * once per use), stopping as soon as the sum passes MAX_EXPANDED: a 10 MB anchor used 60 times stayed
 * under the library's alias count and grew the CLI to 1 GB.
 */
function expandedSize(_doc: YamlDoc, root: unknown): number {
  const y = YAML();
  const sizes = new Map<unknown, number>();
  // Anchors as the walk (in document order) meets them: an alias names the last one of its name before
  // it. (The library's own resolve walks the whole document for each alias: quadratic in aliases.)
  const anchors = new Map<string, number>();
  const sizeOf = (node: unknown, depth: number): number => {
    if (depth > 1000) return MAX_EXPANDED + 1;
    if (y.isAlias(node)) return anchors.get(node.source) ?? 1;
    const known = sizes.get(node);
    if (known !== undefined) return known;
    let n = 1;
    if (y.isScalar(node)) n = String(node.value).length + 1;
    else if (y.isMap(node) || y.isSeq(node)) {
      for (const item of node.items as unknown[]) {
        n += y.isPair(item) ? sizeOf(item.key, depth + 1) + sizeOf(item.value, depth + 1) : sizeOf(item, depth + 1);
        if (n > MAX_EXPANDED) break;
      }
    }
    sizes.set(node, n);
    const anchor = (node as { anchor?: string } | null)?.anchor;
    if (anchor) anchors.set(anchor, n);
    return n;
  };
  return sizeOf(root, 0);
}

/** The documents of a YAML (or JSON) stream, each with the line it starts on; empty documents are skipped. */
export function parseDocuments(text: string, name: string): Parsed {
  const { Composer, LineCounter, Parser } = YAML();
  const counter = new LineCounter();
  const lineAt = (offset: number) => counter.linePos(offset).line;
  const documents: unknown[] = [];
  const lines: number[] = [];
  let read = 0;
  // One document at a time: each is done with before the next is made.
  for (const d of new Composer().compose(new Parser(counter.addNewLine).parse(text), true)) {
    if (++read > MAX_READ_DOCUMENTS) throw usage(`${name}: more than ${MAX_READ_DOCUMENTS} documents, empty ones counted (line ${lineAt(d.range[0])}); one apply takes at most ${MAX_DOCUMENTS}: split the file`);
    const first = d.errors[0];
    if (first) {
      const at = first.linePos?.[0] ?? counter.linePos(first.pos[0]);
      throw usage(`${name}: line ${at.line}: ${first.message.split('\n')[0]} (column ${at.col})`);
    }
    if (d.contents === null) continue;
    const line = lineAt(d.contents.range?.[0] ?? 0);
    const size = expandedSize(d, d.contents);
    if (size > MAX_EXPANDED) throw usage(`${name}: line ${line}: the document comes to more than ${MAX_EXPANDED} bytes once its aliases (*name) are expanded; write it out or split it`);
    let value: unknown;
    try {
      value = d.toJS({ maxAliasCount: 100 });
    } catch (e) {
      throw usage(`${name}: line ${line}: ${(e as Error).message}`);
    }
    if (value === null || value === undefined) continue;
    // A list of documents is what `weft get -o json` prints: each item is one, on the line it starts on.
    const starts = Array.isArray(value) && YAML().isSeq(d.contents) ? d.contents.items.map((x) => lineAt((x as unknown as { range?: [number] } | null)?.range?.[0] ?? 0)) : [];
    for (const [k, item] of (Array.isArray(value) ? value : [value]).entries()) {
      const at = starts[k] ?? line;
      if (typeof item !== 'object' || item === null || Array.isArray(item)) throw usage(`${name}: line ${at}: a document must be a mapping (kind, metadata, spec)${Array.isArray(value) ? ', and so each item of a list of them' : ''}`);
      documents.push(item);
      lines.push(at);
      if (documents.length > MAX_DOCUMENTS) throw usage(`${name}: more than ${MAX_DOCUMENTS} documents (line ${at}); one apply takes at most ${MAX_DOCUMENTS}: split the file`);
    }
  }
  if (documents.length === 0) throw usage(`${name}: no documents`);
  return { documents, lines };
}

interface FlowChanges { tenant: string; total: number; note?: string; changes: Array<{ from: string; to: string; protocol: string; ports: string; before: string; after: string }> }

function report(ctx: Ctx, outcome: { dryRun: boolean; results: Array<{ kind: string; tenant?: string; name: string; action: string }>; flows?: FlowChanges[] }): void {
  if (ctx.format !== 'table') return ctx.show(outcome);
  for (const r of outcome.results) ctx.print(`${r.kind.toLowerCase()} ${r.tenant ? `${r.tenant}/` : ''}${r.name} ${r.action}${outcome.dryRun ? ' (dry run)' : ''}`);
  // A dry run: the flows between each tenant's endpoints whose verdict would change.
  for (const f of outcome.flows ?? []) {
    if (f.note) ctx.print(`flows of ${f.tenant}: ${f.note}`);
    else if (f.total > 0) ctx.print(`flows of ${f.tenant} that would change verdict: ${f.total}${f.total > f.changes.length ? ` (the first ${f.changes.length} below)` : ''}`);
    for (const c of f.changes) ctx.print(`  ${c.from} > ${c.to} ${c.protocol} ${c.ports}: ${c.before} -> ${c.after}`);
  }
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
      .requiredOption('-f, --filename <file>', 'YAML or JSON documents, separated by ---; - reads standard input (one file: join several with cat a.yaml b.yaml | weft apply -f -)', onlyOnce)
      .option('--dry-run', 'check and report what would change; change nothing')
      .option('--audit', remove ? 'ignored by delete' : 'write every policy of the file (Policy, NetworkPolicy, the admin kinds) in audit mode: evaluated, nothing dropped, would-be drops counted and logged')
      .addHelpText('after', remove ? '' : `
Each document is one whole object (fields it leaves out are unset, or their defaults):
  kind: Network                  # Tenant, Netprofile, Network, Policy, Group, Service or AppProfile
  metadata: { name: front, tenant: shop }   # tenant: default -t, then "default"
  spec: { subnet: 10.20.0.0/24 }            # the fields its create takes (see \`weft net create --help\`)
Kubernetes' NetworkPolicy (networking.k8s.io/v1, metadata.namespace), Namespace (v1, metadata.labels),
AdminNetworkPolicy and BaselineAdminNetworkPolicy (policy.networking.k8s.io/v1alpha1) go in the same files: a pod is an endpoint, its namespace its label \`namespace\` (CNI: K8S_POD_NAMESPACE).
Written in one transaction, in dependency order whatever the documents' order, at most 250 documents.
Quote what must stay text: ports: "80", id: "1" (unquoted, YAML reads them as numbers).
`)
      .action(act(io, async (ctx) => {
        const file = String(ctx.opts['filename']);
        const { documents, lines } = parseDocuments(readSource(file), file === '-' ? '<stdin>' : file);
        try {
          report(ctx, await ctx.client.request('POST', '/api/v1/apply', { tenant: ctx.tenant, documents, ...(ctx.opts['dryRun'] ? { dryRun: true } : {}), ...(remove ? { delete: true } : {}), ...(ctx.opts['audit'] && !remove ? { audit: true } : {}) }));
        } catch (e) {
          // The server names a document by its place (a line each when several are refused): say where
          // each is in the file.
          if (!(e instanceof ApiError)) throw e;
          const name = file === '-' ? '<stdin>' : file;
          throw new ApiError(e.status, e.code, e.message.replace(/^documents\.(\d+)/gm, (at, i: string) => (lines[Number(i)] !== undefined ? `${name}:${lines[Number(i)]}: ${at}` : at)));
        }
      }));
  }
}

/** `weft get` kinds: the words it takes for each kind of document. */
const GET_KINDS: ReadonlyArray<{ kind: string; words: string[] }> = [
  { kind: 'Tenant', words: ['tenant', 'tenants'] },
  { kind: 'Netprofile', words: ['netprofile', 'netprofiles'] },
  { kind: 'Network', words: ['net', 'network', 'networks'] },
  { kind: 'Policy', words: ['policy', 'policies'] },
  { kind: 'Group', words: ['group', 'groups'] },
  { kind: 'Service', words: ['service', 'services'] },
  { kind: 'AppProfile', words: ['app-profile', 'app-profiles'] },
  { kind: 'Namespace', words: ['namespace', 'namespaces', 'ns'] },
  { kind: 'NetworkPolicy', words: ['networkpolicy', 'networkpolicies', 'netpol'] },
  { kind: 'AdminNetworkPolicy', words: ['adminnetworkpolicy', 'adminnetworkpolicies', 'anp'] },
  { kind: 'BaselineAdminNetworkPolicy', words: ['baselineadminnetworkpolicy', 'baselineadminnetworkpolicies', 'banp'] },
];

export function getCommands(program: Command, io: Io): void {
  leaf(program, {
    name: 'get <kind> [name]',
    summary: 'print objects as the documents `weft apply -f` takes (YAML by default): applying them back changes nothing',
    example: ['weft get all -t shop > shop.yaml', 'weft get group web -t shop', 'weft get networks -o json', 'weft get networkpolicy -n x -t shop'],
    output: 'documents',
  })
    .option('-n, --namespace <namespace>', 'NetworkPolicies of this namespace only (with a name: that namespace\'s policy; default namespace: default)')
    .addHelpText('after', `\nKinds: all (the tenant and everything in it), ${GET_KINDS.map((k) => k.words[0]).join(', ')}.\n`)
    .action(act(io, async (ctx, word, name) => {
      if (ctx.format === 'table') throw usage('get: -o yaml or json (it prints documents, as `weft apply -f` takes them; `weft KIND ls` prints tables)');
      const k = GET_KINDS.find((x) => x.words.includes(word ?? ''));
      if (word !== 'all' && !k) throw usage(`get: '${word}' is not a kind; one of all, ${GET_KINDS.map((x) => x.words[0]).join(', ')}`);
      if (word === 'all' && name) throw usage('get all: takes no name (it prints the tenant and everything in it)');
      // `weft get tenant NAME` is that tenant: -t names it otherwise.
      if (k?.kind === 'Tenant' && name) ctx.tenant = name;
      const namespace = ctx.opts['namespace'] as string | undefined;
      if (namespace !== undefined && k?.kind !== 'NetworkPolicy') throw usage('get: --namespace goes with networkpolicy (only NetworkPolicies are in namespaces)');
      const query = new URLSearchParams({ ...(k ? { kind: k.kind } : {}), ...(name && k?.kind !== 'Tenant' ? { name } : {}), ...(namespace ? { namespace } : {}) });
      const q = query.toString();
      const { items } = await ctx.client.request('GET', tenantPath(ctx, `documents${q ? `?${q}` : ''}`));
      if (ctx.format === 'json') return ctx.print(renderData(items, 'json'));
      ctx.print((items as unknown[]).map((d) => renderData(d, 'yaml')).join('\n---\n'));
    }));
}
