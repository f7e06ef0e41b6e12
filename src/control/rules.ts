import { WeftError, notFound, type Policy, type PolicyInput, type Rule, type RuleInput, type RuleSegment } from '../model/index.js';
import type { Store, Txn } from '../store/index.js';
import { checkRevision, requireTenant, type Crud } from './crud.js';
import { checkRuleIn } from './kinds/policy.js';
import { keys } from './keys.js';
import { isLegacy, migrateLegacy, type PolicyHead } from './policy-store.js';
import type { Quota } from './quota.js';
import { firstId, insertRule, keyOf, publicRule, type StoredRule } from './segments.js';
import { retryTorn } from './shared.js';

type Head = PolicyHead & { revision: number };
/** Where an id falls: the segment with the smallest key >= the id, and the rule's index in it (-1: absent). */
interface Place { key: string; seg: RuleSegment; index: number }

async function place(tx: Txn, head: Head, id: string): Promise<Place | undefined> {
  const gen = keys.ruleGen(head.tenant, head.name, head.gen);
  const e = await tx.ceiling(gen, gen + id);
  if (!e) return undefined;
  const seg = e.value as RuleSegment;
  return { key: e.key, seg, index: seg.rules.findIndex((r) => r.id === id) };
}

const missing = (tenant: string, policy: string, id: string) => notFound(`rule ${id} of policy ${tenant}/${policy}`);

/**
 * Rules are sub-resources of a policy, kept in segments (segments.ts): a change writes the policy's head
 * (so its revision moves), the one or two segments it touches and the quota record, whatever the policy's size.
 */
export class Rules {
  constructor(private readonly store: Store, private readonly policies: Crud<PolicyInput, Policy>, private readonly now: () => string, private readonly quota: Quota) {}

  async list(tenant: string, policy: string): Promise<{ items: Rule[]; revision: number }> {
    const p = await this.policies.get(tenant, policy);
    return { items: p.rules, revision: p.revision };
  }

  async get(tenant: string, policy: string, id: string): Promise<Rule & { revision: number }> {
    return retryTorn(async () => (await this.store.transact('read', async (tx) => {
      await requireTenant(tx, tenant);
      const e = await tx.get(keys.scoped('policies', tenant, policy));
      if (!e) throw notFound(`policy ${tenant}/${policy}`);
      const head = { ...(e.value as PolicyHead), revision: e.modRevision };
      const at = isLegacy(e.value) ? undefined : await place(tx, head, id);
      const r = isLegacy(e.value) ? e.value.rules.find((x) => x.id === id) : at && at.seg.rules[at.index];
      if (!r) throw missing(tenant, policy, id);
      return { ...publicRule({ pos: 0, ...r }), revision: head.revision };
    })).value);
  }

  async add(actor: string, tenant: string, policy: string, input: RuleInput, ifMatch?: number): Promise<Rule & { revision: number }> {
    return this.write(actor, tenant, policy, ifMatch, async (tx, head) => {
      // Checked alone first so errors name the rule's own fields, not its place in the policy.
      const rule = await checkRuleIn(tx, tenant, input, '');
      const at = await place(tx, head, rule.id);
      if (at && at.index >= 0) throw new WeftError('WEFT_EXISTS', `rule ${rule.id} already exists in policy ${tenant}/${policy}`, { field: 'id' });
      const stored: StoredRule = { ...rule, owner: actor, pos: head.next };
      await this.quota.settle(tx, undefined, { rules: [stored] });
      if (at && rule.id > firstId(at.seg)) {
        // Inside a segment's span: it takes the rule; split in two past the bound, the upper half keeping the key.
        const [lower = [], upper] = insertRule(at.seg.rules, stored);
        if (upper) tx.put(keys.ruleGen(tenant, policy, head.gen) + keyOf(lower), { rules: lower } satisfies RuleSegment);
        tx.put(at.key, { rules: upper ?? lower } satisfies RuleSegment);
      } else {
        tx.put(keys.ruleGen(tenant, policy, head.gen) + rule.id, { rules: [stored] } satisfies RuleSegment);
      }
      return { rule: stored, head: { count: head.count + 1, next: head.next + 1 } };
    });
  }

  async replace(actor: string, tenant: string, policy: string, id: string, input: RuleInput, ifMatch?: number): Promise<Rule & { revision: number }> {
    if (input.id !== id) throw new WeftError('WEFT_INVALID_FIELD', `id: the body names rule '${input.id}' but the path names '${id}'`, { field: 'id' });
    return this.write(actor, tenant, policy, ifMatch, async (tx, head) => {
      const at = await place(tx, head, id);
      const old = at?.seg.rules[at.index];
      if (!at || !old) throw missing(tenant, policy, id);
      const rule = await checkRuleIn(tx, tenant, input, '');
      // The rule keeps its owner (who pays for it) and its place.
      const stored: StoredRule = { ...rule, ...(old.owner !== undefined ? { owner: old.owner } : {}), pos: old.pos };
      tx.put(at.key, { rules: at.seg.rules.map((r, i) => (i === at.index ? stored : r)) } satisfies RuleSegment);
      return { rule: stored, head: {} };
    });
  }

  async remove(actor: string, tenant: string, policy: string, id: string, ifMatch?: number): Promise<void> {
    await this.write(actor, tenant, policy, ifMatch, async (tx, head) => {
      const at = await place(tx, head, id);
      const old = at?.seg.rules[at.index];
      if (!at || !old) throw missing(tenant, policy, id);
      const rest = at.seg.rules.filter((_, i) => i !== at.index);
      if (rest.length === 0) tx.delete(at.key);
      else tx.put(at.key, { rules: rest, removed: [id] } satisfies RuleSegment);
      await this.quota.settle(tx, { rules: [old] }, undefined);
      return { rule: old, head: { count: head.count - 1 } };
    });
  }

  /**
   * One rule change in one transaction: the policy's head is read (a head still in the old layout is
   * migrated first) and compared with If-Match; `change` writes the segments; the head goes last, with
   * the new counts and time, so watchers apply the segments when it comes.
   */
  private async write(actor: string, tenant: string, policy: string, ifMatch: number | undefined,
    change: (tx: Txn, head: Head) => Promise<{ rule: StoredRule; head: Partial<PolicyHead> }>): Promise<Rule & { revision: number }> {
    const r = await this.store.transact(actor, async (tx) => {
      await requireTenant(tx, tenant);
      const e = await tx.get(keys.scoped('policies', tenant, policy));
      if (!e) throw notFound(`policy ${tenant}/${policy}`);
      checkRevision(e.modRevision, ifMatch, `policy ${tenant}/${policy}`);
      const head = { ...(isLegacy(e.value) ? migrateLegacy(tx, e.value) : (e.value as PolicyHead)), revision: e.modRevision };
      const done = await change(tx, head);
      const { revision: _r, ...fields } = head;
      tx.put(keys.scoped('policies', tenant, policy), { ...fields, ...done.head, updatedAt: this.now() } satisfies PolicyHead);
      return publicRule(done.rule);
    });
    return { ...r.value, revision: r.revision };
  }
}
