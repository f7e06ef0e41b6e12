import type { ChangeEvent, Policy, Rule, RuleSegment } from '../model/index.js';

type PlacedRule = RuleSegment['rules'][number];
/**
 * A rule and the segment it came from (undefined: from a listing, which does not say); `plain`, the rule
 * as the compiler reads it, made once: a rule that did not change stays the same object across rebuilds,
 * so the compiler's caches keyed on rules still hold it (each rebuild made every rule anew, and a one-rule
 * change in a 50,000-rule policy compared every rule again: 120 ms).
 */
interface Held { rule: PlacedRule; seg: string | undefined; plain?: Rule; gone?: true }

interface Book {
  /** The policy without its rules, as of its last head. */
  head: Omit<Policy, 'rules'>;
  rules: Map<string, Held>;
  /** The policy as the compiler reads it, built on demand after a change; the last one built. */
  built: Policy | undefined;
  last?: Policy | undefined;
  /**
   * The rules in order as of the last build (beside `built`'s rules, index for index), those put since
   * and those replaced or dropped since: the next build patches the last one's arrays.
   */
  order?: Held[] | undefined;
  fresh?: Held[] | undefined;
  gone?: Held[] | undefined;
}

/** Past this many rules changed since the last build, the next one sorts them all again. */
const PATCH_MAX = 1000;

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
    const m = held(rules);
    // Beside the listing's rules index for index (unless an id is there twice: the first build sorts).
    const order = m.size === rules.length ? [...m.values()] : undefined;
    this.books.set(`${p.tenant}/${p.name}`, { head, rules: m, built: p, order, fresh: [], gone: [] });
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
    const book: Book = { head: { ...fields, revision: c.revision }, rules: b?.rules ?? new Map(), built: undefined, last: b?.built ?? b?.last };
    if (Array.isArray(rules)) book.rules = held(rules);
    else if (b) { book.order = b.order; book.fresh = b.fresh ?? []; book.gone = b.gone ?? []; }
    for (const s of segs) applySegment(book.rules, s, book.fresh, book.gone);
    this.books.set(key, book);
    if (count !== undefined && book.rules.size !== count) {
      throw new Error(`policy ${key}: ${book.rules.size} rules held but its head counts ${count}; a change was missed`);
    }
  }

  private build(b: Book): Policy {
    if (b.built) return b.built;
    const { order, fresh, gone, last } = b;
    let rules: Rule[];
    if (order && fresh && gone && last && fresh.length + gone.length <= PATCH_MAX) {
      [b.order, rules] = patched(order, last.rules, fresh, gone);
    } else {
      b.order = [...b.rules.values()].sort((x, y) => x.rule.pos - y.rule.pos);
      rules = b.order.map((h) => (h.plain ??= bare(h.rule)));
    }
    b.fresh = [];
    b.gone = [];
    b.last = undefined;
    b.built = { ...b.head, rules };
    return b.built;
  }
}

/**
 * The last build's order and rules without those replaced or dropped since, with those put since at
 * their place (by their position): a rule changed in a 50,000-rule policy costs two copies of pointer
 * arrays, not a sort of the rules nor a visit of each.
 */
function patched(order: readonly Held[], built: readonly Rule[], fresh: readonly Held[], gone: readonly Held[]): [Held[], Rule[]] {
  const o = order.slice();
  const r = built.slice();
  for (const h of gone) {
    let i = firstAfter(o, h.rule.pos - 1);
    while (i < o.length && o[i] !== h && (o[i] as Held).rule.pos === h.rule.pos) i++;
    if (o[i] === h) { o.splice(i, 1); r.splice(i, 1); }
  }
  for (const h of fresh) {
    if (h.gone) continue;
    const i = firstAfter(o, h.rule.pos);
    o.splice(i, 0, h);
    r.splice(i, 0, (h.plain ??= bare(h.rule)));
  }
  return [o, r];
}

/** The index of the first rule placed after `pos`. */
function firstAfter(o: readonly Held[], pos: number): number {
  let lo = 0;
  let hi = o.length;
  while (lo < hi) { const mid = (lo + hi) >> 1; if ((o[mid] as Held).rule.pos <= pos) lo = mid + 1; else hi = mid; }
  return lo;
}

/** A listing's rules (each already the rule as the compiler reads it). */
function held(rules: readonly Rule[]): Map<string, Held> {
  return new Map(rules.map((rule, pos) => [rule.id, { rule: { ...rule, pos }, seg: undefined, plain: rule }]));
}

/** The same rule at the same place (a segment written again carries its unchanged rules anew). */
function samePlaced(a: PlacedRule, b: PlacedRule): boolean {
  const ka = Object.keys(a);
  return ka.length === Object.keys(b).length && ka.every((k) => (a as unknown as Record<string, unknown>)[k] === (b as unknown as Record<string, unknown>)[k]);
}

/**
 * One segment change: its rules are put; the rules it removed (named in `removed`, or all of a deleted
 * segment) are dropped only if they still came from it (or from a listing): a rule moved to another
 * segment in the same transaction stays.
 */
function applySegment(rules: Map<string, Held>, c: ChangeEvent, fresh: Held[] | undefined, gone: Held[] | undefined): void {
  const seg = c.object as RuleSegment | undefined;
  const drop = (id: string) => {
    const h = rules.get(id);
    if (h && (h.seg === undefined || h.seg === c.key)) { rules.delete(id); h.gone = true; gone?.push(h); }
  };
  if (c.op === 'delete') {
    for (const r of seg?.rules ?? []) drop(r.id);
    return;
  }
  for (const id of seg?.removed ?? []) drop(id);
  for (const r of seg?.rules ?? []) {
    const h = rules.get(r.id);
    // Unchanged: the same objects (the order and the compiler's caches keep them); only its segment is new.
    if (h && samePlaced(h.rule, r)) { h.seg = c.key; continue; }
    if (h) { h.gone = true; gone?.push(h); }
    const next: Held = { rule: r, seg: c.key };
    rules.set(r.id, next);
    fresh?.push(next);
  }
}
