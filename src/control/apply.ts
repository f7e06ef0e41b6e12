import { WeftError, type ApplyKind, type AppProfileInput, type GroupInput, type NamespaceInput, type NetprofileInput, type AdminNetworkPolicyInput, type BaselineAdminNetworkPolicyInput, type NetworkInput, type NetworkPolicyInput, type PolicyInput, type ServiceInput, type TenantInput } from '../model/index.js';
import type { Store, Txn } from '../store/index.js';
import type { Crud, Scoped } from './crud.js';
import type { Tenants } from './tenants.js';

interface Inputs {
  Tenant: TenantInput;
  Netprofile: NetprofileInput;
  Network: NetworkInput;
  Policy: PolicyInput;
  Group: GroupInput;
  Service: ServiceInput;
  AppProfile: AppProfileInput;
  Namespace: NamespaceInput;
  NetworkPolicy: NetworkPolicyInput;
  AdminNetworkPolicy: AdminNetworkPolicyInput;
  BaselineAdminNetworkPolicy: BaselineAdminNetworkPolicyInput;
}

/** One document, checked against its kind's schema: the object it describes, whole. */
export type ApplyDoc = { [K in ApplyKind]: { index: number; kind: K; tenant: string; input: Inputs[K] } }[ApplyKind];

export type ApplyAction = 'created' | 'updated' | 'unchanged' | 'deleted' | 'absent';
export interface ApplyResult { index: number; kind: ApplyKind; tenant?: string; name: string; action: ApplyAction }
export interface ApplyOutcome { results: ApplyResult[]; revision: number; dryRun: boolean; inspected?: unknown }

export interface ApplyOptions {
  /** Remove what the documents name instead of writing it. */
  remove?: boolean;
  /** Decide everything (every check a real apply makes), report it, and write nothing. */
  dryRun?: boolean;
  /** Whether the caller may create and delete tenants (admin and ops users). */
  mayManageTenants: boolean;
  /** A dry run's look at what it wrote, before the transaction is thrown away (the verdicts that would change). */
  inspect?: (tx: Txn) => Promise<unknown>;
}

/** What apply needs of the control plane. */
export interface ApplyTargets {
  store: Store;
  tenants: Tenants;
  kinds: { [K in Exclude<ApplyKind, 'Tenant'>]: Pick<Crud<Inputs[K], Scoped>, 'findIn' | 'createIn' | 'upsertIn' | 'removeIn'> };
}

/** Thrown inside a dry run's transaction so that nothing of it is written; carries what it decided. */
class DryRun {
  constructor(readonly results: ApplyResult[], readonly inspected: unknown) {}
}

const titleOf = (d: ApplyDoc) => (d.kind === 'Tenant' ? `Tenant ${d.input.name}` : `${d.kind} ${d.tenant}/${d.input.name}`);

/**
 * `weft apply -f` / `weft delete -f`: many objects in one transaction, so a document that fails leaves
 * nothing of the others behind. Writes go in dependency order whatever the documents' order, and the one
 * cycle (a group names its policies, a policy's rules name groups) is broken by creating a new policy
 * empty first and writing its rules after the groups; a delete empties the policies before it deletes the
 * groups their rules name. Every write is the one the single-object API makes (same checks, quotas,
 * owners); an object that would not change is not written.
 */
export async function applyDocuments(t: ApplyTargets, actor: string, docs: readonly ApplyDoc[], opts: ApplyOptions): Promise<ApplyOutcome> {
  refuseDuplicates(docs);
  try {
    const r = await t.store.transact(actor, async (tx) => {
      const results = opts.remove ? await removeAll(t, tx, actor, docs, opts) : await writeAll(t, tx, actor, docs, opts);
      results.sort((a, b) => a.index - b.index);
      if (opts.dryRun) throw new DryRun(results, opts.inspect ? await opts.inspect(tx) : undefined);
      return results;
    });
    return { results: r.value, revision: r.revision, dryRun: false };
  } catch (e) {
    if (e instanceof DryRun) return { results: e.results, revision: await t.store.revision(), dryRun: true, ...(e.inspected !== undefined ? { inspected: e.inspected } : {}) };
    throw e;
  }
}

function refuseDuplicates(docs: readonly ApplyDoc[]): void {
  const seen = new Map<string, number>();
  for (const d of docs) {
    const k = titleOf(d);
    const first = seen.get(k);
    if (first !== undefined) throw new WeftError('WEFT_INVALID_FIELD', `documents.${d.index}: ${k} is also documents.${first}; name each object once`, { field: `documents.${d.index}.metadata.name` });
    seen.set(k, d.index);
  }
}

const ofKind = <K extends ApplyKind>(docs: readonly ApplyDoc[], kind: K) => docs.filter((d): d is Extract<ApplyDoc, { kind: K }> => d.kind === kind);

async function writeAll(t: ApplyTargets, tx: Txn, actor: string, docs: readonly ApplyDoc[], opts: ApplyOptions): Promise<ApplyResult[]> {
  const results: ApplyResult[] = [];
  const done = (d: ApplyDoc, action: ApplyAction) => results.push(resultOf(d, action));
  for (const d of ofKind(docs, 'Tenant')) done(d, await step(d, () => t.tenants.upsertIn(tx, actor, d.input, opts.mayManageTenants)));
  // Namespaces and NetworkPolicies name nothing that must exist (a pod's namespace is its label).
  const k8s = [...ofKind(docs, 'Namespace'), ...ofKind(docs, 'NetworkPolicy'), ...ofKind(docs, 'AdminNetworkPolicy'), ...ofKind(docs, 'BaselineAdminNetworkPolicy')];
  for (const d of [...k8s, ...ofKind(docs, 'Netprofile'), ...ofKind(docs, 'Network')]) done(d, await step(d, () => upsert(t, tx, actor, d)));
  // A new policy exists (empty) before the groups that name it; its rules, which may name those groups, come after them.
  const newPolicies = new Set<number>();
  for (const d of ofKind(docs, 'Policy')) {
    await step(d, async () => {
      if (await t.kinds.Policy.findIn(tx, d.tenant, d.input.name)) return;
      await t.kinds.Policy.createIn(tx, actor, d.tenant, { name: d.input.name, rules: [] });
      newPolicies.add(d.index);
    });
  }
  for (const d of ofKind(docs, 'Group')) done(d, await step(d, () => upsert(t, tx, actor, d)));
  for (const d of ofKind(docs, 'Policy')) {
    const action = await step(d, () => upsert(t, tx, actor, d));
    done(d, newPolicies.has(d.index) ? 'created' : action);
  }
  for (const d of [...ofKind(docs, 'Service'), ...ofKind(docs, 'AppProfile')]) done(d, await step(d, () => upsert(t, tx, actor, d)));
  return results;
}

async function removeAll(t: ApplyTargets, tx: Txn, actor: string, docs: readonly ApplyDoc[], opts: ApplyOptions): Promise<ApplyResult[]> {
  const tenantDocs = ofKind(docs, 'Tenant');
  const first = tenantDocs[0];
  if (first && !opts.mayManageTenants) await step(first, async () => { throw new WeftError('WEFT_FORBIDDEN', 'only admin and ops users may delete tenants'); });
  const results: ApplyResult[] = [];
  // An object whose tenant is gone is gone too (a file deleted twice, its Tenant included).
  const present = async (d: ApplyDoc) => t.tenants.existsIn(tx, d.tenant);
  const removed = async (d: ApplyDoc, gone: () => Promise<boolean>) => results.push(resultOf(d, (await step(d, async () => (await present(d)) && gone())) ? 'deleted' : 'absent'));
  for (const d of [...ofKind(docs, 'BaselineAdminNetworkPolicy'), ...ofKind(docs, 'AdminNetworkPolicy'), ...ofKind(docs, 'NetworkPolicy'), ...ofKind(docs, 'Namespace'), ...ofKind(docs, 'AppProfile'), ...ofKind(docs, 'Service')]) await removed(d, () => t.kinds[d.kind].removeIn(tx, d.tenant, d.input.name));
  // Rules naming the groups about to go are dropped first (a policy still attached to a group that stays
  // is then refused at its own delete, and the whole transaction with it).
  for (const d of ofKind(docs, 'Policy')) {
    await step(d, async () => {
      if ((await present(d)) && (await t.kinds.Policy.findIn(tx, d.tenant, d.input.name))) await t.kinds.Policy.upsertIn(tx, actor, d.tenant, { name: d.input.name, rules: [] });
    });
  }
  for (const d of ofKind(docs, 'Group')) await removed(d, () => t.kinds.Group.removeIn(tx, d.tenant, d.input.name));
  for (const d of ofKind(docs, 'Policy')) await removed(d, () => t.kinds.Policy.removeIn(tx, d.tenant, d.input.name));
  for (const d of [...ofKind(docs, 'Network'), ...ofKind(docs, 'Netprofile')]) await removed(d, () => t.kinds[d.kind].removeIn(tx, d.tenant, d.input.name));
  for (const d of tenantDocs) await removed(d, () => t.tenants.removeIn(tx, d.input.name));
  return results;
}

function upsert(t: ApplyTargets, tx: Txn, actor: string, d: Exclude<ApplyDoc, { kind: 'Tenant' }>): Promise<'created' | 'updated' | 'unchanged'> {
  return t.kinds[d.kind].upsertIn(tx, actor, d.tenant, d.input as never);
}

const resultOf = (d: ApplyDoc, action: ApplyAction): ApplyResult => ({ index: d.index, kind: d.kind, ...(d.kind === 'Tenant' ? {} : { tenant: d.tenant }), name: d.input.name, action });

/** Runs one document's write; an error names the document, and its field as the document holds it. */
async function step<T>(d: ApplyDoc, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (!(e instanceof WeftError)) throw e;
    // A quota's field names the usage it counts, not the document's.
    // A Namespace's labels are in its metadata.
    const inMetadata = e.field === 'name' || (d.kind === 'Namespace' && e.field?.startsWith('labels'));
    const field = e.field === undefined || e.code === 'WEFT_QUOTA_EXCEEDED' ? undefined : `documents.${d.index}.${inMetadata ? 'metadata' : 'spec'}.${e.field}`;
    throw new WeftError(e.code, `documents.${d.index} (${titleOf(d)}): ${e.message}`, { ...(field !== undefined ? { field } : {}), cause: e });
  }
}
