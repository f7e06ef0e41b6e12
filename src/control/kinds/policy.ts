import {
  WeftError, badReference, checkRule, formatCidr6, parseCidr6,
  type Group, type Network, type Policy, type PolicyInput, type Rule, type RuleInput,
} from '../../model/index.js';
import type { Txn } from '../../store/index.js';
import { findIn, listIn, type KindDef, type KindStorage } from '../crud.js';
import { keys } from '../keys.js';
import { headFields, isLegacy, listPolicies, readPolicy, writePolicy, type PolicyHead } from '../policy-store.js';

/** Fills a rule's defaults (netctl's: direction in, priority 1, action allow, any protocol). */
export function normaliseRule(r: RuleInput): Rule {
  const out: Rule = {
    id: r.id,
    priority: r.priority ?? 1,
    direction: r.direction ?? 'in',
    action: r.action ?? 'allow',
    protocol: r.protocol ?? 'any',
  };
  for (const k of ['ports', 'fromGroup', 'fromNetwork', 'fromCidr', 'toGroup', 'toNetwork', 'toCidr'] as const) {
    const v = r[k];
    if (v !== undefined) out[k] = v;
  }
  // An IPv6 CIDR is kept in one spelling (RFC 5952, with its length): the same prefix written two ways
  // is one CIDR to the compiler, and a tenant cannot make it hold thousands of names for one prefix.
  for (const k of ['fromCidr', 'toCidr'] as const) {
    const v = out[k];
    if (v !== undefined && v.includes(':')) out[k] = formatCidr6(parseCidr6(v.includes('/') ? v : `${v}/128`, k));
  }
  return out;
}

/** Checks one rule, including that the groups and networks it names exist; `path` prefixes field names. */
export async function checkRuleIn(tx: Txn, tenant: string, r: RuleInput, path: string): Promise<Rule> {
  checkRule(r, path);
  for (const k of ['fromGroup', 'toGroup'] as const) {
    const g = r[k];
    if (g !== undefined && !(await findIn<Group>(tx, 'groups', tenant, g))) throw badReference(`${path}${k}`, `group ${tenant}/${g}`);
  }
  for (const k of ['fromNetwork', 'toNetwork'] as const) {
    const n = r[k];
    if (n !== undefined && !(await findIn<Network>(tx, 'networks', tenant, n))) throw badReference(`${path}${k}`, `network ${tenant}/${n}`);
  }
  return normaliseRule(r);
}

/** A policy is its head plus rule segments (policy-store.ts); bulk writes replace the segments whole. */
const policyStorage: KindStorage<Policy> = {
  read: readPolicy,
  list: listPolicies,
  async write(tx, p) {
    const prev = (await tx.get(keys.scoped('policies', p.tenant, p.name)))?.value;
    const previousGen = prev && !isLegacy(prev) ? (prev as PolicyHead).gen : undefined;
    writePolicy(tx, headFields(p), p.rules.map((r, pos) => ({ ...r, pos })), previousGen);
  },
  remove(tx, p) {
    tx.deletePrefix(keys.ruleSegments(p.tenant, p.name));
    tx.delete(keys.scoped('policies', p.tenant, p.name));
  },
};

export const policyKind: KindDef<PolicyInput, Policy> = {
  collection: 'policies',
  storage: policyStorage,

  async build(input, { tx, tenant }) {
    const rules: Rule[] = [];
    const seen = new Set<string>();
    for (const [i, r] of (input.rules ?? []).entries()) {
      if (seen.has(r.id)) throw new WeftError('WEFT_EXISTS', `rules.${i}.id: rule ${r.id} appears twice`, { field: `rules.${i}.id` });
      seen.add(r.id);
      rules.push(await checkRuleIn(tx, tenant, r, `rules.${i}.`));
    }
    // Audit mode is stored; enforce (the default) is left out, so a policy applied either way reads the same.
    return { tenant, name: input.name, rules, ...(input.mode === 'audit' ? { mode: 'audit' as const } : {}) };
  },

  async dependants(tx, p) {
    return (await listIn<Group>(tx, 'groups', p.tenant)).filter((g) => g.policies.includes(p.name)).map((g) => `group ${g.tenant}/${g.name}`);
  },
};
