import tls from 'node:tls';

/**
 * A load generator's HTTPS client: one kept-alive TLS connection (mTLS when given a certificate) sending
 * one HTTP/1.1 request at a time, each written in one piece, and reading answers framed by
 * content-length. It does what node:https does on the wire at about half its CPU, so on a two-core
 * machine the bench's own client takes less of the CPU the server under test needs (docs/benchmarks.md).
 * Nothing else: no redirects, no chunked answers (refused), no retries.
 */
export class LeanConnection {
  private buf = '';
  private waiting: { resolve: (r: { status: number; body: string }) => void; reject: (e: Error) => void } | undefined;

  private constructor(private readonly socket: tls.TLSSocket, private readonly host: string) {
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => this.onData(d));
    socket.on('error', (e) => this.fail(e));
    socket.on('close', () => this.fail(new Error('the connection closed')));
  }

  static open(url: URL, opts: { ca: string; cert?: string; key?: string }): Promise<LeanConnection> {
    return new Promise((resolve, reject) => {
      const socket = tls.connect({ host: url.hostname, port: Number(url.port), ca: opts.ca, ...(opts.cert ? { cert: opts.cert, key: opts.key } : {}) }, () => {
        socket.off('error', reject);
        socket.setNoDelay(true);
        resolve(new LeanConnection(socket, url.host));
      });
      socket.once('error', reject);
    });
  }

  request(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
    if (this.waiting) return Promise.reject(new Error('one request at a time on a LeanConnection'));
    // Closed by the server (its keep-alive timeout, while the connection idled): a write would go nowhere
    // and the answer never come (a bench hung on it, session 50).
    if (this.socket.destroyed || !this.socket.writable) return Promise.reject(new Error('the connection closed'));
    const payload = body === undefined ? '' : JSON.stringify(body);
    const extra = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('');
    const head = `${method} ${path} HTTP/1.1\r\nhost: ${this.host}\r\n${extra}${payload ? `content-type: application/json\r\ncontent-length: ${Buffer.byteLength(payload)}\r\n` : ''}\r\n`;
    return new Promise((resolve, reject) => {
      this.waiting = { resolve, reject };
      this.socket.write(head + payload);
    });
  }

  private onData(d: string): void {
    this.buf += d;
    const end = this.buf.indexOf('\r\n\r\n');
    if (end < 0 || !this.waiting) return;
    const head = this.buf.slice(0, end);
    const status = Number(head.slice(9, 12));
    if (/^transfer-encoding:\s*chunked/im.test(head)) return this.fail(new Error('chunked answers are not supported'));
    const length = Number(/^content-length:\s*(\d+)/im.exec(head)?.[1] ?? 0);
    // The body arrives as text: its length is counted in bytes, so wait until the bytes are all there.
    const rest = this.buf.slice(end + 4);
    if (Buffer.byteLength(rest) < length) return;
    const w = this.waiting;
    this.waiting = undefined;
    this.buf = '';
    w.resolve({ status, body: rest });
  }

  private fail(e: Error): void {
    const w = this.waiting;
    this.waiting = undefined;
    w?.reject(e);
  }

  /** Whether a request can still be sent (the server closes a connection idle past its keep-alive timeout). */
  get usable(): boolean {
    return !this.socket.destroyed && this.socket.writable;
  }

  close(): void {
    this.socket.destroy();
  }
}

/** `size` LeanConnections; a request waits for a free one (as node:https's agent does at maxSockets). */
export class LeanPool {
  private readonly free: LeanConnection[] = [];
  private readonly queue: Array<(c: LeanConnection) => void> = [];
  /** Requests that found every connection busy and waited for one (an open loop's client-side queue). */
  waited = 0;

  private constructor(private readonly all: LeanConnection[], private readonly url: URL, private readonly opts: { ca: string; cert?: string; key?: string }) {
    this.free.push(...all);
  }

  static async open(url: URL, size: number, opts: { ca: string; cert?: string; key?: string }): Promise<LeanPool> {
    return new LeanPool(await Promise.all(Array.from({ length: size }, () => LeanConnection.open(url, opts))), url, opts);
  }

  /** `c`, or a new connection in its place if the server closed it while it idled. */
  private async fresh(c: LeanConnection): Promise<LeanConnection> {
    if (c.usable) return c;
    const n = await LeanConnection.open(this.url, this.opts);
    this.all[this.all.indexOf(c)] = n;
    return n;
  }

  async request(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<{ status: number; body: string }> {
    let c = this.free.pop();
    if (!c) {
      this.waited++;
      c = await new Promise<LeanConnection>((r) => this.queue.push(r));
    }
    try {
      c = await this.fresh(c);
    } catch (e) {
      // No new connection: the slot stays (a later request tries again), this one fails.
      this.release(c);
      throw e;
    }
    try {
      return await c.request(method, path, body, headers);
    } finally {
      this.release(c);
    }
  }

  private release(c: LeanConnection): void {
    const next = this.queue.shift();
    if (next) next(c);
    else this.free.push(c);
  }

  close(): void {
    for (const c of this.all) c.close();
  }
}
