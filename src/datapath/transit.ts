import { MAX_TENANT_ID, UPLINK_RANGE6, formatIp, formatIp6, parseCidr } from '../model/index.js';

/**
 * Link-local addresses hosts reach services on. Each tenant's uplink /30 puts a connected route on the
 * host: one covering any of these would send the host's own metadata, credential, DNS or time queries
 * into a tenant namespace, whose owner could answer them. Whole /24s where a provider uses several
 * addresses in one. Sources:
 * - 169.254.169.254: instance metadata of AWS (IMDS), GCP (metadata.google.internal, also its DNS and NTP),
 *   Azure (IMDS), OpenStack, DigitalOcean, OCI; AWS also 169.254.169.253 (VPC DNS), 169.254.169.123
 *   (Amazon Time Sync), 169.254.169.250-251 (Windows KMS activation): AWS EC2 user guide
 *   ("Instance metadata", "Set the time", "Amazon DNS server") and the providers' metadata docs.
 * - 169.254.170.2: ECS task metadata v2 and task-role credentials (docs.aws.amazon.com/AmazonECS,
 *   "task-metadata-endpoint-v2", AWS_CONTAINER_CREDENTIALS_RELATIVE_URI); 169.254.170.23: EKS Pod
 *   Identity Agent (docs.aws.amazon.com/eks "pod-id-agent-setup").
 * - 169.254.2.0/24: OCI iSCSI targets of attached block volumes (OCI's "Essential Firewall Rules" of
 *   Oracle-provided images: 169.254.0.2:3260 and 169.254.2.0/24:3260; 169.254.0.2 lies in the /30 no
 *   tenant gets). Not re-checked against OCI's current pages.
 * - 169.254.42.42: Scaleway instance metadata.
 * - 169.254.20.10: Kubernetes NodeLocal DNSCache's documented default (kubernetes/website
 *   "nodelocaldns"); 169.254.25.10: kubespray's `nodelocaldns_ip` default (roles/kubespray_defaults).
 * - 169.254.255.255: the broadcast address of 169.254.0.0/16.
 */
export const RESERVED_LINK_LOCAL: readonly string[] = [
  '169.254.2.0/24', '169.254.20.10/32', '169.254.25.10/32', '169.254.42.42/32',
  '169.254.169.0/24', '169.254.170.0/24', '169.254.255.255/32',
];

const BASE = 169 * 2 ** 24 + 254 * 2 ** 16;
/** /30s in 169.254.0.0/16; slot 0 (169.254.0.0/30) is never used, ids start at 1. */
const SLOTS = 2 ** 14;

const reserved = RESERVED_LINK_LOCAL.map((c) => {
  const r = parseCidr(c, 'reserved');
  return { first: r.base, last: r.base + 2 ** (32 - r.prefix) - 1 };
});

/** A /30 is unsafe when any of its four addresses is reserved. */
export function slotIsSafe(slot: number): boolean {
  const first = BASE + slot * 4;
  return !reserved.some((r) => r.first <= first + 3 && first <= r.last);
}

/**
 * Ids whose own slot is unsafe get the spare slots above MAX_TENANT_ID, in order: a fixed table, so every
 * agent derives the same address for a tenant, and tenants whose own slot is safe keep it.
 */
const moved = new Map<number, number>();
{
  const spare: number[] = [];
  for (let s = MAX_TENANT_ID + 1; s < SLOTS; s++) if (slotIsSafe(s)) spare.push(s);
  for (let id = 1; id <= MAX_TENANT_ID; id++) {
    if (slotIsSafe(id)) continue;
    const s = spare.shift();
    if (s === undefined) throw new Error('datapath: too few spare uplink /30s for the reserved link-local ranges');
    moved.set(id, s);
  }
}

/** The /30 of a tenant's uplink: its id's own, or a spare one when that would cover a reserved address. */
export function transitSlot(tenantId: number): number {
  return moved.get(tenantId) ?? tenantId;
}

/** Each tenant's /30 between its namespace and the host: .1 on the host side, .2 in the tenant. */
export function transit(tenantId: number): { host: string; tenant: string; prefix: 30 } {
  const base = BASE + transitSlot(tenantId) * 4;
  return { host: formatIp(base + 1), tenant: formatIp(base + 2), prefix: 30 };
}


export const UPLINK6_PREFIX = 126;

/**
 * A dual-stack tenant's IPv6 uplink: a /126 per tenant id in UPLINK_SPACE6, ::1 on the host side, ::2 in
 * the tenant. Unique local, not link-local: the host masquerades what leaves from it and routes replies
 * back to it, and a link-local address is never forwarded.
 */
export function transit6(tenantId: number): { host: string; tenant: string; prefix: typeof UPLINK6_PREFIX } {
  const base = UPLINK_RANGE6.first + BigInt(tenantId) * 4n;
  return { host: formatIp6(base + 1n), tenant: formatIp6(base + 2n), prefix: UPLINK6_PREFIX };
}
