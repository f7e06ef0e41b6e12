import { maskOf6, parseCidr6, parseIp6 } from '../model/index.js';

/** A rule CIDR of IPv6 (validation refuses IPv4 text with a colon). */
export const isCidr6 = (text: string): boolean => text.includes(':');

/** A rule's IPv6 CIDR as its prefix: a bare address is a /128. */
export function prefix6(text: string): { base: bigint; prefix: number } {
  return parseCidr6(text.includes('/') ? text : `${text}/128`, 'cidr', false);
}

/**
 * The IPv6 CIDRs of a tenant's rules, by the text they were written in, looked up by an endpoint's IPv6
 * address: one map per prefix length in use, so a lookup costs one masked probe per length (at most
 * 129), however many CIDRs there are. Rule CIDRs select endpoints (identity): an endpoint's class holds
 * the CIDRs either of its addresses is in, so IPv4 and IPv6 CIDRs decide both families alike. Only
 * endpoints get IPv6 classes: no IPv6 reaches a tenant from outside it (no NAT66 yet).
 */
export class Cidrs6 {
  private readonly byLength = new Map<number, { mask: bigint; bases: Map<bigint, string[]> }>();

  get size(): number {
    let n = 0;
    for (const l of this.byLength.values()) for (const texts of l.bases.values()) n += texts.length;
    return n;
  }

  add(text: string): void {
    const c = prefix6(text);
    let l = this.byLength.get(c.prefix);
    if (!l) this.byLength.set(c.prefix, (l = { mask: maskOf6(c.prefix), bases: new Map() }));
    const texts = l.bases.get(c.base);
    if (!texts) l.bases.set(c.base, [text]);
    else if (!texts.includes(text)) texts.push(text);
  }

  remove(text: string): void {
    const c = prefix6(text);
    const l = this.byLength.get(c.prefix);
    const texts = l?.bases.get(c.base);
    if (!l || !texts) return;
    const rest = texts.filter((t) => t !== text);
    if (rest.length) l.bases.set(c.base, rest);
    else l.bases.delete(c.base);
    if (l.bases.size === 0) this.byLength.delete(c.prefix);
  }

  /** The CIDRs an IPv6 address is in (none for none), unsorted. */
  of(ip6: string | undefined): string[] {
    if (ip6 === undefined || this.byLength.size === 0) return [];
    const n = parseIp6(ip6);
    if (n === undefined) return [];
    const out: string[] = [];
    for (const l of this.byLength.values()) {
      const texts = l.bases.get(n & l.mask);
      if (texts) out.push(...texts);
    }
    return out;
  }
}

/** Whether an IPv6 address is inside a rule's IPv6 CIDR. */
export function inCidr6(text: string, ip6: string | undefined): boolean {
  if (ip6 === undefined) return false;
  const n = parseIp6(ip6);
  const c = prefix6(text);
  return n !== undefined && (n & maskOf6(c.prefix)) === c.base;
}
