// The rule shapes bench:policy measures (issue 13): not only group rules, but the shapes that hurt a
// class-based datapath most. Pure: a shape is a list of policies for two groups (`db`, the server side,
// and `app`, the client side) and the rules that must decide the measured flows, so the bench (and a unit
// test, through explain) can check that a rule deep in the set decides, not the first one.

export type ShapeName = 'cidr' | 'nested' | 'both' | 'mix';
export const SHAPES: readonly ShapeName[] = ['cidr', 'nested', 'both', 'mix'];

export interface BenchRule {
  id: string;
  direction: 'in' | 'out';
  action: 'allow' | 'deny';
  protocol: string;
  priority: number;
  ports?: string;
  fromCidr?: string;
  toCidr?: string;
  fromGroup?: string;
  toGroup?: string;
}

export interface Shape {
  name: ShapeName;
  /** Policies of at most PER_POLICY rules each, attached to each of `groups` (beside db's base). */
  policies: Array<{ name: string; rules: BenchRule[] }>;
  groups: Array<'db' | 'app'>;
  /** For each flow app → db the bench relies on: allowed or not, and the rule ids that decide it. */
  flows: Array<{ port: number; allowed: boolean; ingress: string | undefined; egress: string | undefined }>;
}

export const PER_POLICY = 1000;
/** Ports the bench uses on db: iperf3, the connect probe, two that must stay closed. */
export const IPERF_PORT = 5201;
export const CONNECT_PORT = 5202;
export const DENIED_PORTS = [5203, 5204];

const quad = (n: number) => `${(n >>> 24) & 255}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
const ipNum = (ip: string) => ip.split('.').reduce((n, o) => n * 256 + Number(o), 0);
const prefix = (ip: string, len: number) => `${quad(len === 0 ? 0 : (ipNum(ip) & (~0 << (32 - len))) >>> 0)}/${len}`;

/** Distinct /32 sources, one port each (the shape): 10.100.0.0 upwards, ports 10000-59999. */
function distinct(i: number, dir: 'in' | 'out' = 'in'): BenchRule {
  const peer = quad(ipNum(dir === 'in' ? '10.100.0.0' : '10.160.0.0') + i);
  return { id: `c${dir}${i}`, direction: dir, action: 'allow', protocol: 'tcp', priority: 5, ports: String(10000 + (i % 50000)),
    ...(dir === 'in' ? { fromCidr: `${peer}/32` } : { toCidr: `${peer}/32` }) };
}

const LEVELS = [8, 12, 16, 20, 24, 26, 28, 32];
/**
 * Nested prefixes of one address per block of eight rules, each with its own port range, allow and deny
 * alternating with the level and the priority rising with it, so every address below a /20 sits in
 * eight overlapping rules. Blocks spread over 200 first octets (not 10.x, the bench's own addresses):
 * each /8 is shared by ~30 blocks at 50,000 rules, each /12 by ~16, below that they are the block's own.
 */
export function nested(i: number): BenchRule {
  const block = i >> 3;
  const level = i & 7;
  const first = 11 + (block % 200);
  const addr = quad(((first << 24) | (Math.floor(block / 200) << 16) | (((block * 37) & 255) << 8) | 77) >>> 0);
  const port = 1000 + ((i * 7919) % 58000);
  return { id: `n${i}`, direction: 'in', action: level % 2 ? 'deny' : 'allow', protocol: i % 5 === 4 ? 'udp' : 'tcp',
    priority: 2 + level * 2 + (block % 2), ports: `${port}-${port + 1 + (i % 97)}`, fromCidr: prefix(addr, LEVELS[level] as number) };
}

/** The nested prefixes around the client, with the flows' verdicts decided deep inside them. */
function nestedAround(app: string): BenchRule[] {
  return [
    { id: 'deep-n8', direction: 'in', action: 'deny', protocol: 'tcp', priority: 3, ports: '1-65535', fromCidr: prefix(app, 8) },
    { id: 'deep-n16', direction: 'in', action: 'allow', protocol: 'tcp', priority: 4, ports: '5000-5999', fromCidr: prefix(app, 16) },
    { id: 'deep-n24', direction: 'in', action: 'deny', protocol: 'tcp', priority: 6, ports: '5201-5220', fromCidr: prefix(app, 24) },
    { id: 'deep-n28', direction: 'in', action: 'allow', protocol: 'tcp', priority: 7, ports: '5201-5202', fromCidr: prefix(app, 28) },
    { id: 'deep-n32', direction: 'in', action: 'deny', protocol: 'tcp', priority: 9, ports: '5203-5210', fromCidr: `${app}/32` },
    { id: 'deep-n32-low', direction: 'in', action: 'allow', protocol: 'tcp', priority: 5, ports: '5204', fromCidr: `${app}/32` },
  ];
}

/** Group-to-group and protocol-only rules, for the mix: none of them may decide tcp 5201-5204. */
function groupOrProto(i: number): BenchRule {
  if (i % 2 === 0) {
    return i % 4 === 0
      ? { id: `g${i}`, direction: 'in', action: i % 8 ? 'allow' : 'deny', protocol: 'tcp', priority: 6, ports: String(20000 + (i % 40000)), fromGroup: 'app' }
      : { id: `g${i}`, direction: 'out', action: 'allow', protocol: 'udp', priority: 6, ports: `${30000 + (i % 30000)}-${30010 + (i % 30000)}`, toGroup: 'db' };
  }
  const protocol = ['udp', 'icmp', '47', '132'][(i >> 1) % 4] as string;
  return { id: `p${i}`, direction: i % 4 === 1 ? 'in' : 'out', action: i % 3 ? 'allow' : 'deny', protocol, priority: 1 + (i % 9),
    ...(i % 4 === 1 ? { fromCidr: `${quad(ipNum('10.200.0.0') + i)}/32` } : { toGroup: 'db' }) };
}

/** What the measured flows need in each shape besides the deep rules: a base that denies tcp each way it filters. */
const denyOut: BenchRule = { id: 'deny-tcp-out', direction: 'out', action: 'deny', protocol: 'tcp', priority: 1 };

/**
 * `n` rules of one shape; the rules that decide the measured flows sit in the middle of the set
 * (index n/2), and every other rule leaves those flows alone.
 */
export function makeShape(name: ShapeName, n: number, ips: { app: string; db: string }): Shape {
  const singles = (dir: 'in' | 'out'): BenchRule[] => [IPERF_PORT, CONNECT_PORT].map((port) => ({
    id: `deep-${dir}-${port}`, direction: dir, action: 'allow', protocol: 'tcp', priority: 5, ports: String(port),
    ...(dir === 'in' ? { fromCidr: `${ips.app}/32` } : { toCidr: `${ips.db}/32` }),
  }));
  const gen: Record<ShapeName, (i: number) => BenchRule> = {
    cidr: (i) => distinct(i),
    nested,
    both: (i) => distinct(i >> 1, i % 2 ? 'out' : 'in'),
    mix: (i) => [() => distinct(i), () => nested(i), () => distinct(i, 'out'), () => groupOrProto(i)][i % 4]!(),
  };
  const deep: Record<ShapeName, BenchRule[]> = {
    cidr: singles('in'),
    nested: nestedAround(ips.app),
    both: [...singles('in'), ...singles('out')],
    mix: [...nestedAround(ips.app), ...singles('out')],
  };
  const head = name === 'both' || name === 'mix' ? [denyOut] : [];
  const body = Array.from({ length: n - head.length - deep[name].length }, (_, i) => gen[name](i));
  const mid = body.length >> 1;
  const rules = [...head, ...body.slice(0, mid), ...deep[name], ...body.slice(mid)];
  const policies = [];
  for (let k = 0; k * PER_POLICY < rules.length; k++) policies.push({ name: `${name}-${n}-${k}`, rules: rules.slice(k * PER_POLICY, (k + 1) * PER_POLICY) });
  const nestedFlows = [
    { port: IPERF_PORT, allowed: true, ingress: 'deep-n28' }, { port: CONNECT_PORT, allowed: true, ingress: 'deep-n28' },
    { port: 5203, allowed: false, ingress: 'deep-n32' }, { port: 5204, allowed: false, ingress: 'deep-n32' },
  ];
  const singleFlows = [
    { port: IPERF_PORT, allowed: true, ingress: `deep-in-${IPERF_PORT}` }, { port: CONNECT_PORT, allowed: true, ingress: `deep-in-${CONNECT_PORT}` },
    ...DENIED_PORTS.map((port) => ({ port, allowed: false, ingress: 'deny-tcp' })),
  ];
  const flows = (name === 'nested' || name === 'mix' ? nestedFlows : singleFlows).map((f) => ({
    ...f, egress: name === 'both' || name === 'mix' ? (f.allowed ? `deep-out-${f.port}` : 'deny-tcp-out') : undefined,
  }));
  // The shape is attached to one group; both directions and the mix to both groups.
  return { name, policies, flows, groups: head.length ? ['db', 'app'] : ['db'] };
}

/** The policy every step keeps on db: tcp is denied unless a rule allows it. */
export const BASE_RULES: BenchRule[] = [{ id: 'deny-tcp', direction: 'in', action: 'deny', protocol: 'tcp', priority: 1 }];
