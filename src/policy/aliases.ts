import { createHash } from 'node:crypto';
import type { Rule } from '../model/index.js';
import { isCidr6 } from './cidr6.js';

/**
 * Rule CIDRs that no rule tells apart share one name in the compile (issue 13: pairs grew as endpoints
 * squared). A class is made of the rule CIDRs its addresses are in, so 800 rules `fromCidr <endpoint>/32`
 * alike but for the address made 800 classes of one group and 640,000 pairs, every one deciding the same.
 * Two IPv4 CIDRs whose rules are the same but for the CIDR (the same policies, directions, actions,
 * priorities, protocols and ports, as many times each) decide every connection alike, so a class holds
 * the name of their set (`~` and a digest of what their rules say) instead of each, and the rule index
 * files their rules under it: 800 such CIDRs make one class, and its pairs are decided once.
 *
 * A CIDR is named by itself while no other has its rules (a tenant without such rules keeps its class
 * keys and marks, and pays a map lookup per CIDR), and always when it is an IPv6 CIDR or a NetworkPolicy
 * block (`fixed`: they are read by their text, cidr6.ts and netpol.ts). What a CIDR's rules say is kept
 * per CIDR, so a rule change renames only the CIDRs it touches (and a set's last other member, when a
 * set falls to one or grows from one): incremental.ts moves their rules between buckets and sweeps their
 * addresses again.
 */
export class CidrAliases {
  /** Per CIDR with rules: what they say (one rule's words, or several's sorted: `listed`). */
  private readonly says = new Map<string, string>();
  /** The CIDRs saying each thing: one, or a set of them. */
  private readonly members = new Map<string, string | Set<string>>();
  /** The CIDRs in a set of two or more, with the set's name: every other CIDR is named by itself. */
  private readonly names = new Map<string, string>();

  constructor(private readonly fixed: ReadonlySet<string>) {}

  /** Every rule of the policies counted in. */
  static of(policies: Iterable<{ name: string; rules: readonly Rule[] }>, fixed: ReadonlySet<string>): CidrAliases {
    const a = new CidrAliases(fixed);
    const words = new Map<string, string | string[]>();
    for (const p of policies) {
      for (const r of p.rules) {
        const c = a.peerCidr(r);
        if (c === undefined) continue;
        const w = wordsOf(p.name, r);
        const x = words.get(c);
        if (x === undefined) words.set(c, w);
        else if (typeof x === 'string') words.set(c, [x, w]);
        else x.push(w);
      }
    }
    for (const [c, x] of words) a.file(c, typeof x === 'string' ? x : listed(x));
    for (const [said, m] of a.members) if (typeof m !== 'string') for (const c of m) a.names.set(c, nameOf(said));
    return a;
  }

  /** The name a CIDR has in classes and rule buckets. */
  name(cidr: string): string {
    return this.names.get(cidr) ?? cidr;
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
    const lists = new Map<string, string[]>();
    for (const [policy, rule, d] of deltas) {
      const c = this.peerCidr(rule);
      if (c === undefined) continue;
      let xs = lists.get(c);
      if (!xs) lists.set(c, (xs = this.listOf(c)));
      const w = wordsOf(policy, rule);
      if (d === 1) xs.push(w);
      else { const i = xs.indexOf(w); if (i >= 0) xs.splice(i, 1); }
    }
    if (lists.size === 0) return new Map();
    const next = new Map([...lists].map(([c, xs]) => [c, xs.length === 0 ? undefined : xs.length === 1 ? xs[0] as string : listed(xs)]));
    const before = new Map<string, string>();
    const note = (c: string) => { if (!before.has(c)) before.set(c, this.name(c)); };
    for (const [c, said] of next) {
      note(c);
      for (const s of [this.says.get(c), said]) {
        const m = s === undefined ? undefined : this.members.get(s);
        // A set of more than (CIDRs changed + 1) keeps two members whatever they do: its others keep their name.
        if (typeof m === 'string') note(m);
        else if (m && m.size <= next.size + 1) for (const x of m) note(x);
      }
    }
    for (const [c, said] of next) { this.unfile(c); if (said !== undefined) this.file(c, said); }
    const out = new Map<string, string>();
    for (const [c, was] of before) {
      const said = this.says.get(c);
      const m = said === undefined ? undefined : this.members.get(said);
      const now = m !== undefined && typeof m !== 'string' ? nameOf(said as string) : c;
      if (now === c) this.names.delete(c);
      else this.names.set(c, now);
      if (now !== was) out.set(c, was);
    }
    return out;
  }

  /** What a CIDR's rules say, one entry per rule. */
  private listOf(cidr: string): string[] {
    const said = this.says.get(cidr);
    return said === undefined ? [] : said.startsWith('\n') ? said.slice(1).split('\n') : [said];
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

/** What a rule says but its CIDR: its fields as JSON (one flat string, cheap to hash, never holding a line break). */
function wordsOf(policy: string, r: Rule): string {
  return JSON.stringify([policy, r.direction, r.action, r.priority, r.protocol, r.ports ?? null]);
}

/** What several rules say: a line break, then their words sorted, one a line (one rule's words start with `[`). */
const listed = (xs: string[]): string => `\n${xs.sort().join('\n')}`;

/** A set's name: `~` and a digest of what its CIDRs' rules say (the same words, the same name, in every compile). */
const nameOf = (said: string): string => `~${createHash('sha256').update(said).digest('base64url').slice(0, 22)}`;
