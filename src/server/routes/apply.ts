import type { FastifyInstance } from 'fastify';
import { AjvCompiler } from '@fastify/ajv-compiler';
import { Type } from '@sinclair/typebox';
import { API_VERSIONS, APPLY_KINDS, APPLY_SPECS, ApplyInput, DEFAULT_NAMESPACE, MODE_ANNOTATION, NAME_PATTERN, Name, WeftError, documentOf, type ApplyDocument, type ApplyKind } from '../../model/index.js';
import { requireFabricRights, storedNetwork, requireRole, requireTenantAccess, tenantPolicyIn, type ApplyDoc, type ApplyOutcome, type TenantPolicyObjects } from '../../control/index.js';
import { DryRunComparer } from '../dry-run.js';
import type { Txn } from '../../store/index.js';
import { policyStateOf } from './explain.js';
import { askerOf, endedSignal, principalOf } from '../context.js';
import { fromValidation, type AjvError } from '../problem.js';

type Validate = ((data: unknown) => boolean) & { errors?: AjvError[] | null };

/** Each kind's spec validator, compiled on first use with the server's own ajv options (unknown fields are errors). */
const validators = new Map<ApplyKind, Validate>();
let compile: ((route: { schema: object }) => Validate) | undefined;

function specValidator(kind: ApplyKind): Validate {
  let v = validators.get(kind);
  if (!v) {
    compile ??= AjvCompiler()({}, { customOptions: { removeAdditional: false, coerceTypes: false, useDefaults: false, allErrors: false } }) as unknown as (route: { schema: object }) => Validate;
    v = compile({ schema: APPLY_SPECS[kind] });
    validators.set(kind, v);
  }
  return v;
}

/**
 * A document as control's apply takes it: its tenant resolved and, to be written, its spec checked
 * against its kind's schema (a delete needs only the kind and the name: its spec is not looked at).
 */
function docOf(d: ApplyDocument, index: number, defaultTenant: string, remove: boolean, audit = false): ApplyDoc {
  const refuse = (field: string, why: string) => new WeftError('WEFT_INVALID_FIELD', `documents.${index}.${field}: ${why}`, { field: `documents.${index}.${field}` });
  if (d.kind === 'Tenant' && d.metadata.tenant !== undefined) throw refuse('metadata.tenant', 'a Tenant is not inside a tenant; name it in metadata.name');
  if (d.apiVersion !== undefined && d.apiVersion !== API_VERSIONS[d.kind]) throw refuse('apiVersion', `a ${d.kind} is ${API_VERSIONS[d.kind]}, not ${d.apiVersion}`);
  if (d.metadata.namespace !== undefined && d.kind !== 'NetworkPolicy') throw refuse('metadata.namespace', `a ${d.kind} is not in a namespace (only a NetworkPolicy is)`);
  // Kubernetes' kinds may carry labels and annotations (as charts write them): a Namespace's labels are its
  // own; of the rest only the annotation weft.io/mode is read. Weft's kinds take neither.
  const k8s = API_VERSIONS[d.kind] !== 'weft/v1';
  if (d.metadata.labels !== undefined && !k8s) throw refuse('metadata.labels', `a ${d.kind} takes no labels in its metadata${['Group', 'Service'].includes(d.kind) ? ' (its labels are in its spec)' : ''}`);
  if (d.metadata.annotations !== undefined && !k8s) throw refuse('metadata.annotations', `a ${d.kind} takes no annotations`);
  const mode = d.metadata.annotations?.[MODE_ANNOTATION];
  if (mode !== undefined && (mode !== 'audit' && mode !== 'enforce' || !POLICY_KINDS.has(d.kind))) {
    throw refuse(`metadata.annotations.${MODE_ANNOTATION}`, POLICY_KINDS.has(d.kind) ? `'${mode}' is not enforce or audit` : `a ${d.kind} has no mode`);
  }
  const tenant = d.kind === 'Tenant' ? d.metadata.name : d.metadata.tenant ?? defaultTenant;
  const spec = remove ? {} : d.spec ?? {};
  const validate = specValidator(d.kind);
  if (!remove && !validate(spec)) {
    const e = fromValidation(validate.errors ?? [], 'body', 'spec');
    const title = d.kind === 'Tenant' ? `Tenant ${tenant}` : `${d.kind} ${tenant}/${d.metadata.name}`;
    throw new WeftError(e.code, `documents.${index} (${title}): ${e.message}`, e.field !== undefined ? { field: `documents.${index}.${e.field}` } : {});
  }
  const input = inputOf(d, spec);
  // `weft apply --audit`: every policy of the file in audit mode.
  if ((audit || mode === 'audit') && POLICY_KINDS.has(d.kind)) Object.assign(input, { mode: 'audit' });
  return { index, kind: d.kind, tenant, input } as ApplyDoc;
}

/** A refusal lists at most this many documents' errors (each document's first), then counts the rest. */
export const LISTED_DOCUMENT_ERRORS = 10;

/**
 * A document's error on one line: a key of the body (echoed as the field) may hold a line break, and a
 * line of its own starting `documents.N` would read as the server's, and `weft apply` would put another
 * document's place in the file before it.
 */
const oneLine = (text: string) => text.replace(/[\u0000-\u001f\u007f\u0085\u2028\u2029]/g, (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`);

/**
 * Every document checked, so that a file with several mistakes is mended in one round: each document's
 * first error (one per document: Ajv's allErrors is unsafe on hostile input), one refusal naming them all,
 * a line each. One error reads as before; the refusal's code and field are the first document's.
 */
function docsOf(body: ApplyInput): ApplyDoc[] {
  const docs: ApplyDoc[] = [];
  const bad: WeftError[] = [];
  body.documents.forEach((d, i) => {
    try {
      docs.push(docOf(d, i, body.tenant ?? 'default', body.delete === true, body.audit === true));
    } catch (e) {
      if (!(e instanceof WeftError)) throw e;
      bad.push(e);
    }
  });
  const [first] = bad;
  if (!first) return docs;
  if (bad.length === 1) throw oneLine(first.message) === first.message ? first : new WeftError(first.code, oneLine(first.message), first.field !== undefined ? { field: first.field } : {});
  const listed = bad.slice(0, LISTED_DOCUMENT_ERRORS).map((e) => oneLine(e.message));
  const more = bad.length - listed.length;
  throw new WeftError(first.code, `${bad.length} of the ${body.documents.length} documents are invalid; nothing was applied:\n${listed.join('\n')}${more > 0 ? `\n(and ${more} more)` : ''}`,
    first.field !== undefined ? { field: first.field } : {});
}

/** A dry run lists verdict changes for at most this many tenants, endpoints of each, and changes. */
const MAX_DIFF_TENANTS = 5;
const MAX_DIFF_ENDPOINTS = 200;
const MAX_DIFF_CHANGES = 100;

/**
 * The runs of ports where a tenant's endpoints would get another verdict (from two compiles of the whole
 * tenant, made on a thread of their own: dry-run.ts).
 */
async function flowChanges(comparer: DryRunComparer, asked: { who: string; signal: AbortSignal }, tenant: string, before: TenantPolicyObjects | undefined, after: TenantPolicyObjects | undefined) {
  const endpoints = (after ?? before)?.endpoints ?? [];
  if (!before || !after) return { tenant, changes: [], total: 0, note: before ? 'the tenant goes' : 'a new tenant' };
  if (endpoints.length > MAX_DIFF_ENDPOINTS) return { tenant, changes: [], total: 0, note: `${endpoints.length} endpoints: past ${MAX_DIFF_ENDPOINTS}, not compared` };
  const name = new Map(endpoints.map((e) => [e.id, e.containerName ?? e.containerId.slice(0, 12)]));
  const d = await comparer.compare({ before: policyStateOf(before), after: policyStateOf(after), endpoints, limit: MAX_DIFF_CHANGES }, asked.who, asked.signal);
  if ('refused' in d) return { tenant, changes: [], total: 0, note: d.refused };
  return {
    tenant, total: d.total,
    changes: d.changes.map((c) => ({ from: name.get(c.from), to: name.get(c.to), protocol: c.protocol, ports: c.first === c.last ? String(c.first) : `${c.first}-${c.last}`, before: c.before, after: c.after })),
  };
}

const POLICY_KINDS = new Set<ApplyKind>(['Policy', 'NetworkPolicy', 'AdminNetworkPolicy', 'BaselineAdminNetworkPolicy']);

/** What a kind's create takes from a document: the spec and the name, and for Kubernetes' kinds their metadata. */
function inputOf(d: ApplyDocument, spec: object): object {
  const name = d.metadata.name;
  if (d.kind === 'NetworkPolicy') {
    const namespace = d.metadata.namespace ?? DEFAULT_NAMESPACE;
    return { name: `${namespace}.${name}`, namespace, policyName: name, spec };
  }
  if (d.kind === 'Namespace') return { name, ...(d.metadata.labels ? { labels: d.metadata.labels } : {}) };
  if (d.kind === 'AdminNetworkPolicy' || d.kind === 'BaselineAdminNetworkPolicy') return { name, spec };
  return { ...spec, name };
}

const DocumentsQuery = Type.Object({
  kind: Type.Optional(Type.Unsafe<ApplyKind>({ type: 'string', enum: [...APPLY_KINDS], description: 'one kind (default: the tenant and everything in it)' })),
  name: Type.Optional(Name),
  namespace: Type.Optional(Type.String({ pattern: NAME_PATTERN, description: 'NetworkPolicies of this namespace only' })),
}, { additionalProperties: false });

export function applyRoutes(app: FastifyInstance): void {
  const c = app.control;
  const comparer = new DryRunComparer();
  const crud = c.byKind;

  app.get<{ Params: { tenant: string }; Querystring: { kind?: ApplyKind; name?: string; namespace?: string } }>('/api/v1/tenants/:tenant/documents', {
    schema: {
      params: Type.Object({ tenant: Name }, { additionalProperties: false }), querystring: DocumentsQuery, tags: ['apply'],
      summary: 'A tenant and its objects as the documents POST /apply takes (`weft get`): applying them back changes nothing',
    },
  }, async (req) => {
    const { tenant } = req.params;
    const { kind, name, namespace } = req.query;
    requireTenantAccess(principalOf(req), tenant);
    if (name !== undefined && kind === undefined) throw new WeftError('WEFT_INVALID_FIELD', 'name: give a kind with a name', { field: 'name' });
    if (namespace !== undefined && kind !== 'NetworkPolicy') throw new WeftError('WEFT_INVALID_FIELD', 'namespace: only NetworkPolicies are in namespaces (give kind=NetworkPolicy)', { field: 'namespace' });
    const items: ApplyDocument[] = [];
    if (kind === undefined || kind === 'Tenant') {
      if (name !== undefined && name !== tenant) throw new WeftError('WEFT_INVALID_FIELD', `name: the tenant is ${tenant} (the path names it)`, { field: 'name' });
      items.push(documentOf('Tenant', await c.tenants.get(tenant)));
    }
    for (const k of APPLY_KINDS) {
      if (k === 'Tenant' || (kind !== undefined && kind !== k)) continue;
      // A NetworkPolicy is stored as NAMESPACE.NAME.
      const key = name !== undefined && k === 'NetworkPolicy' ? `${namespace ?? DEFAULT_NAMESPACE}.${name}` : name;
      let objs = key !== undefined ? [await crud[k].get(tenant, key)] : (await crud[k].list(tenant)).items;
      if (namespace !== undefined) objs = objs.filter((o) => (o as { namespace?: string }).namespace === namespace);
      for (const o of objs) items.push(documentOf(k, o));
    }
    return { items };
  });

  app.post<{ Body: ApplyInput }>('/api/v1/apply', {
    schema: {
      body: ApplyInput, tags: ['apply'],
      summary: 'Create, replace or delete many objects in one transaction (`weft apply -f`, `weft delete -f`)',
      description: 'Each document is a whole object (what it leaves out is unset or its default); objects that would not change are not written. Written in dependency order; all or nothing.',
    },
  }, async (req, reply): Promise<ApplyOutcome & { flows?: unknown }> => {
    const p = principalOf(req);
    requireRole(p, ['admin', 'ops', 'tenant'], 'apply documents');
    const docs = docsOf(req.body);
    for (const d of docs) {
      // The tenant first: the fabric check reads the stored network, and its answer (403 for a macvlan or
      // routed one) told a user of another tenant that tenant's network and its kind.
      try {
        requireTenantAccess(p, d.tenant);
      } catch (e) {
        if (e instanceof WeftError) throw new WeftError(e.code, `documents.${d.index}: ${e.message}`, { field: `documents.${d.index}.metadata.${d.kind === 'Tenant' ? 'name' : 'tenant'}` });
        throw e;
      }
      if (d.kind === 'Network' && req.body.delete !== true) await requireFabricRights(p, d.input, `documents.${d.index}.spec.encap`, () => storedNetwork(app.control, d.tenant, d.input.name));
    }
    const dryRun = req.body.dryRun === true;
    const opts = { dryRun, remove: req.body.delete === true, mayManageTenants: p.role === 'admin' || p.role === 'ops' };
    if (!dryRun) return app.control.apply(p.user, docs, opts);
    // A dry run also says which flows between the tenants' endpoints would change verdict.
    const tenants = [...new Set(docs.map((d) => d.tenant))].slice(0, MAX_DIFF_TENANTS);
    const read = (tx: Txn) => Promise.all(tenants.map(async (t) => [t, await tenantPolicyIn(tx, t)] as const));
    const before = new Map((await app.control.store.transact('read', read)).value);
    const outcome = await app.control.apply(p.user, docs, { ...opts, inspect: read });
    const after = new Map(outcome.inspected as Array<readonly [string, TenantPolicyObjects | undefined]>);
    const { inspected: _i, ...rest } = outcome;
    const flows = [];
    const asked = { who: askerOf(p), signal: endedSignal(reply) };
    for (const t of tenants) flows.push(await flowChanges(comparer, asked, t, before.get(t), after.get(t)));
    return { ...rest, flows };
  });
}
