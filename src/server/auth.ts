import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { FastifyRequest } from 'fastify';
import { NAME_PATTERN, WeftError } from '../model/index.js';
import { CredentialRefused, type Control, type Principal } from '../control/index.js';
import { normalSerial } from '../pki/index.js';

/** A verified client certificate of a host: the name in `CN=host:NAME`, its serial and its end. */
export interface PeerHost { host: string; serial: string; notAfter: number }

const HOST_NAME = new RegExp(NAME_PATTERN);
/** Parsed once per TLS connection, not per request. */
const peers = new WeakMap<Socket, PeerHost | null>();

/**
 * The host certificate a connection presented, if the TLS layer verified it against Weft's CA (the
 * server asks for a certificate but does not require one: people come with tokens).
 */
export function peerHostOf(socket: Socket): PeerHost | null {
  const cached = peers.get(socket);
  if (cached !== undefined) return cached;
  const s = socket as TLSSocket;
  let peer: PeerHost | null = null;
  if (s.encrypted && s.authorized) {
    const c = s.getPeerCertificate();
    const cn = c?.subject?.CN;
    const m = typeof cn === 'string' ? /^host:(.*)$/.exec(cn) : null;
    if (m?.[1] && HOST_NAME.test(m[1]) && c.serialNumber) peer = { host: m[1], serial: normalSerial(c.serialNumber), notAfter: Date.parse(c.valid_to) };
  }
  peers.set(socket, peer);
  return peer;
}

/** The principal made for a connection's certificate, made once: it is the same for every request that passes. */
const principals = new WeakMap<PeerHost, Principal>();

const refusal = (peer: PeerHost) => new CredentialRefused(`cert:${peer.serial}`,
  `the certificate of host ${peer.host} (serial ${peer.serial}) is revoked or expired; the host must join again with a token from \`weft host add ${peer.host}\``);

/**
 * A host principal, if the certificate is still one the host's identity lists and has not ended: checked
 * on every request (revocation is immediate), against the identity as the store shares it (SQLite: parsed
 * once while the row is unchanged).
 */
export async function hostPrincipal(control: Control, peer: PeerHost, now = Date.now()): Promise<Principal> {
  const id = await control.identities.current(peer.host);
  const listed = id?.joinedAt !== undefined && id.certs.some((c) => c.serial === peer.serial);
  if (!listed || now >= peer.notAfter) throw refusal(peer);
  let p = principals.get(peer);
  if (p === undefined) {
    // Frozen: one object for all of the connection's requests, which none of them may change.
    p = Object.freeze({ user: `host:${peer.host}`, role: 'host', tenants: Object.freeze([]) as unknown as string[], credential: `cert:${peer.serial}`, host: peer.host, expiresAt: new Date(peer.notAfter).toISOString() });
    principals.set(peer, p);
  }
  return p;
}

/** Bearer token first (people, scripts), else a verified host certificate, else 401. */
export async function authenticate(control: Control, req: FastifyRequest): Promise<Principal> {
  const h = req.headers.authorization;
  if (h !== undefined) {
    const m = /^Bearer\s+(\S+)$/i.exec(h);
    if (!m?.[1]) throw new WeftError('WEFT_UNAUTHENTICATED', 'Authorization: expected "Bearer <token>"');
    return control.users.authenticate(m[1]);
  }
  const peer = peerHostOf(req.raw.socket);
  if (peer) return hostPrincipal(control, peer);
  throw new WeftError('WEFT_UNAUTHENTICATED', 'send a token: Authorization: Bearer <token> (see `weft login`), or a host certificate');
}
