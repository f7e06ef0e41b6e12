import type { Rule, RuleSegment } from '../model/index.js';

/**
 * How a policy's rules are cut into stored segments (docs/decisions.md, "Policy storage at scale"). Pure.
 * A segment holds at most SEGMENT_RULES rules sorted by id and covers the ids from its first rule to its
 * key (its last rule's id when written; a bound after that rule is deleted); spans never overlap. 128 keeps a 10,000-rule policy at 79 segments, inside etcd's 128 operations
 * per transaction, and bounds what one rule change writes (one or two segments).
 */
export const SEGMENT_RULES = 128;

export type StoredRule = RuleSegment['rules'][number];

const byId = (a: { id: string }, b: { id: string }) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

/** The rule as the API shows it: without its place. */
export function publicRule(r: StoredRule): Rule {
  const { pos: _p, ...rule } = r;
  return rule;
}

/** Cuts rules (any order) into segments of at most `size`, each sorted by id, in id order. */
export function packRules(rules: readonly StoredRule[], size = SEGMENT_RULES): StoredRule[][] {
  const sorted = [...rules].sort(byId);
  const out: StoredRule[][] = [];
  for (let i = 0; i < sorted.length; i += size) out.push(sorted.slice(i, i + size));
  return out;
}

/** The first id a segment covers. */
export const firstId = (s: RuleSegment): string => s.rules[0]?.id ?? '';

/** The key a run of rules is stored under: its last id. */
export const keyOf = (rules: readonly StoredRule[]): string => rules[rules.length - 1]?.id ?? '';

/** `rule` inserted into a segment's rules in id order; two halves when that passes `size`. */
export function insertRule(rules: readonly StoredRule[], rule: StoredRule, size = SEGMENT_RULES): StoredRule[][] {
  const at = rules.findIndex((r) => r.id > rule.id);
  const all = at < 0 ? [...rules, rule] : [...rules.slice(0, at), rule, ...rules.slice(at)];
  if (all.length <= size) return [all];
  const half = Math.ceil(all.length / 2);
  return [all.slice(0, half), all.slice(half)];
}

/** A policy's rules in their order, from its segments (any order). */
export function rulesInOrder(segments: Iterable<RuleSegment>): StoredRule[] {
  const out: StoredRule[] = [];
  for (const s of segments) out.push(...s.rules);
  return out.sort((a, b) => a.pos - b.pos);
}
