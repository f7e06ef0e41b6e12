import { WeftError, notFound, type Policy, type PolicyInput, type Rule, type RuleInput } from '../model/index.js';
import type { Crud } from './crud.js';
import { checkRuleIn } from './kinds/policy.js';

/** Rules are sub-resources of a policy; each change rewrites the policy in one transaction. */
export class Rules {
  constructor(private readonly policies: Crud<PolicyInput, Policy>) {}

  async list(tenant: string, policy: string): Promise<{ items: Rule[]; revision: number }> {
    const p = await this.policies.get(tenant, policy);
    return { items: p.rules, revision: p.revision };
  }

  async get(tenant: string, policy: string, id: string): Promise<Rule & { revision: number }> {
    const p = await this.policies.get(tenant, policy);
    const r = p.rules.find((x) => x.id === id);
    if (!r) throw notFound(`rule ${id} of policy ${tenant}/${policy}`);
    return { ...r, revision: p.revision };
  }

  async add(actor: string, tenant: string, policy: string, rule: RuleInput, ifMatch?: number): Promise<Rule & { revision: number }> {
    const p = await this.policies.update(actor, tenant, policy, async (cur, tx) => {
      // Checked alone first so errors name the rule's own fields, not its place in the policy.
      await checkRuleIn(tx, tenant, rule, '');
      if (cur.rules.some((r) => r.id === rule.id)) {
        throw new WeftError('WEFT_EXISTS', `rule ${rule.id} already exists in policy ${tenant}/${policy}`, { field: 'id' });
      }
      return { name: policy, rules: [...cur.rules, rule] };
    }, ifMatch);
    return this.pick(p, rule.id);
  }

  async replace(actor: string, tenant: string, policy: string, id: string, rule: RuleInput, ifMatch?: number): Promise<Rule & { revision: number }> {
    if (rule.id !== id) throw new WeftError('WEFT_INVALID_FIELD', `id: the body names rule '${rule.id}' but the path names '${id}'`, { field: 'id' });
    const p = await this.policies.update(actor, tenant, policy, async (cur, tx) => {
      if (!cur.rules.some((r) => r.id === id)) throw notFound(`rule ${id} of policy ${tenant}/${policy}`);
      await checkRuleIn(tx, tenant, rule, '');
      return { name: policy, rules: cur.rules.map((r) => (r.id === id ? rule : r)) };
    }, ifMatch);
    return this.pick(p, id);
  }

  async remove(actor: string, tenant: string, policy: string, id: string, ifMatch?: number): Promise<void> {
    await this.policies.update(actor, tenant, policy, async (cur) => {
      if (!cur.rules.some((r) => r.id === id)) throw notFound(`rule ${id} of policy ${tenant}/${policy}`);
      return { name: policy, rules: cur.rules.filter((r) => r.id !== id) };
    }, ifMatch);
  }

  private pick(p: Policy, id: string): Rule & { revision: number } {
    const r = p.rules.find((x) => x.id === id);
    if (!r) throw new WeftError('WEFT_INTERNAL', `rule ${id} vanished from policy ${p.tenant}/${p.name}`);
    return { ...r, revision: p.revision };
  }
}
