import { createHash } from 'node:crypto';
import { WIREGUARD_OVERHEAD, WIREGUARD_PORT, parseCidr, type Encryption, type Host } from '../model/index.js';

/**
 * The host's WireGuard tunnel, as data: one device in the host namespace, addressed from the cluster's
 * tunnel range, with every other host that has published a key and been given a tunnel address as its
 * peer. Overlays of encrypted networks then use tunnel addresses as their VXLAN ends, so their frames
 * are routed through the device (plan.ts); the rest of the host's traffic never is.
 */
export interface TunnelPlan {
  device: string;
  /** This host's tunnel address, on the device with the range's prefix (a connected route for the range). */
  address: string;
  prefix: number;
  port: number;
  /** The underlay's MTU less WireGuard's overhead. */
  mtu: number;
  /** Sorted by host name. */
  peers: TunnelPeer[];
}

export interface TunnelPeer {
  host: string;
  publicKey: string;
  /** Where its WireGuard listens: its underlay address and the port. */
  endpoint: string;
  /** Its tunnel address: the only source it may send from, and where packets for it go. */
  allowedIp: string;
}

export interface TunnelInputs {
  host: string;
  hosts?: readonly Host[];
  vtep?: string;
  nsPrefix: string;
  encryption?: Encryption;
  tunnelRange?: string;
  /** The underlay's MTU (the global `mtu`). */
  underlayMtu?: number;
}

/** Keepalives every 25 s keep the handshake fresh (its age is what `weft host ls` shows) and NAT mappings open. */
export const KEEPALIVE_S = 25;

/**
 * The tunnel device: unique per agent (labs run several in one mount namespace, where wireguard-go's
 * sockets live). Never `wu*`: the host table takes those for tenant uplinks.
 */
export function tunnelDevice(nsPrefix: string): string {
  const name = `${nsPrefix}wg`;
  return name.length <= 15 && /^[A-Za-z0-9_.-]+$/.test(name) && !name.startsWith('wu') ? name : `wg${createHash('sha256').update(nsPrefix).digest('hex').slice(0, 13)}`;
}

/**
 * The tunnel this host should have, or undefined: encryption is off, or this host has no tunnel address
 * yet. A host without a key or an address is no peer: encrypted networks do not reach it (fail closed)
 * rather than reaching it in clear.
 */
export function planTunnel(d: TunnelInputs): TunnelPlan | undefined {
  if (d.encryption !== 'wireguard' || !d.hosts || !d.vtep) return undefined;
  const me = d.hosts.find((h) => h.name === d.host);
  if (!me?.tunnelIp || !d.tunnelRange) return undefined;
  const range = parseCidr(d.tunnelRange, 'tunnelRange');
  const peers = d.hosts
    .filter((h) => h.name !== d.host && h.vtepIp !== d.vtep && h.tunnelIp && h.wgPublicKey && h.tunnelIp !== me.tunnelIp)
    .map((h) => ({ host: h.name, publicKey: h.wgPublicKey as string, endpoint: `${h.vtepIp}:${WIREGUARD_PORT}`, allowedIp: h.tunnelIp as string }))
    .sort((a, b) => (a.host < b.host ? -1 : 1));
  return {
    device: tunnelDevice(d.nsPrefix), address: me.tunnelIp, prefix: range.prefix, port: WIREGUARD_PORT,
    mtu: (d.underlayMtu ?? 1500) - WIREGUARD_OVERHEAD, peers,
  };
}
