import { CLASS_IN, RCODE, TYPE_A, TYPE_AAAA, TYPE_ANY, type Query } from './codec.js';

/** The search domain of a tenant's containers; names under it resolve only inside the tenant. */
export const dnsDomain = (tenant: string) => `${tenant}.weft`;

/** A tenant's names: services (their VIP) and endpoints by container name (their addresses, IPv6 ones too). */
export type NameTable = ReadonlyMap<string, readonly string[]>;

export type Decision =
  | { kind: 'answer'; rcode: number; addresses: readonly string[]; aa: boolean }
  | { kind: 'forward' };

/**
 * What to answer `q` from inside `tenant`. `NAME` and `NAME.TENANT.weft` resolve from the tenant's table;
 * any other name under `.weft` (another tenant's included) does not exist; other names go upstream.
 */
export function decide(q: Pick<Query, 'name' | 'type' | 'qclass'>, tenant: string, names: NameTable): Decision {
  if (q.qclass !== CLASS_IN) return { kind: 'answer', rcode: RCODE.REFUSED, addresses: [], aa: false };
  const ours = q.name === 'weft' || q.name.endsWith('.weft');
  let key: string | undefined;
  if (ours) {
    const suffix = `.${dnsDomain(tenant)}`;
    if (q.name === dnsDomain(tenant)) return { kind: 'answer', rcode: RCODE.NOERROR, addresses: [], aa: true };
    if (q.name.endsWith(suffix)) key = q.name.slice(0, -suffix.length);
  } else if (!q.name.includes('.')) {
    key = q.name;
  }
  const found = key === undefined ? undefined : names.get(key);
  if (!found) return ours ? { kind: 'answer', rcode: RCODE.NXDOMAIN, addresses: [], aa: true } : { kind: 'forward' };
  // A for IPv4 addresses, AAAA for IPv6 ones (dual-stack endpoints), ANY both. The name exists: other
  // record types (AAAA of an IPv4-only one too) get an empty NOERROR, not NXDOMAIN, which would hide the rest.
  const addresses = found.filter((a) => (a.includes(':') ? q.type === TYPE_AAAA || q.type === TYPE_ANY : q.type === TYPE_A || q.type === TYPE_ANY));
  return { kind: 'answer', rcode: RCODE.NOERROR, addresses, aa: ours };
}

/** Builds a tenant's table; a service wins over a container of the same name. */
export function nameTable(services: ReadonlyArray<{ name: string; vip?: string; vip6?: string }>, endpoints: ReadonlyArray<{ containerName?: string; ip?: string; ip6?: string }>): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const e of endpoints) {
    if (!e.containerName) continue;
    const k = e.containerName.toLowerCase();
    const list = out.get(k) ?? [];
    for (const a of [e.ip, e.ip6]) if (a !== undefined && !list.includes(a)) list.push(a);
    out.set(k, list);
  }
  for (const s of services) {
    const addrs = [s.vip, s.vip6].filter((a): a is string => a !== undefined);
    if (addrs.length) out.set(s.name.toLowerCase(), addrs);
  }
  return out;
}
