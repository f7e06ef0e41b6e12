import { Type, type Static, type TSchema, type TObject, type TProperties, type TUnsafe } from '@sinclair/typebox';
import { ENCAPS, ENCRYPTIONS, IFNAME_PATTERN, NAME_PATTERN, WIREGUARD_MODES, type Encap } from './objects.js';
import { K8sAnnotations, K8sLabels, NetworkPolicySpecSchema } from './netpol-schema.js';
import { AdminNetworkPolicySpecSchema, BaselineAdminNetworkPolicySpecSchema } from './anp.js';

/**
 * Input schemas: the single description of every request body. The REST routes validate with them,
 * the OpenAPI document is generated from them, and the CLI's `-f FILE` and the plugins reuse them.
 * Unknown fields are rejected everywhere (`additionalProperties: false`).
 */
const strict = <P extends TProperties>(props: P, description?: string): TObject<P> =>
  Type.Object(props, { additionalProperties: false, ...(description ? { description } : {}) });

export { NAME_PATTERN } from './objects.js';
/** An endpoint's MAC as stored (lower case). */
export const MAC_PATTERN = '^[0-9a-f]{2}(:[0-9a-f]{2}){5}$';
/** An IP protocol number, 0-255, as a pattern's alternative (the query parameters that take a protocol). */
export const PROTOCOL_NUMBER = '25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9]';
export const Name = Type.String({
  pattern: NAME_PATTERN,
  description: 'A DNS label: lower-case letters, digits and inner dashes, at most 63 characters',
});
const Names = Type.Array(Name, { uniqueItems: true, maxItems: 256 });
const Text = (max: number, description?: string) =>
  Type.String({ minLength: 1, maxLength: max, ...(description ? { description } : {}) });
// Kubernetes allows `_` in a key's name part: pods labelled `app_name` select as they do there.
export const LABEL_KEY_PATTERN = '^[A-Za-z0-9]([A-Za-z0-9._/_-]{0,62})$';
export const LABEL_VALUE_PATTERN = '^[A-Za-z0-9._-]{0,63}$';
const LabelKey = Type.String({ pattern: LABEL_KEY_PATTERN });
const LabelValue = Type.String({ pattern: LABEL_VALUE_PATTERN });
export const Labels = Type.Record(
  LabelKey,
  LabelValue,
  // additionalProperties: a key the pattern does not match is refused, not let through.
  { maxProperties: 64, additionalProperties: false, description: 'key=value labels' },
);
/** A string enum as `enum` (not anyOf of consts) so errors read "must be one of allow, deny". */
function oneOf<T extends string>(values: readonly T[], description?: string): TUnsafe<T> {
  return Type.Unsafe<T>({ type: 'string', enum: [...values], ...(description ? { description } : {}) });
}
const Action = oneOf(['allow', 'deny'] as const);

export const TenantInput = strict({
  name: Name,
  defaultAction: Type.Optional(Action),
});

export const NetworkInput = strict({
  name: Name,
  subnet: Type.Optional(Text(18, 'IPv4 CIDR, e.g. 10.1.2.0/24 (absent: an IPv6-only network, subnet6 alone); fixed at creation')),
  gateway: Type.Optional(Text(15, 'gateway address inside the subnet; default: the first address')),
  ipRange: Type.Optional(Text(31, 'sub-range for dynamic addresses, a.b.c.d-e.f.g.h')),
  subnet6: Type.Optional(Text(43, 'IPv6 CIDR, /16 to /120, e.g. fd00:1:2::/64: dual stack beside subnet, or IPv6 only; fixed at creation')),
  gateway6: Type.Optional(Text(39, 'IPv6 gateway address inside subnet6; default: the subnet\'s ::1')),
  ipRange6: Type.Optional(Text(79, 'sub-range of subnet6 for dynamic addresses, fd00::10-fd00::ffff')),
  encap: Type.Optional(oneOf(Object.keys(ENCAPS) as Encap[])),
  encrypt: Type.Optional(Type.Boolean({ description: 'through WireGuard while the cluster encrypts (default true); fixed at creation' })),
  vni: Type.Optional(Type.Integer({ minimum: 1, maximum: 16777215 })),
  // Up to the underlay's largest: the default (the underlay's MTU less the overlay's overheads) must be one
  // a document can name again.
  mtu: Type.Optional(Type.Integer({ minimum: 576, maximum: 9216 })),
  parent: Type.Optional(Type.String({ pattern: IFNAME_PATTERN, description: "encap macvlan: the hosts' interface the endpoints are children of (required then, refused otherwise); fixed at creation" })),
  blockSize: Type.Optional(Type.Integer({ minimum: 8, maximum: 30, description: 'encap routed: the prefix length of the address blocks each host holds and routes (default 26: 64 addresses); fixed at creation' })),
  bgpPeers: Type.Optional(Type.Array(Text(15, 'IPv4 address of a BGP router'), { maxItems: 8, description: 'encap routed: BGP routers every host announces its blocks to (none: hosts route to each other directly)' })),
  bgpPeerAs: Type.Optional(Type.Integer({ minimum: 1, maximum: 4294967295, description: "encap routed: the BGP routers' AS (required with bgpPeers)" })),
  bgpLocalAs: Type.Optional(Type.Integer({ minimum: 1, maximum: 4294967295, description: "encap routed: the hosts' AS (default 64513)" })),
});

export const GroupInput = strict({
  name: Name,
  network: Name,
  policies: Type.Optional(Names),
  netprofile: Type.Optional(Type.Union([Name, Type.Literal('')])),
  ipPool: Type.Optional(Text(31, 'range inside the network for this group, a.b.c.d-e.f.g.h')),
  labels: Type.Optional(Labels),
});

export const RuleInput = strict({
  id: Name,
  priority: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, description: '1-100, higher wins' })),
  direction: Type.Optional(oneOf(['in', 'out'] as const)),
  action: Type.Optional(Action),
  protocol: Type.Optional(
    Type.String({ pattern: '^(tcp|udp|sctp|icmp|any|[0-9]{1,3})$', description: 'tcp, udp, sctp, icmp, any or a number' }),
  ),
  ports: Type.Optional(Type.String({ pattern: '^[0-9]{1,5}(-[0-9]{1,5})?$', description: '80 or 8000-8080' })),
  fromGroup: Type.Optional(Name),
  fromNetwork: Type.Optional(Name),
  fromCidr: Type.Optional(Text(43)),
  toGroup: Type.Optional(Name),
  toNetwork: Type.Optional(Name),
  toCidr: Type.Optional(Text(43)),
});

/** Enforce (the default), or audit: evaluated, and what it would drop passes, counted and logged. */
export const PolicyModeSchema = oneOf(['enforce', 'audit'] as const, 'enforce (default) or audit: evaluated, nothing dropped, would-be drops counted and logged');

export const PolicyInput = strict({
  name: Name,
  mode: Type.Optional(PolicyModeSchema),
  rules: Type.Optional(Type.Array(RuleInput, { maxItems: 100000 })),
});

export const NetprofileInput = strict({
  name: Name,
  bandwidth: Type.Optional(Type.String({ pattern: '^[0-9]+ ?([kmg]bps|[KMG]b?)$', description: 'e.g. 10mbps, 1gbps' })),
  burst: Type.Optional(Type.Integer({ minimum: 2, maximum: 10486, description: 'burst in KB' })),
  dscp: Type.Optional(Type.Integer({ minimum: 0, maximum: 63 })),
});

export const ServicePortInput = strict({
  port: Type.Integer({ minimum: 1, maximum: 65535 }),
  targetPort: Type.Integer({ minimum: 1, maximum: 65535 }),
  protocol: oneOf(['TCP', 'UDP'] as const),
});

export const ServiceInput = strict({
  name: Name,
  network: Name,
  vip: Type.Optional(Text(15)),
  vip6: Type.Optional(Text(39, 'a requested IPv6 VIP (dual-stack networks; default: the lowest free address of subnet6)')),
  selector: Labels,
  ports: Type.Array(ServicePortInput, { minItems: 1, maxItems: 64 }),
});

export const AppProfileInput = strict({
  name: Name,
  groups: Names,
});

/**
 * A Docker network on one host mapped onto Weft objects, written by that host's agent when Docker calls
 * CreateNetwork. `name` is Docker's network ID cut to 63 characters; `pool` the IPAM pool ID Docker uses
 * for it (`pool6` its IPv6 pool's, for `--ipv6` on a dual-stack network), so the agent can find the
 * network again after a restart of either.
 */
export const DockerNetworkInput = strict({
  name: Type.String({ pattern: '^[a-f0-9]{63}$', description: "Docker's network ID, first 63 characters" }),
  network: Name,
  group: Type.Optional(Name),
  host: Name,
  pool: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9_.-]{1,64}$' })),
  pool6: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9_.-]{1,64}$' })),
});

export const GlobalInput = strict({
  vxlanRange: Type.Optional(Type.String({ pattern: '^[0-9]{1,8}-[0-9]{1,8}$' })),
  mtu: Type.Optional(Type.Integer({ minimum: 1280, maximum: 9216, description: 'underlay MTU' })),
  arpMode: Type.Optional(oneOf(['proxy', 'flood'] as const)),
  encryption: Type.Optional(oneOf(ENCRYPTIONS, 'wireguard: frames between hosts go through WireGuard')),
  tunnelRange: Type.Optional(Text(18, "IPv4 CIDR the hosts' tunnel addresses come from, e.g. 100.64.0.0/16")),
  keyRotationDays: Type.Optional(Type.Integer({ minimum: 0, maximum: 3650, description: 'days between automatic key rotations; 0: never' })),
});

export const PortMapping = strict({
  hostPort: Type.Integer({ minimum: 1, maximum: 65535 }),
  containerPort: Type.Integer({ minimum: 1, maximum: 65535 }),
  protocol: oneOf(['tcp', 'udp'] as const),
});

/**
 * The longest CNI network name an endpoint records: Weft's own conflists are at most 132 (`weft.` and two
 * names of 63); a longer hand-written one is not recorded (its endpoints are left out of GC, never refused).
 */
export const CNI_NETWORK_MAX = 255;

export const EndpointRequest = strict({
  tenant: Name,
  network: Name,
  group: Type.Optional(Name),
  containerId: Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$' }),
  containerName: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$' })),
  cniNetwork: Type.Optional(Type.String({ pattern: `^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,${CNI_NETWORK_MAX - 1}}$`, description: "the CNI network (conflist name) a runtime's ADD came through: the runtime's GC of that network is its scope (agents)" })),
  host: Name,
  ifname: Type.String({ pattern: '^[A-Za-z0-9_.-]{1,15}$', description: 'Linux interface name, at most 15 characters' }),
  ip: Type.Optional(Text(15)),
  ip6: Type.Optional(Text(39, 'a requested IPv6 address (dual-stack networks only)')),
  mac: Type.Optional(Type.String({ pattern: MAC_PATTERN })),
  labels: Type.Optional(Labels),
  netns: Type.Optional(Type.String({ pattern: '^/[^\\0]{0,4095}$', description: "path of the container's network namespace" })),
  seal: Type.Optional(Type.String({ pattern: '^[0-9a-f]{64}$', description: "the creating agent's HMAC of the endpoint (only that agent can check it)" })),
  portMappings: Type.Optional(Type.Array(PortMapping, { maxItems: 64 })),
  replaces: Type.Optional(Type.String({ pattern: '^[0-9a-f]{16}$', description: 'an endpoint of the same host and network whose address this one takes over, in one step (an address reserved before its endpoint was known)' })),
  attached: Type.Optional(strict({
    defaultRoute: Type.Boolean({ description: "whether the interface takes the container's default route" }),
  }, 'made by `weft attach` on a running container or namespace (runtimes\' GC leaves it alone)')),
});

/** What a runtime learns about an endpoint after creating it (Docker: the container's name, its published ports). */
export const EndpointPatch = strict({
  ip6: Type.Optional(Text(39, "another IPv6 address for an endpoint not yet wired (no netns) of a dual-stack network: Docker's --ip6, which comes after the endpoint's IPv4 request (agents)")),
  containerName: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$' })),
  portMappings: Type.Optional(Type.Array(PortMapping, { maxItems: 64 })),
  labels: Type.Optional(Type.Record(LabelKey, Type.Union([LabelValue, Type.Null()]), {
    maxProperties: 64, additionalProperties: false,
    description: 'labels to set; null removes one (a merge, as RFC 7396); namespace, network and group never change',
  })),
});

/** A WireGuard key: base64 of 32 bytes. */
export const WG_KEY_PATTERN = '^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$';

/** Printable text (no C0 or C1 control, no DEL): what hosts report is shown in every user's terminal (`weft host ls`). */
const PRINTABLE = '^[^\\u0000-\\u001f\\u007f-\\u009f]+$';

export const HostInput = strict({
  name: Name,
  vtepIp: Text(15),
  vtepIp6: Type.Optional(Text(39, "the host's global IPv6 address on the underlay, if it has one (routed networks' IPv6 blocks are routed to it)")),
  agentVersion: Type.Optional(Type.String({ minLength: 1, maxLength: 64, pattern: PRINTABLE, description: "the agent's version (printable text: every user reads it in `weft host ls`)" })),
  wgPublicKey: Type.Optional(Type.String({ pattern: WG_KEY_PATTERN, description: "the host's WireGuard public key (base64 of 32 bytes)" })),
  instance: Type.Optional(Type.String({ pattern: '^[0-9a-f]{32}$', description: "the agent's random id, kept in its state dir: while one instance heartbeats, another may not take over the host's name" })),
  wireguard: Type.Optional(strict({
    mode: oneOf(WIREGUARD_MODES),
    error: Type.Optional(Type.String({ minLength: 1, maxLength: 512, pattern: PRINTABLE, description: 'why the tunnel is not up (printable text: admins read it in a terminal)' })),
    peers: Type.Integer({ minimum: 0, maximum: 1_000_000 }),
    handshaken: Type.Integer({ minimum: 0, maximum: 1_000_000 }),
    oldestHandshakeAt: Type.Optional(Type.String({ pattern: '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,3})?Z$' })),
    rxBytes: Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER }),
    txBytes: Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER }),
  }, "the host's tunnel as its agent sees it")),
});

export const Role = oneOf(['admin', 'ops', 'tenant'] as const);
export const UserInput = strict({
  name: Name,
  role: Role,
  tenants: Type.Optional(Names),
  password: Type.Optional(Type.String({ minLength: 8, maxLength: 256 })),
});

const QuotaCount = (what: string) => Type.Optional(Type.Integer({ minimum: 0, maximum: 1_000_000_000, description: `${what} this user may own; absent: the server's default` }));
/** An admin's per-user quota override (PUT replaces it whole). */
export const QuotaInput = strict({
  objects: QuotaCount('tenants and tenant objects'),
  rules: QuotaCount('policy rules'),
});

export const LoginInput = strict({
  username: Name,
  password: Type.String({ minLength: 1, maxLength: 256 }),
});

const Pem = (what: string) => Type.String({ minLength: 1, maxLength: 16_384, description: `${what}, PEM` });

/** `weft host add NAME`: how long the one-time join token stays usable. */
export const JoinTokenInput = strict({
  expiresIn: Type.Optional(Type.Integer({ minimum: 1, maximum: 7 * 86_400, description: 'seconds the join token stays usable (default 3600)' })),
});
export const JoinInput = strict({
  token: Type.String({ minLength: 1, maxLength: 256, description: 'the join token from `weft host add NAME`' }),
  csr: Pem('a certificate signing request for the host\'s own key (ECDSA P-256)'),
});
export const CsrInput = strict({ csr: Pem('a certificate signing request for the host\'s new key') });

export type TenantInput = Static<typeof TenantInput>;
export type JoinTokenInput = Static<typeof JoinTokenInput>;
export type JoinInput = Static<typeof JoinInput>;
export type CsrInput = Static<typeof CsrInput>;
export type NetworkInput = Static<typeof NetworkInput>;
export type GroupInput = Static<typeof GroupInput>;
export type RuleInput = Static<typeof RuleInput>;
export type PolicyInput = Static<typeof PolicyInput>;
export type NetprofileInput = Static<typeof NetprofileInput>;
export type ServiceInput = Static<typeof ServiceInput>;
export type AppProfileInput = Static<typeof AppProfileInput>;
export type DockerNetworkInput = Static<typeof DockerNetworkInput>;
export type GlobalInput = Static<typeof GlobalInput>;
export type EndpointRequest = Static<typeof EndpointRequest>;
export type EndpointPatch = Static<typeof EndpointPatch>;
export type HostInput = Static<typeof HostInput>;
/** `PATCH /api/v1/hosts/NAME/labels`: labels to set, null removes one (a merge, as RFC 7396). */
export const HostLabelsPatch = strict({
  labels: Type.Record(LabelKey, Type.Union([LabelValue, Type.Null()]), { maxProperties: 64, additionalProperties: false, description: 'labels to set; null removes one' }),
});
export type HostLabelsPatch = Static<typeof HostLabelsPatch>;
export type PortMapping = Static<typeof PortMapping>;
export type UserInput = Static<typeof UserInput>;
export type LoginInput = Static<typeof LoginInput>;
export type QuotaInput = Static<typeof QuotaInput>;
export type Role = Static<typeof Role>;
export type Labels = Static<typeof Labels>;

/** A schema whose every property is optional: the body of a PATCH. */
export function partialOf(schema: TObject): TSchema {
  return Type.Partial(schema, { additionalProperties: false });
}

/**
 * A Kubernetes NetworkPolicy as the control plane stores it (written by `weft apply` only): `name` is
 * NAMESPACE.POLICY.
 */
export const NetworkPolicyInput = strict({
  name: Type.String({ pattern: `${NAME_PATTERN.slice(0, -1)}\\.${NAME_PATTERN.slice(1)}`, description: 'NAMESPACE.NAME' }),
  namespace: Name,
  policyName: Name,
  spec: NetworkPolicySpecSchema,
  mode: Type.Optional(PolicyModeSchema),
});
export type NetworkPolicyInput = Static<typeof NetworkPolicyInput>;

/** An AdminNetworkPolicy (policy.networking.k8s.io/v1alpha1) of a tenant, written by `weft apply` only. */
export const AdminNetworkPolicyInput = strict({ name: Name, spec: AdminNetworkPolicySpecSchema, mode: Type.Optional(PolicyModeSchema) });
export type AdminNetworkPolicyInput = Static<typeof AdminNetworkPolicyInput>;
/** The tenant's BaselineAdminNetworkPolicy: one, named `default`. */
export const BaselineAdminNetworkPolicyInput = strict({ name: Name, spec: BaselineAdminNetworkPolicySpecSchema, mode: Type.Optional(PolicyModeSchema) });
export type BaselineAdminNetworkPolicyInput = Static<typeof BaselineAdminNetworkPolicyInput>;

/** A namespace's labels (what a NetworkPolicy's namespaceSelector matches). */
export const NamespaceInput = strict({ name: Name, labels: Type.Optional(K8sLabels) });
export type NamespaceInput = Static<typeof NamespaceInput>;

/** The kinds `weft apply -f` takes, in the order it writes them (deletes go the other way). */
export const APPLY_KINDS = ['Tenant', 'Namespace', 'Netprofile', 'Network', 'Policy', 'Group', 'Service', 'AppProfile', 'NetworkPolicy', 'AdminNetworkPolicy', 'BaselineAdminNetworkPolicy'] as const;
export type ApplyKind = (typeof APPLY_KINDS)[number];

/** A kind's input without its name (the document's metadata names it): what a document's `spec` holds. */
const specOf = (schema: TObject): TObject => {
  const { name: _name, ...rest } = schema.properties;
  return strict(rest);
};
export const APPLY_SPECS: Record<ApplyKind, TObject> = {
  // Kubernetes' kinds: a Namespace has no spec (its labels are metadata), a NetworkPolicy's is upstream's.
  Namespace: strict({}), NetworkPolicy: NetworkPolicySpecSchema,
  AdminNetworkPolicy: AdminNetworkPolicySpecSchema, BaselineAdminNetworkPolicy: BaselineAdminNetworkPolicySpecSchema,
  Tenant: specOf(TenantInput), Netprofile: specOf(NetprofileInput), Network: specOf(NetworkInput), Policy: specOf(PolicyInput),
  Group: specOf(GroupInput), Service: specOf(ServiceInput), AppProfile: specOf(AppProfileInput),
};

const API_VERSION_NAMES = ['weft/v1', 'v1', 'networking.k8s.io/v1', 'policy.networking.k8s.io/v1alpha1'] as const;
type ApiVersion = (typeof API_VERSION_NAMES)[number];

/** Each kind's apiVersion (the default when a document leaves it out). */
export const API_VERSIONS: Record<ApplyKind, ApiVersion> = {
  Tenant: 'weft/v1', Netprofile: 'weft/v1', Network: 'weft/v1', Policy: 'weft/v1', Group: 'weft/v1', Service: 'weft/v1', AppProfile: 'weft/v1',
  Namespace: 'v1', NetworkPolicy: 'networking.k8s.io/v1',
  AdminNetworkPolicy: 'policy.networking.k8s.io/v1alpha1', BaselineAdminNetworkPolicy: 'policy.networking.k8s.io/v1alpha1',
};

/** One document of `weft apply -f`: Kubernetes' shape, so the same files hold Kubernetes' NetworkPolicies and Namespaces beside Weft's kinds. */
export const ApplyDocument = strict({
  apiVersion: Type.Optional(oneOf(API_VERSION_NAMES, "the kind's: weft/v1, v1 (Namespace), networking.k8s.io/v1 (NetworkPolicy), policy.networking.k8s.io/v1alpha1 (the admin kinds)")),
  kind: oneOf(APPLY_KINDS),
  metadata: strict({
    name: Name,
    tenant: Type.Optional(Type.String({ pattern: NAME_PATTERN, description: "the object's tenant; default: the request's `tenant`, then `default`" })),
    namespace: Type.Optional(Type.String({ pattern: NAME_PATTERN, description: "a NetworkPolicy's namespace (default: `default`)" })),
    labels: Type.Optional(K8sLabels),
    annotations: Type.Optional(K8sAnnotations),
  }),
  spec: Type.Optional(Type.Object({}, { additionalProperties: true, description: "the kind's fields, as its own create takes them, without name" })),
});
export type ApplyDocument = Static<typeof ApplyDocument>;

/**
 * At most this many documents in one apply (one transaction, planned on the event loop): a document may
 * read every object of its kind (a network checks every other for overlap), so the cost grows with the
 * square of the count. 250 new networks take ~0.25 s here (the costliest kind measured: 249 groups with
 * pools ~0.16 s, 249 services ~0.06 s); 1,000 networks took ~4.9 s, the server stalled meanwhile.
 */
export const MAX_APPLY_DOCUMENTS = 250;

export const ApplyInput = strict({
  tenant: Type.Optional(Name),
  dryRun: Type.Optional(Type.Boolean({ description: 'decide and report, write nothing' })),
  delete: Type.Optional(Type.Boolean({ description: 'remove what the documents name instead of writing it' })),
  audit: Type.Optional(Type.Boolean({ description: 'write every policy of the documents (Policy, NetworkPolicy and the admin kinds) in audit mode' })),
  documents: Type.Array(ApplyDocument, { minItems: 1, maxItems: MAX_APPLY_DOCUMENTS }),
});
export type ApplyInput = Static<typeof ApplyInput>;
