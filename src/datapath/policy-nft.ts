import { formatIp } from '../model/index.js';
import type { CompiledPolicy } from '../policy/index.js';

/**
 * The policy part of a tenant's table. Per new connection: the source and destination addresses are
 * each looked up in one interval map (address → class, into meta mark and ct mark), then one
 * concatenated interval verdict map decides (class . class . protocol . port). The cost per packet does
 * not depend on how many rules or endpoints there are. Established and related traffic passes first.
 */
export function renderPolicyMaps(p: CompiledPolicy): string[] {
  if (p.portEntries.length === 0 && p.protoEntries.length === 0) return [];
  const range = (a: number, b: number) => (a === b ? String(a) : `${a}-${b}`);
  const ipRange = (a: number, b: number) => (a === b ? formatIp(a) : `${formatIp(a)}-${formatIp(b)}`);
  const cls = p.classification.ranges.map((r) => `${ipRange(r.first, r.last)} : ${r.cls}`);
  const ports = p.portEntries.map((e) => `${e.src} . ${e.dst} . ${e.proto} . ${range(e.first, e.last)} : ${e.verdict}`);
  const protos = p.protoEntries.map((e) => `${e.src} . ${e.dst} . ${range(e.first, e.last)} : ${e.verdict}`);
  const map = (name: string, type: string, elements: string[]) => [
    `\tmap ${name} {`, `\t\ttype ${type}`, '\t\tflags interval',
    ...(elements.length ? [`\t\telements = { ${elements.join(',\n\t\t\t')} }`] : []), '\t}',
  ];
  return [
    ...map('cls', 'ipv4_addr : mark', cls),
    ...map('pol', 'mark . mark . inet_proto . inet_service : verdict', ports),
    ...map('polp', 'mark . mark . inet_proto : verdict', protos),
  ];
}

export function renderPolicyChain(p: CompiledPolicy | undefined): string[] {
  const lookups = p && (p.portEntries.length > 0 || p.protoEntries.length > 0);
  const fallback = p?.fallback ?? 'accept';
  if (!lookups && fallback === 'accept') return [];
  return [
    '\tchain forward {',
    '\t\ttype filter hook forward priority filter; policy accept;',
    '\t\tct state established,related accept',
    '\t\tct state invalid drop',
    ...(lookups ? [
      '\t\tmeta mark set ip saddr map @cls',
      '\t\tct mark set ip daddr map @cls',
      '\t\tmeta l4proto { tcp, udp } meta mark . ct mark . meta l4proto . th dport vmap @pol',
      '\t\tmeta l4proto != { tcp, udp } meta mark . ct mark . meta l4proto vmap @polp',
    ] : []),
    `\t\t${fallback} comment "tenant default"`,
    '\t}',
  ];
}
