import { handleCni, type AddRequest, type CniHost, type CniOutcome, type Scope } from './handler.js';
import { addressMismatch, type AddResultInput, type Attachment } from './protocol.js';

export type HostCall = ['add', AddRequest] | ['del', string, string] | ['check', string, string, string] | ['gc', Scope, Attachment[]] | ['status'];

/**
 * A CniHost for protocol tests, in memory and without root. It records what reached it and answers the
 * way the agent does: ADD attaches, DEL of an unknown attachment succeeds, CHECK of one is a problem, GC
 * releases the unlisted attachments of its scope. `fail` is thrown by every call, after recording it.
 */
export class FakeCniHost implements CniHost {
  readonly calls: HostCall[] = [];
  /** `containerId/ifname` → the scope it was added in. */
  readonly attached = new Map<string, Scope>();
  /** `containerId/ifname` → what ADD answered (CHECK compares prevResult's addresses with it). */
  private readonly held = new Map<string, AddResultInput>();
  fail: unknown;
  statusProblem: string | undefined;
  /** Answer ADD as on a dual-stack network (fd00:1:2::9/64 beside the IPv4 address). */
  dual = false;

  /** The requests ADD passed on, in order. */
  get adds(): AddRequest[] {
    return this.calls.flatMap((c) => (c[0] === 'add' ? [c[1]] : []));
  }

  private record(call: HostCall): void {
    this.calls.push(call);
    if (this.fail !== undefined) throw this.fail;
  }

  async add(req: AddRequest): Promise<AddResultInput> {
    this.record(['add', req]);
    this.attached.set(`${req.containerId}/${req.ifname}`, { tenant: req.tenant, network: req.network, ...(req.group ? { group: req.group } : {}), cniNetwork: req.cniNetwork ?? '' });
    const result: AddResultInput = {
      hostVeth: 'we3f2a9c0d1b7e', ifname: req.ifname, mac: req.mac ?? '0a:58:0a:01:02:09', mtu: 1450, netns: req.netns,
      ip: req.ip ?? '10.1.2.9', prefixLength: 24, gateway: '10.1.2.1',
      ...(this.dual ? { ip6: 'fd00:1:2::9', prefixLength6: 64, gateway6: 'fd00:1:2::1' } : {}),
      dns: { nameservers: ['10.1.2.1'], search: [`${req.tenant}.weft`] },
    };
    this.held.set(`${req.containerId}/${req.ifname}`, result);
    return result;
  }

  async del(containerId: string, ifname: string): Promise<void> {
    this.record(['del', containerId, ifname]);
    this.attached.delete(`${containerId}/${ifname}`);
  }

  async check(containerId: string, ifname: string, netns: string, expected: readonly string[]): Promise<string | undefined> {
    this.record(['check', containerId, ifname, netns]);
    const key = `${containerId}/${ifname}`;
    if (!this.attached.has(key)) return `${key} is not attached`;
    return addressMismatch(expected, this.held.get(key) ?? {});
  }

  async gc(scope: Scope, valid: ReadonlyArray<Attachment>): Promise<void> {
    this.record(['gc', scope, [...valid]]);
    const keep = new Set(valid.map((a) => `${a.containerID}/${a.ifname}`));
    for (const [key, s] of this.attached) {
      if (s.tenant === scope.tenant && s.network === scope.network && s.group === scope.group && s.cniNetwork === scope.cniNetwork && !keep.has(key)) this.attached.delete(key);
    }
  }

  async status(): Promise<string | undefined> {
    this.record(['status']);
    return this.statusProblem;
  }
}

/** A network namespace path that exists for every user, so ADD and CHECK pass their netns check without root. */
export const NETNS = '/proc/self/ns/net';

export type Env = Record<string, string | undefined>;

export interface Invocation {
  /** Replaces or adds CNI_* variables; `undefined` removes one. */
  env?: Env;
  /** Merged into the plugin configuration; `undefined` removes a key. */
  config?: Record<string, unknown>;
  /** Sent as is instead of the configuration. */
  stdin?: string;
}

/** Calls the handler as a runtime would for the conflist entry of group db in tenant blue. */
export function invoke(host: CniHost, command: string | undefined, o: Invocation = {}): Promise<CniOutcome> {
  const env: Env = {
    CNI_COMMAND: command, CNI_CONTAINERID: 'ctr-1', CNI_NETNS: NETNS, CNI_IFNAME: 'eth0', CNI_PATH: '/opt/cni/bin', ...o.env,
  };
  const config = { cniVersion: '1.1.0', name: 'weft.blue.db', type: 'weft', tenant: 'blue', network: 'db-net', group: 'db', ...o.config };
  const defined = Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined);
  return handleCni(host, Object.fromEntries(defined), o.stdin ?? JSON.stringify(config));
}

/** The error JSON of a failed call, checked for the shape every error must have. */
export function errorOf(out: CniOutcome): { cniVersion: string; code: number; msg: string; details?: string } {
  if (out.code !== 1 || !out.stdout.endsWith('}\n') || out.stdout.indexOf('\n') !== out.stdout.length - 1) {
    throw new Error(`expected exit 1 and one line of error JSON, got exit ${out.code}: ${out.stdout}`);
  }
  const e = JSON.parse(out.stdout) as { cniVersion: string; code: number; msg: string; details?: string };
  const keys = Object.keys(e).filter((k) => !['cniVersion', 'code', 'msg', 'details'].includes(k));
  if (keys.length || typeof e.code !== 'number' || typeof e.msg !== 'string') throw new Error(`not a CNI error: ${out.stdout}`);
  return e;
}
