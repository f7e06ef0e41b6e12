import dgram from 'node:dgram';
import net from 'node:net';
import type { Logger } from 'pino';
import { BadQuery, encodeError, encodeReply, parseQuery, RCODE } from './codec.js';
import { decide, type NameTable } from './answer.js';

export interface Upstream {
  address: string;
  port: number;
}

export interface DnsServerOptions {
  port: number;
  /** Where names outside `.weft` go; none: they are refused at once. */
  upstreams: readonly Upstream[];
  upstreamTimeoutMs: number;
  ttl: number;
  names: (tenant: string) => NameTable;
  log: Logger;
}

/** Who a listener answers: the tenant, and the one source it accepts (the tenant's own uplink address). */
export interface DnsClient {
  tenant: string;
  peer: string;
}

interface Listener extends DnsClient {
  udp: dgram.Socket;
  tcp: net.Server;
}

interface Pending {
  id: number;
  reply: (b: Buffer) => void;
  timer: NodeJS.Timeout;
}

/**
 * The agent's resolver for containers. It listens on each tenant's uplink address (the tenant namespace
 * DNATs queries to its gateways there), so the address a query arrives on says which tenant asks.
 * UDP and TCP; names outside `.weft` are forwarded to the host's upstream servers over UDP.
 */
export class DnsServer {
  private readonly listeners = new Map<string, Listener>();
  private readonly pending = new Map<number, Pending>();
  private upstream: dgram.Socket | undefined;

  constructor(private readonly o: DnsServerOptions) {}

  /**
   * Listens on exactly these addresses (address → its tenant and the tenant's uplink address, the only
   * source it answers: queries reach it masqueraded by the tenant namespace, so a query from anywhere else
   * is not the tenant's, whatever the host's firewall let through). An address not yet configured is
   * retried at the next call.
   */
  async sync(wanted: ReadonlyMap<string, DnsClient>): Promise<void> {
    for (const [address, l] of this.listeners) {
      const w = wanted.get(address);
      if (w?.tenant !== l.tenant || w.peer !== l.peer) await this.close(address);
    }
    for (const [address, { tenant, peer }] of wanted) {
      if (this.listeners.has(address)) continue;
      try {
        this.listeners.set(address, await this.listen(address, { tenant, peer }));
        this.o.log.debug({ address, port: this.o.port, tenant }, 'dns listening');
      } catch (e) {
        this.o.log.warn({ address, port: this.o.port, tenant, err: (e as Error).message }, 'dns cannot listen yet; retrying at the next resync');
      }
    }
  }

  /** The addresses listened on now (an address whose port was taken is retried at the next sync). */
  listening(): string[] {
    return [...this.listeners.keys()];
  }

  async stop(): Promise<void> {
    for (const a of [...this.listeners.keys()]) await this.close(a);
    for (const p of this.pending.values()) clearTimeout(p.timer);
    this.pending.clear();
    this.upstream?.close();
    this.upstream = undefined;
  }

  private async close(address: string): Promise<void> {
    const l = this.listeners.get(address);
    if (!l) return;
    this.listeners.delete(address);
    l.udp.close();
    await new Promise<void>((r) => l.tcp.close(() => r()));
  }

  private async listen(address: string, { tenant, peer }: DnsClient): Promise<Listener> {
    const udp = dgram.createSocket({ type: address.includes(':') ? 'udp6' : 'udp4' });
    udp.on('message', (msg, from) => {
      if (from.address === peer) this.handle(msg, tenant, (b) => udp.send(b, from.port, from.address));
    });
    udp.on('error', (e) => this.o.log.warn({ address, err: e.message }, 'dns udp socket error'));
    await new Promise<void>((resolve, reject) => {
      udp.once('error', reject);
      udp.bind({ address, port: this.o.port, exclusive: true }, () => {
        udp.off('error', reject);
        resolve();
      });
    });
    const tcp = net.createServer((c) => (c.remoteAddress === peer ? this.serveTcp(c, tenant) : c.destroy()));
    try {
      await new Promise<void>((resolve, reject) => {
        tcp.once('error', reject);
        tcp.listen({ host: address, port: this.o.port }, () => {
          tcp.off('error', reject);
          resolve();
        });
      });
    } catch (e) {
      udp.close();
      throw e;
    }
    return { tenant, peer, udp, tcp };
  }

  /** TCP carries each message after a two-byte length; one connection may carry several. */
  private serveTcp(c: net.Socket, tenant: string): void {
    c.setTimeout(10_000, () => c.destroy());
    c.on('error', () => c.destroy());
    let buf = Buffer.alloc(0);
    c.on('data', (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      while (buf.length >= 2) {
        const len = buf.readUInt16BE(0);
        if (buf.length < 2 + len) break;
        const msg = buf.subarray(2, 2 + len);
        buf = buf.subarray(2 + len);
        this.handle(msg, tenant, (b) => {
          if (c.destroyed) return;
          const head = Buffer.alloc(2);
          head.writeUInt16BE(b.length);
          c.write(Buffer.concat([head, b]));
        });
      }
    });
  }

  /** Answers one message from inside `tenant`. */
  handle(msg: Buffer, tenant: string, reply: (b: Buffer) => void): void {
    let q;
    try {
      q = parseQuery(msg);
    } catch (e) {
      if (e instanceof BadQuery && e.rcode !== 'drop') reply(encodeError(e.id, e.rcode));
      return;
    }
    const ra = this.o.upstreams.length > 0;
    const d = decide(q, tenant, this.o.names(tenant));
    if (d.kind === 'answer') {
      reply(encodeReply(q, { rcode: d.rcode, aa: d.aa, ra, addresses: d.addresses, ttl: this.o.ttl }));
      return;
    }
    if (!ra) {
      reply(encodeReply(q, { rcode: RCODE.REFUSED, aa: false, ra, addresses: [], ttl: 0 }));
      return;
    }
    this.forward(msg, (b) => reply(b), () => reply(encodeReply(q, { rcode: RCODE.SERVFAIL, aa: false, ra, addresses: [], ttl: 0 })));
  }

  /** Sends the query upstream under a fresh id; the answer goes back under the client's id. */
  /**
   * Sends the query upstream under a fresh id; the answer goes back under the client's id. Servers are
   * tried in order, as a stub resolver would, each getting its share of the time budget; SERVFAIL when
   * none answers.
   */
  private forward(msg: Buffer, reply: (b: Buffer) => void, fail: () => void): void {
    const sock = this.upstreamSocket();
    let id = Math.floor(Math.random() * 65536);
    for (let i = 0; this.pending.has(id) && i < 65536; i++) id = (id + 1) & 0xffff;
    if (this.pending.has(id)) return fail();
    const out = Buffer.from(msg);
    out.writeUInt16BE(id, 0);
    const share = Math.max(100, Math.floor(this.o.upstreamTimeoutMs / this.o.upstreams.length));
    const attempt = (i: number): void => {
      const up = this.o.upstreams[i];
      if (!up) {
        this.pending.delete(id);
        fail();
        return;
      }
      const timer = setTimeout(() => attempt(i + 1), share);
      this.pending.set(id, { id: msg.readUInt16BE(0), reply, timer });
      sock.send(out, up.port, up.address, (e) => {
        if (!e) return;
        clearTimeout(timer);
        attempt(i + 1);
      });
    };
    attempt(0);
  }

  private upstreamSocket(): dgram.Socket {
    if (this.upstream) return this.upstream;
    const s = dgram.createSocket('udp4');
    s.on('error', (e) => this.o.log.warn({ err: e.message }, 'dns upstream socket error'));
    s.on('message', (msg, from) => {
      if (msg.length < 12 || !this.o.upstreams.some((u) => u.address === from.address && u.port === from.port)) return;
      const p = this.pending.get(msg.readUInt16BE(0));
      if (!p) return;
      this.pending.delete(msg.readUInt16BE(0));
      clearTimeout(p.timer);
      const back = Buffer.from(msg);
      back.writeUInt16BE(p.id, 0);
      p.reply(back);
    });
    this.upstream = s;
    return s;
  }
}

/** `nameserver` lines of a resolv.conf, as upstreams on port 53. */
export function upstreamsFromResolvConf(text: string): Upstream[] {
  const out: Upstream[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*nameserver\s+([0-9.]+)\s*$/.exec(line);
    if (m?.[1]) out.push({ address: m[1], port: 53 });
  }
  return out;
}

/** `IP[:PORT]` for --dns-upstream. */
export function parseUpstream(text: string): Upstream {
  const m = /^([0-9]{1,3}(?:\.[0-9]{1,3}){3})(?::([0-9]{1,5}))?$/.exec(text);
  const port = m?.[2] === undefined ? 53 : Number(m[2]);
  if (!m?.[1] || port < 1 || port > 65535 || net.isIPv4(m[1]) === false) throw new Error(`'${text}' is not IPv4[:PORT]`);
  return { address: m[1], port };
}
