import { randomBytes, randomInt } from 'node:crypto';
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
  /** Its TCP connections, destroyed when it closes (server.close alone waits for every one to end). */
  conns: Set<net.Socket>;
  open: boolean;
}

interface Pending {
  id: number;
  tenant: string;
  /** The socket the query went out on, and its question as sent (letters in random case): an answer must match both. */
  sock: dgram.Socket;
  question: Buffer;
  /** Whether `question` is in random case (an answer must then echo it exactly; else in any case). */
  mixed: boolean;
  /** The upstreams it went to (`address:port`): only their answers count (a slow one's late answer too). */
  upstreams: Set<string>;
  /** Asks again in lower case under a new id (`from` answered in other case than sent: a forwarder that folds it, or a forgery). */
  lower: (from: string) => void;
  /** The client's own question (a copy: a view would keep a whole TCP read alive), put back in the answer. */
  asked: Buffer;
  reply: (b: Buffer) => void;
  timer: NodeJS.Timeout;
}

/** UDP answers without EDNS (RFC 1035 4.2.1); longer ones are truncated with TC. */
const UDP_MAX = 512;
/** TCP connections one tenant may hold open on its listener. */
const TCP_CONNECTIONS = 64;
/** Unsent answers one TCP connection may have queued before its queries are no longer read. */
const TCP_QUEUED_BYTES = 64 * 1024;
/** Forwarded queries one tenant may have waiting upstream (the 16-bit id space is shared by all tenants). */
const PENDING_PER_TENANT = 512;
/** Queries sent from one upstream socket before the next go from a new one (a new random port). */
const QUERIES_PER_SOCKET = 1000;
/** The longest query forwarded (a real one is a few hundred bytes; each pending one is kept until answered). */
const FORWARD_MAX = 4096;
/** Answers in other case than asked after which an upstream is asked without 0x20 (one forgery cannot do it), and for how long. */
const FOLDS_TO_LOWER = 8;
const FOLDED_MS = 10 * 60_000;

/**
 * The agent's resolver for containers. It listens on each tenant's uplink address (the tenant namespace
 * DNATs queries to its gateways there), so the address a query arrives on says which tenant asks.
 * UDP and TCP; names outside `.weft` are forwarded to the host's upstream servers over UDP.
 */
export class DnsServer {
  private readonly listeners = new Map<string, Listener>();
  private readonly pending = new Map<number, Pending>();
  private readonly pendingOf = new Map<string, number>();
  private upstream: { sock: dgram.Socket; sent: number } | undefined;
  /** Upstream sockets replaced, each closed once the answers still due on it have had their time. */
  private readonly retired = new Set<dgram.Socket>();
  /**
   * Upstreams' answers in other case than asked (a forwarder that folds case, or forgeries): past
   * FOLDS_TO_LOWER of them an upstream is asked in lower case, without 0x20, for FOLDED_MS.
   */
  private readonly folds = new Map<string, { count: number; until: number }>();

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
    this.pendingOf.clear();
    this.upstream?.sock.close();
    this.upstream = undefined;
    for (const s of this.retired) s.close();
    this.retired.clear();
  }

  private async close(address: string): Promise<void> {
    const l = this.listeners.get(address);
    if (!l) return;
    this.listeners.delete(address);
    l.open = false;
    l.udp.close();
    const closed = new Promise<void>((r) => l.tcp.close(() => r()));
    for (const c of l.conns) c.destroy();
    await closed;
  }

  private async listen(address: string, { tenant, peer }: DnsClient): Promise<Listener> {
    const udp = dgram.createSocket({ type: address.includes(':') ? 'udp6' : 'udp4' });
    const tcp = net.createServer();
    const l: Listener = { tenant, peer, udp, tcp, conns: new Set(), open: true };
    udp.on('message', (msg, from) => {
      // A forwarded answer may come after the listener closed: sending on a closed socket throws.
      if (from.address === peer) this.handle(msg, tenant, (b) => { if (l.open) udp.send(b, from.port, from.address); }, UDP_MAX);
    });
    udp.on('error', (e) => this.o.log.warn({ address, err: e.message }, 'dns udp socket error'));
    await new Promise<void>((resolve, reject) => {
      udp.once('error', reject);
      udp.bind({ address, port: this.o.port, exclusive: true }, () => {
        udp.off('error', reject);
        resolve();
      });
    });
    tcp.on('connection', (c: net.Socket) => {
      if (c.remoteAddress !== peer || !l.open || l.conns.size >= TCP_CONNECTIONS) {
        c.destroy();
        return;
      }
      l.conns.add(c);
      c.on('close', () => l.conns.delete(c));
      this.serveTcp(c, tenant);
    });
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
    return l;
  }

  /** TCP carries each message after a two-byte length; one connection may carry several. */
  private serveTcp(c: net.Socket, tenant: string): void {
    c.setTimeout(10_000, () => c.destroy());
    c.on('error', () => c.destroy());
    let buf = Buffer.alloc(0);
    // Queries are read only while the client reads its answers: one that pipelines and never reads would
    // otherwise have the agent queue every answer in memory.
    const pump = (): void => {
      while (buf.length >= 2 && c.writableLength < TCP_QUEUED_BYTES && !c.destroyed) {
        const len = buf.readUInt16BE(0);
        if (buf.length < 2 + len) break;
        const msg = buf.subarray(2, 2 + len);
        buf = buf.subarray(2 + len);
        this.handle(msg, tenant, (b) => {
          if (c.destroyed || b.length > 0xffff) return;
          const head = Buffer.alloc(2);
          head.writeUInt16BE(b.length);
          c.write(Buffer.concat([head, b]));
        }, 0xffff);
      }
      if (c.writableLength >= TCP_QUEUED_BYTES) c.pause();
    };
    c.on('drain', () => {
      pump();
      if (c.writableLength < TCP_QUEUED_BYTES) c.resume();
    });
    c.on('data', (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      pump();
    });
  }

  /** Answers one message from inside `tenant`. */
  handle(msg: Buffer, tenant: string, reply: (b: Buffer) => void, maxSize = 0xffff): void {
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
      reply(encodeReply(q, { rcode: d.rcode, aa: d.aa, ra, addresses: d.addresses, ttl: this.o.ttl }, maxSize));
      return;
    }
    if (!ra) {
      reply(encodeReply(q, { rcode: RCODE.REFUSED, aa: false, ra, addresses: [], ttl: 0 }));
      return;
    }
    this.forward(msg, q.question, tenant, (b) => reply(b), () => reply(encodeReply(q, { rcode: RCODE.SERVFAIL, aa: false, ra, addresses: [], ttl: 0 })));
  }

  /**
   * Sends the query upstream under a fresh id; the answer goes back under the client's id. Servers are
   * tried in order, as a stub resolver would, each getting its share of the time budget; SERVFAIL when
   * none answers. Against forged answers from off the path (an answer is taken for the first that
   * matches): the id is random, the name's letters go in random case (DNS 0x20) and the answer must echo
   * them exactly, and every QUERIES_PER_SOCKET queries the socket, so its port, is new.
   */
  private forward(msg: Buffer, asked: Buffer, tenant: string, reply: (b: Buffer) => void, fail: () => void): void {
    // Each tenant gets its share of the shared id space; a few random tries find a free id (a linear
    // scan of a nearly full table blocked the event loop for seconds).
    const mine = this.pendingOf.get(tenant) ?? 0;
    if (mine >= PENDING_PER_TENANT || msg.length > FORWARD_MAX) return fail();
    const sock = this.upstreamSocket();
    const first = this.freeId();
    if (first === undefined) return fail();
    let id = first;
    this.pendingOf.set(tenant, mine + 1);
    const done = (): void => {
      const n = (this.pendingOf.get(tenant) ?? 1) - 1;
      if (n > 0) this.pendingOf.set(tenant, n);
      else this.pendingOf.delete(tenant);
    };
    const length = asked.length;
    const own = Buffer.from(asked);
    const share = Math.max(100, Math.floor(this.o.upstreamTimeoutMs / this.o.upstreams.length));
    /** The query under `n`, its name in random case or in lower case. */
    const query = (n: number, mixed: boolean): Buffer => {
      const out = recased(msg, length, mixed);
      out.writeUInt16BE(n, 0);
      return out;
    };
    let attemptNo = 0;
    const askedOf = new Set<string>();
    const attempt = (i: number): void => {
      const mine = ++attemptNo;
      // Each attempt moves on once, by its timer or its send's error, whichever comes first.
      const next = (): void => {
        if (mine !== attemptNo) return;
        clearTimeout(timer);
        attempt(i + 1);
      };
      const up = this.o.upstreams[i];
      if (!up) {
        this.pending.delete(id);
        done();
        fail();
        return;
      }
      const upstream = `${up.address}:${up.port}`;
      askedOf.add(upstream);
      const send = (out: Buffer): void => {
        try {
          sock.send(out, up.port, up.address, (e) => e && next());
        } catch {
          // The socket was closed meanwhile (a stop, or a retired socket past its time).
          next();
        }
      };
      const timer = setTimeout(next, share);
      const mixed = this.caseKept(upstream);
      const out = query(id, mixed);
      const entry: Pending = {
        id: msg.readUInt16BE(0), tenant, sock, question: out.subarray(12, 12 + length), mixed, upstreams: askedOf, asked: own, timer,
        reply: (b) => { done(); reply(b); },
        lower: (from) => {
          // Under a new id: a forged answer that only matched the id and port must not be let in by its echo.
          this.folded(from);
          this.pending.delete(id);
          const fresh = this.freeId();
          if (fresh === undefined) return next();
          id = fresh;
          const low = query(id, false);
          this.pending.set(id, { ...entry, mixed: false, question: low.subarray(12, 12 + length) });
          send(low);
        },
      };
      this.pending.set(id, entry);
      send(out);
    };
    attempt(0);
  }

  /** A random id no pending query has, found in a few tries (a scan of a nearly full table blocked for seconds). */
  private freeId(): number | undefined {
    for (let i = 0; i < 64; i++) {
      const id = randomInt(65536);
      if (!this.pending.has(id)) return id;
    }
    return undefined;
  }

  /** Whether `upstream` is asked in random case (not after FOLDS_TO_LOWER answers in other case, for FOLDED_MS). */
  private caseKept(upstream: string): boolean {
    const f = this.folds.get(upstream);
    if (!f || f.count < FOLDS_TO_LOWER) return true;
    if (Date.now() < f.until) return false;
    this.folds.delete(upstream);
    return true;
  }

  private folded(upstream: string): void {
    const f = this.folds.get(upstream) ?? { count: 0, until: 0 };
    f.count++;
    if (f.count === FOLDS_TO_LOWER) {
      f.until = Date.now() + FOLDED_MS;
      this.o.log.info({ upstream }, 'dns upstream answers in other case than asked: asking it in lower case (no 0x20) for 10 minutes');
    }
    this.folds.set(upstream, f);
  }

  private upstreamSocket(): dgram.Socket {
    const u = this.upstream;
    if (u && u.sent < QUERIES_PER_SOCKET) {
      u.sent++;
      return u.sock;
    }
    if (u) {
      // Its answers still due come back on it until their time is up.
      this.retired.add(u.sock);
      setTimeout(() => {
        if (this.retired.delete(u.sock)) u.sock.close();
      }, this.o.upstreamTimeoutMs + 1000).unref();
    }
    const s = dgram.createSocket('udp4');
    s.on('error', (e) => this.o.log.warn({ err: e.message }, 'dns upstream socket error'));
    s.on('message', (msg, from) => {
      if (msg.length < 12 || !this.o.upstreams.some((up) => up.address === from.address && up.port === from.port)) return;
      const id = msg.readUInt16BE(0);
      const p = this.pending.get(id);
      // From an upstream it was sent to, on the socket it went out on, with its one question.
      const who = `${from.address}:${from.port}`;
      if (!p || p.sock !== s || !p.upstreams.has(who) || msg.readUInt16BE(4) !== 1) return;
      const q = msg.subarray(12, 12 + p.question.length);
      if (!q.equals(p.question)) {
        // In other case than sent: a forwarder that folds case, or a forgery. Asked again in lower case
        // under a new id (random case is no use with such a forwarder; a forger gains no id from it).
        const folded = q.length === p.question.length && q.toString('latin1').toLowerCase() === p.question.toString('latin1').toLowerCase();
        if (p.mixed && folded) p.lower(who);
        return;
      }
      this.pending.delete(id);
      clearTimeout(p.timer);
      const back = Buffer.from(msg);
      back.writeUInt16BE(p.id, 0);
      p.asked.copy(back, 12);
      p.reply(back);
    });
    this.upstream = { sock: s, sent: 1 };
    return s;
  }
}

/**
 * A copy of `query` whose name (the question's first `length` bytes less type and class) has its letters
 * in random case (DNS 0x20), or in lower case. In random case at least one letter is upper case: a name
 * drawn all in lower case would pass an upstream that folds case unnoticed (1 in 2^letters, 1 in 512 for
 * `ab.example`), and that upstream is to be asked in lower case after FOLDS_TO_LOWER answers.
 */
function recased(query: Buffer, length: number, mixed: boolean): Buffer {
  const out = Buffer.from(query);
  // Length bytes are below 64, never letters.
  const end = 12 + length - 4;
  const coin = mixed ? randomBytes(end - 12) : undefined;
  let firstLetter = -1;
  let upper = false;
  for (let i = 12; i < end; i++) {
    const c = out[i] as number;
    if (!((c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a))) continue;
    if (firstLetter < 0) firstLetter = i;
    const r = coin ? ((coin[i - 12] as number) & 1 ? c ^ 0x20 : c) : c | 0x20;
    out[i] = r;
    if (r <= 0x5a) upper = true;
  }
  if (coin && !upper && firstLetter >= 0) out[firstLetter] = (out[firstLetter] as number) & ~0x20;
  return out;
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
