import { maskOf6, parseCidr6, parseIp6 } from '../model/index.js';

/** A rule CIDR of IPv6 (validation refuses IPv4 text with a colon). */
export const isCidr6 = (text: string): boolean => text.includes(':');

/** A parsed IPv6 rule CIDR: its length, and its network address as the key its length's map holds. */
interface Prefix6 { prefix: number; key: string; base: bigint; mask: bigint }

// Parsed texts and addresses, bounded: a compile looks the same rule texts and endpoint addresses up
// again and again (scope, sweeps, re-sweeps), and parsing IPv6 text costs more than the lookup.
const prefixes = new Map<string, Prefix6>();
const addresses = new Map<string, bigint | undefined>();
const BOUND = 200_000;

/** A rule's IPv6 CIDR as its prefix: a bare address is a /128. */
export function prefix6(text: string): Prefix6 {
  let p = prefixes.get(text);
  if (!p) {
    const c = parseCidr6(text.includes('/') ? text : `${text}/128`, 'cidr', false);
    // Keys are text, not bigint: V8 hashes a BigInt by its low 64 bits only, so every /64 (or shorter)
    // would share one hash chain and a map of 10,000 of them would be a list.
    p = { prefix: c.prefix, key: c.base.toString(16), base: c.base, mask: maskOf6(c.prefix) };
    if (prefixes.size >= BOUND) prefixes.clear();
    prefixes.set(text, p);
  }
  return p;
}

function address6(text: string): bigint | undefined {
  if (addresses.has(text)) return addresses.get(text);
  const n = parseIp6(text);
  if (addresses.size >= BOUND) addresses.clear();
  addresses.set(text, n);
  return n;
}

/**
 * The IPv6 CIDRs of a tenant's rules, by the text they were written in, looked up by an endpoint's IPv6
 * address: one map per prefix length in use, so a lookup costs one masked probe per length (at most
 * 129) whatever the number of CIDRs. An endpoint's class holds the CIDRs either of its addresses is in,
 * so IPv4 and IPv6 CIDRs decide both families of an endpoint alike; the other IPv6 addresses inside
 * rule CIDRs (outside the tenant since NAT66) get classes of their own (classes.ts `sweep6`).
 */
export class Cidrs6 {
  private readonly byLength = new Map<number, { mask: bigint; keys: Map<string, string[]> }>();
  private count = 0;

  get size(): number {
    return this.count;
  }

  add(text: string): void {
    const c = prefix6(text);
    let l = this.byLength.get(c.prefix);
    if (!l) this.byLength.set(c.prefix, (l = { mask: c.mask, keys: new Map() }));
    const texts = l.keys.get(c.key);
    if (!texts) l.keys.set(c.key, [text]);
    else if (!texts.includes(text)) texts.push(text);
    else return;
    this.count++;
  }

  remove(text: string): void {
    const c = prefix6(text);
    const l = this.byLength.get(c.prefix);
    const texts = l?.keys.get(c.key);
    if (!l || !texts || !texts.includes(text)) return;
    const rest = texts.filter((t) => t !== text);
    if (rest.length) l.keys.set(c.key, rest);
    else l.keys.delete(c.key);
    if (l.keys.size === 0) this.byLength.delete(c.prefix);
    this.count--;
  }

  /** The CIDRs an IPv6 address is in (none for none), unsorted. */
  of(ip6: string | undefined): string[] {
    if (ip6 === undefined || this.count === 0) return [];
    const n = address6(ip6);
    return n === undefined ? [] : this.ofNumber(n);
  }

  /** The same for an address already parsed (outside addresses: kept out of address6's cache). */
  ofNumber(n: bigint): string[] {
    if (this.count === 0) return [];
    const out: string[] = [];
    for (const l of this.byLength.values()) {
      const texts = l.keys.get((n & l.mask).toString(16));
      if (texts) out.push(...texts);
    }
    return out;
  }
}

/** A rule's IPv6 CIDR as its first and last address. */
export function span6(text: string): { text: string; first: bigint; last: bigint } {
  const c = prefix6(text);
  return { text, first: c.base, last: c.base | (~c.mask & ALL_ONES) };
}
const ALL_ONES = (1n << 128n) - 1n;

/** An endpoint's IPv6 address as a number (cached as the rules' texts are); undefined when malformed. */
export const ip6Number = (text: string): bigint | undefined => address6(text);

/** Whether an IPv6 address is inside a rule's IPv6 CIDR (each text parsed once, then from the caches). */
export function inCidr6(text: string, ip6: string | undefined): boolean {
  if (ip6 === undefined) return false;
  const n = address6(ip6);
  const c = prefix6(text);
  return n !== undefined && (n & c.mask) === c.base;
}
