import type { ChangeEvent, Policy, Rule, RuleSegment } from '../model/index.js';

type PlacedRule = RuleSegment['rules'][number];
/**
 * A rule and the segment it came from (undefined: from a listing, which does not say); `plain`, the rule
 * as the compiler reads it, made once: a rule that did not change stays the same object across rebuilds,
 * so the compiler's caches keyed on rules still hold it (each rebuild made every rule anew, and a one-rule
 * change in a 50,000-rule policy compared every rule again: 120 ms).
 */
interface Held { rule: PlacedRule; seg: string | undefined; plain?: Rule }

interface Book {
  /** The policy without its rules, as of its last head. */
  head: Omit<Policy, 'rules'>;
  rules: Map<string, Held>;
  /** The policy as the compiler reads it, built on demand after a change. */
  built: Policy | undefined;
}

const policyKey = (key: string) => key.split('/').slice(1, 3).join('/');
const bare = ({ pos: _p, ...rule }: PlacedRule): Rule => rule;

/**
 * The agent's policies, kept from the watch a segment at a time (docs/decisions.md, "Policy storage at
 * scale"): a `policy-rules` change carries the rules of one segment, a `policy` change the head. A
 * policy's segment changes are held until its head comes (the server writes the head last in every
 * transaction), then applied together, so the datapath never sees a replace half done. A change costs
 * the rules it carries; the policy's rule list is rebuilt only when read.
 */
export class PolicyBook {
  private readonly books = new Map<string, Book>();
  /** Segment changes waiting for their policy's head, by policy. */
  private readonly pending = new Map<string, ChangeEvent[]>();

  clear(): void {
    this.books.clear();
    this.pending.clear();
  }

  /** A whole policy, from a listing. */
  set(p: Policy): void {
    const { rules, ...head } = p;
    this.books.set(`${p.tenant}/${p.name}`, { head, rules: held(rules), built: p });
  }

  get(key: string): Policy | undefined {
    const b = this.books.get(key);
    return b && this.build(b);
  }

  values(): Policy[] {
    return [...this.books.values()].map((b) => this.build(b));
  }

  /** A watched segment change: held until the head of the same transaction. */
  segment(c: ChangeEvent): void {
    const key = policyKey(c.key);
    const list = this.pending.get(key) ?? [];
    list.push(c);
    this.pending.set(key, list);
  }

  /**
   * A watched head (or a whole policy from a server of the old layout) with the segment changes held for
   * it. Throws when the rules then held do not add up to the head's count: a change was missed, and the
   * caller must re-list rather than enforce a policy it does not have.
   */
  head(c: ChangeEvent): void {
    const key = policyKey(c.key);
    const segs = this.pending.get(key) ?? [];
    this.pending.delete(key);
    const b = this.books.get(key);
    // Not newer than what a listing gave: the listing reflects it and its segments.
    if (b && b.head.revision >= c.revision) return;
    if (c.op === 'delete') { this.books.delete(key); return; }
    const { rules, gen: _g, count, next: _n, ...fields } = c.object as Policy & { gen?: number; count?: number; next?: number };
    const book: Book = { head: { ...fields, revision: c.revision }, rules: b?.rules ?? new Map(), built: undefined };
    if (Array.isArray(rules)) book.rules = held(rules);
    for (const s of segs) applySegment(book.rules, s);
    this.books.set(key, book);
    if (count !== undefined && book.rules.size !== count) {
      throw new Error(`policy ${key}: ${book.rules.size} rules held but its head counts ${count}; a change was missed`);
    }
  }

  private build(b: Book): Policy {
    b.built ??= { ...b.head, rules: [...b.rules.values()].sort((x, y) => x.rule.pos - y.rule.pos).map((h) => (h.plain ??= bare(h.rule))) };
    return b.built;
  }
}

function held(rules: readonly Rule[]): Map<string, Held> {
  return new Map(rules.map((rule, pos) => [rule.id, { rule: { ...rule, pos }, seg: undefined }]));
}

/**
 * One segment change: its rules are put; the rules it removed (named in `removed`, or all of a deleted
 * segment) are dropped only if they still came from it (or from a listing): a rule moved to another
 * segment in the same transaction stays.
 */
function applySegment(rules: Map<string, Held>, c: ChangeEvent): void {
  const seg = c.object as RuleSegment | undefined;
  const drop = (id: string) => {
    const h = rules.get(id);
    if (h && (h.seg === undefined || h.seg === c.key)) rules.delete(id);
  };
  if (c.op === 'delete') {
    for (const r of seg?.rules ?? []) drop(r.id);
    return;
  }
  for (const id of seg?.removed ?? []) drop(id);
  for (const r of seg?.rules ?? []) rules.set(r.id, { rule: r, seg: c.key });
}
