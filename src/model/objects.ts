import type { Labels, PortMapping, Role } from './schemas.js';
import type { LabelMap, NetworkPolicy } from './netpol.js';

/** Stored objects, as the API returns them. `revision` is the store revision of the object's last change. */
export interface Meta {
  revision: number;
  createdAt: string;
  updatedAt: string;
  /** The user who created it, who pays for it in quotas (absent on objects made before quotas). */
  owner?: string;
}

export type Action = 'allow' | 'deny';
export type Direction = 'in' | 'out';

export interface Tenant extends Meta {
  name: string;
  /** Small number unique among tenants, for bounded kernel names (netns, links) and transit addresses. */
  id: number;
  defaultAction: Action;
}

export interface Network extends Meta {
  tenant: string;
  name: string;
  /** Its IPv4 subnet, gateway and dynamic range; absent on an IPv6-only network (one with subnet6 alone). */
  subnet?: string;
  gateway?: string;
  ipRange?: string;
  /** Its IPv6 subnet (canonical text), gateway and dynamic range: dual stack beside subnet, or IPv6 only; fixed at creation. */
  subnet6?: string;
  gateway6?: string;
  ipRange6?: string;
  encap: Encap;
  /**
   * Whether its frames between hosts go through WireGuard while the cluster's `encryption` is on (absent:
   * yes; networks made before encryption). Fixed at creation: its default MTU leaves room for the tunnel.
   */
  encrypt?: boolean;
  vni: number;
  mtu: number;
  /**
   * encap macvlan: the host interface its endpoints are macvlan (bridge mode) children of, the same name on
   * every host. No bridge, no overlay: the endpoints sit on that interface's segment, the gateway is its router.
   */
  parent?: string;
  /**
   * encap routed: no overlay; each host holds blocks of this prefix length inside the subnet (the server
   * hands them out: an endpoint's address comes from a block of its host) and routes them over the
   * underlay. Fixed at creation.
   */
  blockSize?: number;
  /**
   * encap routed: the BGP routers (top-of-rack or route reflectors) every host's agent announces its
   * blocks to and learns the others' from, their AS and the hosts' AS. Without peers, hosts route each
   * other's blocks directly over the underlay (one segment).
   */
  bgpPeers?: string[];
  bgpPeerAs?: number;
  bgpLocalAs?: number;
}

export interface Group extends Meta {
  tenant: string;
  name: string;
  network: string;
  policies: string[];
  netprofile?: string;
  ipPool?: string;
  labels: Labels;
}

export interface Rule {
  id: string;
  priority: number;
  direction: Direction;
  action: Action;
  protocol: string;
  ports?: string;
  fromGroup?: string;
  fromNetwork?: string;
  fromCidr?: string;
  toGroup?: string;
  toNetwork?: string;
  toCidr?: string;
  /** The user who added it, who pays for it in quotas (absent on rules made before quotas). */
  owner?: string;
}

export type PolicyMode = 'enforce' | 'audit';

export interface Policy extends Meta {
  tenant: string;
  name: string;
  rules: Rule[];
  /** `audit`: its rules are evaluated and what they would drop passes, counted and logged (absent: enforce). */
  mode?: PolicyMode;
}

/**
 * A run of a policy's rules as stored (`rules/TENANT/POLICY/GEN/LAST`) and as the watch carries it (kind
 * `policy-rules`): at most 128 rules sorted by id, covering the ids from its first rule to LAST, each with
 * its place in the policy (`pos`: the policy lists its rules by it). `removed` names the rules the write
 * that made this value took out (a watcher that never saw them in this segment drops them by id).
 */
export interface RuleSegment {
  rules: Array<Rule & { pos: number }>;
  removed?: string[];
}

export interface Netprofile extends Meta {
  tenant: string;
  name: string;
  bandwidth?: string;
  burst?: number;
  dscp: number;
}

export interface ServicePort {
  port: number;
  targetPort: number;
  protocol: 'TCP' | 'UDP';
}

export interface Service extends Meta {
  tenant: string;
  name: string;
  network: string;
  /** Its IPv4 VIP: absent on an IPv6-only network. */
  vip?: string;
  /** On a network with a subnet6: its IPv6 VIP, balancing to the backends' IPv6 addresses. */
  vip6?: string;
  selector: Labels;
  ports: ServicePort[];
}

export interface DockerNetwork extends Meta {
  tenant: string;
  name: string;
  network: string;
  group?: string;
  host: string;
  pool?: string;
  pool6?: string;
}

/**
 * A Kubernetes NetworkPolicy in a tenant (issue 15), stored under `NAMESPACE.NAME` (a namespace name has
 * no dot, so the two parts are never confused).
 */
export interface NetworkPolicyObject extends Meta {
  tenant: string;
  /** `audit`: evaluated, and what it would drop passes, counted (`weft apply --audit`). */
  mode?: PolicyMode;
  /** `namespace.policyName`: the store's name for it. */
  name: string;
  namespace: string;
  policyName: string;
  spec: NetworkPolicy['spec'];
  /** The rules it expands to (peers × ports per rule): counted in its owner's rules quota. */
  weight?: number;
}

/** An AdminNetworkPolicy or the BaselineAdminNetworkPolicy of a tenant (its name is `default`), as stored. */
export interface AdminPolicyObject<S> extends Meta {
  tenant: string;
  mode?: PolicyMode;
  name: string;
  spec: S;
  /** The rules it expands to: counted in its owner's rules quota. */
  weight?: number;
}

/** A namespace's labels in a tenant (what namespaceSelectors match); a namespace with none needs no object. */
export interface NamespaceObject extends Meta {
  tenant: string;
  name: string;
  labels: LabelMap;
}

export interface AppProfile extends Meta {
  tenant: string;
  name: string;
  groups: string[];
}

/** Labels the server sets on every endpoint from where it was made (service selectors use them): never the caller's. */
export const SERVER_LABELS: readonly string[] = ['network', 'group'];
/**
 * Labels a pod cannot change: its namespace (a pod never moves between namespaces), the server's own, and
 * the runtime that made it (an agent collects endpoints labelled `runtime=docker` Docker no longer knows).
 */
export const FIXED_LABELS: readonly string[] = ['namespace', ...SERVER_LABELS, 'runtime'];

/**
 * The container id of a Docker IPAM reservation (a placeholder endpoint holding an address dockerd asked
 * for, until CreateEndpoint replaces it with the container's endpoint): only those may move their IPv6
 * address (Docker's --ip6).
 */
export const RESERVATION_PREFIX = 'ipam-';

/** The overlay's UDP port on every host (IANA's VXLAN port): never a published port. */
export const VXLAN_PORT = 4789;

export interface Endpoint extends Meta {
  id: string;
  tenant: string;
  network: string;
  group?: string;
  /** Its IPv4 address, the prefix length and gateway of the network's subnet: absent on an IPv6-only network. */
  ip?: string;
  prefixLength?: number;
  gateway?: string;
  /** On a network with a subnet6: its IPv6 address, the prefix length and gateway of the network's subnet6. */
  ip6?: string;
  prefixLength6?: number;
  gateway6?: string;
  mac: string;
  mtu: number;
  vni: number;
  host: string;
  ifname: string;
  containerId: string;
  containerName?: string;
  /**
   * The CNI network (the conflist's `name`) a runtime's ADD came through: its GC names that network and
   * lists only that network's attachments, so only endpoints made through it are in the GC's scope (a
   * group has two conflists, `weft.T.G` and `weft-T-G`, and one runtime may use one, another the other).
   */
  cniNetwork?: string;
  labels: Labels;
  netns?: string;
  /**
   * The creating agent's HMAC over the endpoint's identity and netns, with a key that never leaves that
   * host: the agent re-wires (repairs) only endpoints it sealed itself, never a record someone else wrote.
   */
  seal?: string;
  portMappings?: PortMapping[];
  /**
   * Set when `weft attach` made it (an interface added to a running container or namespace), not a
   * runtime's CNI ADD or Docker: a runtime's GC never collects it, and its interface takes the container's
   * default route only when asked (`defaultRoute`), so a second interface does not steal the first's.
   */
  attached?: { defaultRoute: boolean };
  state: 'created' | 'active';
}

/**
 * The address an endpoint is named by (listings, flows, explain, the policy's checks): its IPv4 address,
 * else (an IPv6-only network) its IPv6 one. The server gives every endpoint one of them.
 */
export function addressOf(e: Pick<Endpoint, 'ip' | 'ip6'>): string {
  return e.ip ?? e.ip6 ?? '';
}

export interface Host extends Meta {
  name: string;
  vtepIp: string;
  /** Its IPv6 underlay address, when it has one: other hosts and BGP routers reach its routed networks' IPv6 blocks through it. */
  vtepIp6?: string;
  agentVersion?: string;
  /** Its WireGuard public key: other hosts make it their peer (the private half never leaves the host). */
  wgPublicKey?: string;
  /** Its address inside the WireGuard tunnel, handed out by the server from the global `tunnelRange`. */
  tunnelIp?: string;
  /** Raised by `weft host rotate-key`: the host's agent makes a new key pair when this exceeds its own count. */
  rotateKey?: number;
  /** SHA-256 of its agent's instance id (the id stays on the host): another instance is refused while this one is live. */
  instance?: string;
  /** The operator's labels (`weft host label`; admin/ops only, never the host itself: plays and secrets follow them). */
  labels?: Labels;
  /** What its agent last reported of its tunnel (with every heartbeat). */
  wireguard?: WireguardStatus;
  lastSeen: string;
  /** Computed when read: down when its agent has not been heard from within the server's host timeout. */
  state?: 'up' | 'down';
}

export interface Global extends Meta {
  vxlanRange: string;
  mtu: number;
  arpMode: 'proxy' | 'flood';
  /** `wireguard`: frames between hosts travel through WireGuard (networks may opt out with `encrypt: false`). */
  encryption: Encryption;
  /** Where hosts' tunnel addresses come from (only the hosts' own namespace ever routes them). */
  tunnelRange: string;
  /** Each agent makes a new WireGuard key pair when its key is this many days old; 0: never. */
  keyRotationDays: number;
}

export const ENCRYPTIONS = ['none', 'wireguard'] as const;
export type Encryption = (typeof ENCRYPTIONS)[number];
/** How a host runs WireGuard: the kernel module where there is one, else the userspace `wireguard-go`. */
export const WIREGUARD_MODES = ['kernel', 'wireguard-go'] as const;
export type WireguardMode = (typeof WIREGUARD_MODES)[number];

/**
 * A host's tunnel as its agent sees it, in a few numbers: it travels with every heartbeat to every agent's
 * watch and into the history, so its size must not grow with the cluster (a per-peer list would make
 * that traffic grow with the square of the host count).
 */
export interface WireguardStatus {
  mode: WireguardMode;
  /** Why the tunnel is not up, when it is not (e.g. no implementation available). */
  error?: string;
  /** Peers configured, and how many of them have completed a handshake. */
  peers: number;
  handshaken: number;
  /** The least recent of the peers' latest handshakes: a tunnel is as fresh as its stalest peer. */
  oldestHandshakeAt?: string;
  /** Bytes received from and sent to all peers. */
  rxBytes: number;
  txBytes: number;
}

export interface User extends Meta {
  name: string;
  role: Role;
  tenants: string[];
  hasPassword: boolean;
}

/**
 * Tenant ids are small numbers the server hands out: kernel names carry them, and each tenant's uplink
 * /30 in 169.254.0.0/16 (16,384 of them) is derived from one, with some held back (datapath `transit`).
 */
export const MAX_TENANT_ID = 16_000;

export const GLOBAL_DEFAULTS = {
  vxlanRange: '10000-19999', mtu: 1500, arpMode: 'proxy', encryption: 'none', tunnelRange: '100.64.0.0/16', keyRotationDays: 30,
} as const;
/** WireGuard's listening UDP port on every host's underlay address. */
export const WIREGUARD_PORT = 51820;
/** WireGuard adds 60 bytes over IPv4: outer IP 20, UDP 8, its header 16, the authentication tag 16. */
export const WIREGUARD_OVERHEAD = 60;
/** VXLAN adds 50 bytes of headers over IPv4. */
export const VXLAN_OVERHEAD = 50;

/**
 * The encapsulations a network may use between hosts, with the bytes each adds to a packet (a network's
 * default MTU is the underlay's less this). Each has an implementation in the agent's Linux datapath
 * (datapath/linux/encaps/), registered there by the same name.
 */
export const ENCAPS = { vxlan: { overhead: VXLAN_OVERHEAD }, macvlan: { overhead: 0 }, routed: { overhead: 0 } } as const;
export type Encap = keyof typeof ENCAPS;
/**
 * The encapsulations that carry a network's bridge between hosts (macvlan has neither bridge nor overlay;
 * routed has a bridge per host and plain routes between them).
 */
export type OverlayEncap = Exclude<Encap, 'macvlan' | 'routed'>;
/** encap routed: the default prefix length of the blocks hosts hold (64 addresses). */
export const DEFAULT_BLOCK_SIZE = 26;
/** encap routed: the hosts' AS when the network names none (private, RFC 6996). */
export const DEFAULT_BGP_LOCAL_AS = 64513;
/** A Linux interface name (IFNAMSIZ: at most 15 bytes), as `ip link` takes one. */
/** Tenants, networks, groups, netprofiles and the other named objects: a DNS label. */
export const NAME_PATTERN = '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$';
export const IFNAME_PATTERN = '^[A-Za-z0-9_.-]{1,15}$';

/** One line of `GET /api/v1/watch` and one row of the history: a change, attributed and redacted. */
export interface ChangeEvent {
  revision: number;
  op: 'put' | 'delete';
  kind: string;
  key: string;
  tenant?: string;
  object: unknown;
  actor: string;
  time: string;
}
