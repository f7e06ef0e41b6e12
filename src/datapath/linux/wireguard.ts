import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnDaemon, type Runner } from '../../exec/index.js';
import type { WireguardMode, WireguardStatus } from '../../model/index.js';
import { KEEPALIVE_S, type TunnelPlan } from '../tunnel.js';
import { ipBatch } from './observe.js';

/**
 * How a WireGuard device comes to exist on this host: the kernel module where it is loaded, else the
 * userspace `wireguard-go` over a TUN device. Either way `wg` configures it and `ip` addresses it, so
 * everything after creation is one code path (WireguardTunnel).
 */
export interface WireguardImpl {
  readonly mode: WireguardMode;
  create(device: string): Promise<void>;
  remove(device: string): Promise<void>;
}

/** The kernel module: a link of kind `wireguard`. */
export const kernelWireguard = (runner: Runner): WireguardImpl => ({
  mode: 'kernel',
  create: async (device) => { await runner.run(['ip', 'link', 'add', device, 'type', 'wireguard']); },
  remove: async (device) => { await runner.run(['ip', 'link', 'del', device], { allowFailure: true }); },
});

/** Where wireguard-go keeps its control socket (fixed by wireguard-go; shared by every network namespace). */
export const WG_SOCKET_DIR = '/var/run/wireguard';

/**
 * wireguard-go, started detached so the tunnel outlives an agent restart (as kernel state would); its pid
 * is kept in the agent's state dir and it is stopped by that pid. It exits by itself when its device is
 * deleted.
 */
export function userspaceWireguard(runner: Runner, stateDir: string): WireguardImpl {
  const pidFile = join(stateDir, 'wireguard-go.pid');
  return {
    mode: 'wireguard-go',
    async create(device) {
      // A stale socket is wireguard-go's to handle (it probes it); deleting one here would stop a live
      // wireguard-go that owns it.
      const pid = spawnDaemon(['wireguard-go', '-f', device], join(stateDir, 'wireguard-go.log'), { WG_PROCESS_FOREGROUND: '1' });
      writeFileSync(pidFile, `${pid}\n`, { mode: 0o600 });
      for (let i = 0; i < 100; i++) {
        const link = await runner.run(['ip', 'link', 'show', device], { allowFailure: true });
        if (link.code === 0 && existsSync(join(WG_SOCKET_DIR, `${device}.sock`))) return;
        if (!alive(pid)) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      stop(pid, device);
      throw new Error(`wireguard-go did not bring up ${device} (see ${join(stateDir, 'wireguard-go.log')})`);
    },
    async remove(device) {
      await runner.run(['ip', 'link', 'del', device], { allowFailure: true });
      const pid = existsSync(pidFile) ? Number(readFileSync(pidFile, 'utf8').trim()) : NaN;
      if (Number.isInteger(pid) && pid > 1) stop(pid, device);
      rmSync(pidFile, { force: true });
    },
  };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Stops the wireguard-go we started for `device`, only if that pid still is exactly it (pids are reused). */
function stop(pid: number, device: string): void {
  try {
    if (readFileSync(`/proc/${pid}/cmdline`, 'utf8') !== `wireguard-go\0-f\0${device}\0`) return;
    process.kill(pid, 'SIGTERM');
  } catch {
    // Already gone.
  }
}

/** An error as the host status carries it: one line of printable text, bounded (the schema refuses others). */
const printable = (text: string) => text.replace(/[\u0000-\u001f\u007f-\u009f]+/g, ' ').trim().slice(0, 500) || 'unknown error';

/** One peer as `wg show DEV dump` prints it. */
export interface DumpPeer { publicKey: string; endpoint: string; allowedIps: string[]; handshake: number; rx: number; tx: number; keepalive: number }

/** `wg show DEV dump`: the interface line (private key, public key, port), then one line per peer. */
export function parseDump(text: string): { privateKey: string; port: number; peers: DumpPeer[] } | undefined {
  const [head, ...rest] = text.split('\n').filter((l) => l.trim() !== '');
  if (!head) return undefined;
  const h = head.split('\t');
  return {
    privateKey: h[0] ?? '',
    port: Number(h[2]),
    peers: rest.map((l) => l.split('\t')).map((f) => ({
      publicKey: f[0] ?? '', endpoint: f[2] ?? '', allowedIps: (f[3] ?? '').split(',').filter((a) => a && a !== '(none)'),
      handshake: Number(f[4] ?? 0), rx: Number(f[5] ?? 0), tx: Number(f[6] ?? 0), keepalive: f[7] === 'off' ? 0 : Number(f[7] ?? 0),
    })),
  };
}

/**
 * The `wg set` arguments that bring the device to the plan: the private key (by file, never on a command
 * line), the port, each missing or changed peer, and `remove` for each peer no longer planned. Empty when
 * nothing differs. Sessions with unchanged peers are untouched.
 */
export function wgSetArgs(t: TunnelPlan, have: ReturnType<typeof parseDump>, privateKey: string, keyFile: string): string[] {
  const out: string[] = [];
  if (have?.privateKey !== privateKey) out.push('private-key', keyFile);
  if (have?.port !== t.port) out.push('listen-port', String(t.port));
  const seen = new Map((have?.peers ?? []).map((p) => [p.publicKey, p]));
  for (const p of t.peers) {
    const cur = seen.get(p.publicKey);
    const ips = `${p.allowedIp}/32`;
    if (cur && cur.endpoint === p.endpoint && cur.allowedIps.join(',') === ips && cur.keepalive === KEEPALIVE_S) continue;
    out.push('peer', p.publicKey, 'endpoint', p.endpoint, 'allowed-ips', ips, 'persistent-keepalive', String(KEEPALIVE_S));
  }
  const wanted = new Set(t.peers.map((p) => p.publicKey));
  for (const k of seen.keys()) if (!wanted.has(k)) out.push('peer', k, 'remove');
  return out;
}

/** The peers of a dump as the heartbeat reports them: counts, the stalest handshake, summed bytes. */
export function summarise(peers: readonly DumpPeer[]): Omit<WireguardStatus, 'mode' | 'error'> {
  const shaken = peers.filter((p) => p.handshake > 0);
  return {
    peers: peers.length, handshaken: shaken.length,
    ...(shaken.length ? { oldestHandshakeAt: new Date(Math.min(...shaken.map((p) => p.handshake)) * 1000).toISOString() } : {}),
    rxBytes: peers.reduce((n, p) => n + p.rx, 0), txBytes: peers.reduce((n, p) => n + p.tx, 0),
  };
}

interface AddrJson { ifname: string; mtu: number; flags?: string[]; addr_info?: Array<{ family: string; local: string; prefixlen: number }>; linkinfo?: { info_kind?: string } }

/**
 * The host's tunnel device, kept as planned: made when missing (by the implementation the kernel
 * allows), configured with `wg`, addressed and sized with `ip`; removed when no plan wants it.
 */
export class WireguardTunnel {
  private impl: WireguardImpl | undefined;
  /** The device last made or seen (undefined: not looked at since the agent started). */
  private present: string | undefined | null = null;
  private lastError: string | undefined;
  private peersByKey = new Set<string>();

  constructor(private readonly runner: Runner, private readonly stateDir: string, private readonly keyFile: string) {}

  async ensure(t: TunnelPlan | undefined, device: string): Promise<void> {
    try {
      if (!t) return await this.remove(device);
      await this.converge(t);
      this.lastError = undefined;
    } catch (e) {
      this.lastError = (e as Error).message;
      throw e;
    }
  }

  private async converge(t: TunnelPlan): Promise<void> {
    const shown = await this.runner.run(['ip', '-d', '-j', 'addr', 'show', 'dev', t.device], { allowFailure: true });
    let link = shown.code === 0 ? (JSON.parse(shown.stdout || '[]') as AddrJson[])[0] : undefined;
    if (!link) {
      this.impl = await this.pick(t.device);
      link = { ifname: t.device, mtu: 0 };
    } else {
      this.impl ??= link.linkinfo?.info_kind === 'wireguard' ? kernelWireguard(this.runner) : userspaceWireguard(this.runner, this.stateDir);
    }
    this.present = t.device;
    this.peersByKey = new Set(t.peers.map((p) => p.publicKey));
    const privateKey = readFileSync(this.keyFile, 'utf8').trim();
    const dump = await this.runner.run(['wg', 'show', t.device, 'dump']);
    const args = wgSetArgs(t, parseDump(dump.stdout), privateKey, this.keyFile);
    if (args.length) await this.runner.run(['wg', 'set', t.device, ...args]);
    const want = `${t.address}/${t.prefix}`;
    const have = (link.addr_info ?? []).filter((a) => a.family === 'inet').map((a) => `${a.local}/${a.prefixlen}`);
    const cmds = [
      ...(have.includes(want) ? [] : [`addr replace ${want} dev ${t.device}`]),
      ...have.filter((a) => a !== want).map((a) => `addr del ${a} dev ${t.device}`),
      ...(link.mtu !== t.mtu || !(link.flags ?? []).includes('UP') ? [`link set ${t.device} mtu ${t.mtu} up`] : []),
    ];
    await ipBatch(this.runner, undefined, cmds);
  }

  /** The kernel module if `ip link add ... type wireguard` works (then the device exists), else wireguard-go. */
  private async pick(device: string): Promise<WireguardImpl> {
    const k = await this.runner.run(['ip', 'link', 'add', device, 'type', 'wireguard'], { allowFailure: true });
    if (k.code === 0) return kernelWireguard(this.runner);
    const go = userspaceWireguard(this.runner, this.stateDir);
    try {
      await go.create(device);
    } catch (e) {
      const missing = (e as Error).message.includes('ENOENT') || /exit -1/.test((e as Error).message);
      throw new Error(missing ? 'no WireGuard: the kernel has no module and wireguard-go is not installed (apt install wireguard-go wireguard-tools)' : (e as Error).message);
    }
    return go;
  }

  private async remove(device: string): Promise<void> {
    if (this.present === undefined) return;
    if (this.present === null) {
      const l = await this.runner.run(['ip', '-d', '-j', 'link', 'show', device], { allowFailure: true });
      const kind = l.code === 0 ? (JSON.parse(l.stdout || '[]') as AddrJson[])[0]?.linkinfo?.info_kind : undefined;
      if (l.code !== 0) {
        this.present = undefined;
        return;
      }
      this.impl = kind === 'wireguard' ? kernelWireguard(this.runner) : userspaceWireguard(this.runner, this.stateDir);
    }
    await (this.impl ?? userspaceWireguard(this.runner, this.stateDir)).remove(device);
    this.present = undefined;
    this.impl = undefined;
  }

  /** What `weft host ls` shows: the implementation, any error, each peer's last handshake and bytes. */
  async status(): Promise<WireguardStatus | undefined> {
    if (this.lastError && !this.present) return { ...summarise([]), mode: this.impl?.mode ?? 'wireguard-go', error: printable(this.lastError) };
    if (!this.present || !this.impl) return undefined;
    const dump = parseDump((await this.runner.run(['wg', 'show', this.present, 'dump'], { allowFailure: true })).stdout);
    const peers = (dump?.peers ?? []).filter((p) => this.peersByKey.has(p.publicKey));
    return { ...summarise(peers), mode: this.impl.mode, ...(this.lastError ? { error: printable(this.lastError) } : {}) };
  }
}
