import { createHash } from 'node:crypto';
import type { Rule } from '../model/index.js';
import { isCidr6 } from './cidr6.js';

/**
 * Past this many rules naming one CIDR, it keeps its own name: sets are for the many CIDRs with a few
 * rules each (an endpoint's /32), and what a CIDR's rules say is made again, sorted, on each change of
 * them (64 is cheap; a /8 named by 50,000 rules would be 44 ms a change).
 */
export const MAX_ALIKE_RULES = 64;

/** What the rules naming one CIDR say: one rule's words, or several with how many say each. */
type Words = string | { n: number; m: Map<string, number> };

/**
 * Rule CIDRs that no rule tells apart share one name in the compile (issue 13: pairs grew as endpoints
 * squared). A class is made of the rule CIDRs its addresses are in, so 800 rules `fromCidr <endpoint>/32`
 * alike but for the address made 800 classes of one group and 640,000 pairs, every one deciding the same.
 * Two IPv4 CIDRs whose rules are the same but for the CIDR (the same policies, directions, actions,
 * priorities, protocols and ports, as many times each) decide every connection alike, so a class holds
 * the name of their set (`~` and a digest of what their rules say) instead of each: 800 such CIDRs make
 * one class, and its pairs are decided once. The rule index keeps each CIDR's rules under the CIDR; a
 * class named by a set is matched by the rules of one CIDR of it (`member`: all say the same).
 *
 * A CIDR is named by itself while no other has its rules (a tenant without such rules keeps its class
 * keys and marks), when more than MAX_ALIKE_RULES rules name it, and always when it is an IPv6 CIDR or
 * a NetworkPolicy block (`fixed`: they are read by their text, cidr6.ts and netpol.ts). A rule change
 * renames only the CIDRs it touches (and a set's last other member, when a set falls to one or grows
 * from one): incremental.ts sweeps their addresses again. A set's name is what its CIDRs' rules say, so
 * the rules of a class named by a set never change while the class stands.
 */
export class CidrAliases {
  private readonly words = new Map<string, Words>();
  /** Per CIDR that may be in a set: what its rules say, as one text (`keyOf`). */
  private readonly says = new Map<string, string>();
  /** The CIDRs saying each thing: one, or a set of them. */
  private readonly members = new Map<string, string | Set<string>>();
  /** The CIDRs in a set of two or more, with the set's name: every other CIDR is named by itself. */
  private readonly names = new Map<string, string>();
  /** Each set's name, with what its CIDRs say. */
  private readonly sets = new Map<string, string>();

  constructor(private readonly fixed: ReadonlySet<string>) {}

  /** Every rule of the policies counted in. */
  static of(policies: Iterable<{ name: string; rules: readonly Rule[] }>, fixed: ReadonlySet<string>): CidrAliases {
    const a = new CidrAliases(fixed);
    for (const p of policies) for (const r of p.rules) a.count(p.name, r, 1);
    for (const c of a.words.keys()) { const said = a.keyOf(c); if (said !== undefined) a.file(c, said); }
    for (const [said, m] of a.members) {
      if (typeof m === 'string') continue;
      const name = nameOf(said);
      a.sets.set(name, said);
      for (const c of m) a.names.set(c, name);
    }
    return a;
  }

  /** The name a CIDR has in classes. */
  name(cidr: string): string {
    return this.names.get(cidr) ?? cidr;
  }

  /** A CIDR of the set a name names (its rules stand for the set's), or undefined for a name that is no set's. */
  member(name: string): string | undefined {
    const said = this.sets.get(name);
    const m = said === undefined ? undefined : this.members.get(said);
    if (m === undefined) return undefined;
    if (typeof m === 'string') return m;
    for (const c of m) return c;
    return undefined;
  }

  /** Whether any CIDR is in a set (else every name is the CIDR itself). */
  get any(): boolean {
    return this.names.size > 0;
  }

  /** Whether a name is a set's (not a CIDR's own). */
  static isAlias(name: string): boolean {
    return name.startsWith('~');
  }

  /** The CIDR a rule names as its peer, if it is one this keeps (IPv4, not fixed). */
  peerCidr(rule: Rule): string | undefined {
    const cidr = rule.direction === 'in' ? rule.fromCidr : rule.toCidr;
    // A rule with a group or network peer: its CIDR (if any) decides nothing (rule-index.ts peerOf).
    const other = rule.direction === 'in' ? rule.fromGroup ?? rule.fromNetwork : rule.toGroup ?? rule.toNetwork;
    return cidr === undefined || other !== undefined || isCidr6(cidr) || this.fixed.has(cidr) ? undefined : cidr;
  }

  /**
   * Takes rules out (-1) and in (+1); returns each CIDR whose name changed, with its old name. Only the
   * CIDRs of the rules, and the members of a set small enough to fall to one or to grow from one, can.
   */
  change(deltas: Iterable<readonly [string, Rule, 1 | -1]>): Map<string, string> {
    const touched = new Set<string>();
    for (const [policy, rule, d] of deltas) { const c = this.count(policy, rule, d); if (c !== undefined) touched.add(c); }
    if (touched.size === 0) return new Map();
    const next = new Map([...touched].map((c) => [c, this.keyOf(c)]));
    const before = new Map<string, string>();
    const note = (c: string) => { if (!before.has(c)) before.set(c, this.name(c)); };
    const saids = new Set<string>();
    for (const [c, said] of next) {
      note(c);
      for (const s of [this.says.get(c), said]) {
        if (s === undefined) continue;
        saids.add(s);
        const m = this.members.get(s);
        // A set of more than (CIDRs changed + 1) keeps two members whatever they do: its others keep their name.
        if (typeof m === 'string') note(m);
        else if (m && m.size <= next.size + 1) for (const x of m) note(x);
      }
    }
    for (const [c, said] of next) { this.unfile(c); if (said !== undefined) this.file(c, said); }
    for (const said of saids) {
      const name = nameOf(said);
      if (typeof this.members.get(said) === 'object') this.sets.set(name, said);
      else this.sets.delete(name);
    }
    const out = new Map<string, string>();
    for (const [c, was] of before) {
      const said = this.says.get(c);
      const now = said !== undefined && typeof this.members.get(said) === 'object' ? nameOf(said) : c;
      if (now === c) this.names.delete(c);
      else this.names.set(c, now);
      if (now !== was) out.set(c, was);
    }
    return out;
  }

  /** Counts a rule's peer CIDR's words in or out; the CIDR, if it is one this keeps. */
  private count(policy: string, rule: Rule, d: 1 | -1): string | undefined {
    const c = this.peerCidr(rule);
    if (c === undefined) return undefined;
    const w = wordsOf(policy, rule);
    const x = this.words.get(c);
    if (d === 1) {
      if (x === undefined) this.words.set(c, w);
      else if (typeof x === 'string') this.words.set(c, { n: 2, m: new Map(x === w ? [[w, 2]] : [[x, 1], [w, 1]]) });
      else { x.n++; x.m.set(w, (x.m.get(w) ?? 0) + 1); }
      return c;
    }
    if (x === w) this.words.delete(c);
    else if (typeof x === 'object' && x.m.has(w)) {
      const k = (x.m.get(w) as number) - 1;
      if (k === 0) x.m.delete(w);
      else x.m.set(w, k);
      if (--x.n === 1) this.words.set(c, [...x.m.keys()][0] as string);
    }
    return c;
  }

  /** What a CIDR's rules say as one text; undefined with none, or past MAX_ALIKE_RULES (never in a set). */
  private keyOf(cidr: string): string | undefined {
    const x = this.words.get(cidr);
    if (x === undefined || typeof x === 'string') return x;
    if (x.n > MAX_ALIKE_RULES) return undefined;
    // A line break, then each distinct rule's words with how many say them (a tab between: JSON has neither raw).
    return `\n${[...x.m].map(([w, k]) => `${w}\t${k}`).sort().join('\n')}`;
  }

  private file(cidr: string, said: string): void {
    this.says.set(cidr, said);
    const m = this.members.get(said);
    if (m === undefined) this.members.set(said, cidr);
    else if (typeof m === 'string') this.members.set(said, new Set([m, cidr]));
    else m.add(cidr);
  }

  private unfile(cidr: string): void {
    const said = this.says.get(cidr);
    if (said === undefined) return;
    this.says.delete(cidr);
    const m = this.members.get(said);
    if (typeof m === 'string') this.members.delete(said);
    else if (m) {
      m.delete(cidr);
      if (m.size === 1) this.members.set(said, [...m][0] as string);
    }
  }
}

/** What a rule says but its CIDR: its fields as JSON (one flat string, cheap to hash, never holding a raw tab or line break). */
function wordsOf(policy: string, r: Rule): string {
  return JSON.stringify([policy, r.direction, r.action, r.priority, r.protocol, r.ports ?? null]);
}

/** A set's name: `~` and a digest of what its CIDRs' rules say (the same words, the same name, in every compile). */
const nameOf = (said: string): string => `~${createHash('sha256').update(said).digest('base64url').slice(0, 22)}`;
