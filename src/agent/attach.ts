import { lstatSync, realpathSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { ERROR_CATALOGUE, WeftError, endpointId, isWeftError, parseAttachRequest, parseDetachRequest, type AttachAnswer, type AttachRequest, type DetachRequest } from '../model/index.js';
import { ApiError } from '../client/index.js';
import { CniError, type CniOutcome } from '../plugins/cni/index.js';
import type { Datapath } from '../datapath/index.js';
import type { CniEndpoints } from './cni-host.js';
import type { Endpoints } from './endpoints.js';
import type { DesiredState } from './state.js';

/** The relay request's environment entry that names one of the agent's own verbs (never forwarded by weft-cni, which sends CNI_* only). */
export const VERB_ENV = 'WEFT_VERB';
/** Interfaces `weft attach` picks from when none is named: eth1, eth2, ... */
const MAX_PICKED = 64;

export interface AttachDeps {
  host: string;
  state: DesiredState;
  datapath: Datapath;
  cni: CniEndpoints;
  endpoints: Endpoints;
}

/**
 * `weft attach` and `weft detach` on this host (pipework's job, with Weft's policy and DNS): an interface
 * added to a running container or namespace is an endpoint like a CNI one (ADD's path: allocate, converge
 * with its policy, wire), marked `attached`: runtimes' GC leaves it alone, it takes the target's default
 * route only when asked, and it goes with detach or when its namespace does (maintenance).
 */
export class Attacher {
  constructor(private readonly d: AttachDeps) {}

  /**
   * One attach per target at a time: two at once would both pick eth1, and the second ADD would take the
   * first's endpoint over (a leftover of the same id) instead of making eth2.
   */
  attach(req: AttachRequest): Promise<AttachAnswer> {
    return this.d.endpoints.with(`attach/${req.containerId}`, () => this.attachNow(req));
  }

  private async attachNow(req: AttachRequest): Promise<AttachAnswer> {
    // The path as the kernel resolves it: a link (to /proc/PID/ns/net, say) is refused, and the folders on
    // the way are resolved and checked again (attach-request.ts refuses /proc).
    let real: string;
    try {
      if (lstatSync(req.netns).isSymbolicLink()) throw new WeftError('WEFT_INVALID_VALUE', `netns: ${req.netns} is a symbolic link; give the namespace's own file (a bind mount, as ip netns attach makes)`, { field: 'netns' });
      real = join(realpathSync(dirname(req.netns)), basename(req.netns));
    } catch (e) {
      if (e instanceof WeftError) throw e;
      throw new WeftError('WEFT_INVALID_VALUE', `netns: ${req.netns} does not exist`, { field: 'netns' });
    }
    if (real !== req.netns) parseAttachRequest(JSON.stringify({ ...req, netns: real }));
    if (!this.d.datapath.containerExists(req.netns)) throw new WeftError('WEFT_INVALID_VALUE', `netns: ${req.netns} is not a network namespace`, { field: 'netns' });
    const ifname = req.ifname ?? await this.freeIfname(req.netns);
    if (req.ifname !== undefined && await this.d.datapath.containerHas(req.netns, req.ifname)) {
      throw new WeftError('WEFT_EXISTS', `ifname: the target already has an interface ${req.ifname}; detach it or name another`, { field: 'ifname' });
    }
    const r = await this.d.cni.add({
      tenant: req.tenant, network: req.network, ...(req.group ? { group: req.group } : {}), containerId: req.containerId,
      ...(req.name ? { containerName: req.name } : {}), ifname, netns: req.netns, ...(req.ip ? { ip: req.ip } : {}),
      ...(req.mac ? { mac: req.mac.toLowerCase() } : {}), labels: req.labels ?? {}, portMappings: [],
      attached: { defaultRoute: req.defaultRoute ?? false },
    });
    return {
      endpoint: endpointId(req.containerId, ifname), ifname, mac: r.mac,
      ...(r.ip !== undefined && r.prefixLength !== undefined && r.gateway !== undefined ? { ip: r.ip, prefixLength: r.prefixLength, gateway: r.gateway } : {}),
      ...(r.ip6 !== undefined ? { ip6: r.ip6, prefixLength6: r.prefixLength6 as number, gateway6: r.gateway6 as string } : {}),
      ...(r.dns ? { dns: r.dns } : {}),
    };
  }

  /** Releases the target's attached interfaces on the network (or the one named); returns their names. */
  async detach(req: DetachRequest): Promise<string[]> {
    const mine = [...this.d.state.endpoints.values()].filter((e) => e.host === this.d.host && e.attached !== undefined
      && (req.endpoint !== undefined ? e.id === req.endpoint : e.containerId === req.containerId)
      && e.tenant === req.tenant && e.network === req.network && (req.ifname === undefined || e.ifname === req.ifname));
    if (mine.length === 0) {
      if (req.endpoint !== undefined) {
        throw new WeftError('WEFT_NOT_FOUND', `endpoint ${req.endpoint} is not an interface weft attach made on network ${req.tenant}/${req.network} on this host`);
      }
      const which = req.ifname === undefined ? 'no interface' : `no interface ${req.ifname}`;
      throw new WeftError('WEFT_NOT_FOUND', `${which} of this target is attached to network ${req.tenant}/${req.network} on this host (interfaces a runtime made are its own to remove)`);
    }
    const done: string[] = [];
    for (const e of mine) {
      // Under the endpoint's lock, and only if it is still one `weft attach` made (never a runtime's).
      await this.d.endpoints.inFlight(e.id, async () => {
        const now = this.d.state.endpoints.get(e.id);
        if (now?.attached !== undefined && now.host === this.d.host) await this.d.endpoints.release(now);
      }).catch((x: Error) => {
        throw new Error(`${done.length ? `detached ${done.join(', ')}; then ` : ''}${e.ifname}: ${x.message}`);
      });
      done.push(e.ifname);
    }
    return done.sort();
  }

  private async freeIfname(netns: string): Promise<string> {
    for (let i = 1; i <= MAX_PICKED; i++) {
      const name = `eth${i}`;
      if (!(await this.d.datapath.containerHas(netns, name))) return name;
    }
    throw new WeftError('WEFT_INVALID_VALUE', `ifname: eth1 to eth${MAX_PICKED} are all taken in ${netns}; name one`, { field: 'ifname' });
  }
}

/**
 * One verb from the socket: exit status 0 and the answer's JSON, or 1 and `{code, message, field?}` (the
 * catalogue's codes, so the CLI exits as it does for the server's errors).
 */
export async function handleVerb(a: Attacher, verb: string, stdin: string): Promise<CniOutcome> {
  try {
    if (verb === 'attach') return { code: 0, stdout: `${JSON.stringify(await a.attach(parseAttachRequest(stdin)))}\n` };
    if (verb === 'detach') return { code: 0, stdout: `${JSON.stringify({ detached: await a.detach(parseDetachRequest(stdin)) })}\n` };
    throw new WeftError('WEFT_MALFORMED', `${VERB_ENV}: ${JSON.stringify(verb).slice(0, 40)} is not a verb of this agent (attach, detach)`);
  } catch (e) {
    return { code: 1, stdout: `${JSON.stringify(verbError(e))}\n` };
  }
}

function verbError(e: unknown): { code: string; message: string; field?: string; status: number } {
  if (isWeftError(e)) return { code: e.code, message: e.message, status: ERROR_CATALOGUE[e.code].status, ...(e.field ? { field: e.field } : {}) };
  if (e instanceof ApiError) {
    if (e.status === 0) return { code: 'WEFT_STORE_UNAVAILABLE', message: `the weft server cannot be reached: ${e.message}`, status: 503 };
    return { code: e.code ?? 'WEFT_INTERNAL', message: e.message, status: e.status };
  }
  // CNI's own failures keep their message; "try again" (a tenant not loaded yet, the server away) is a retry.
  if (e instanceof CniError) {
    const retry = e.code === 11 || /try again/.test(e.message);
    return { code: retry ? 'WEFT_STORE_UNAVAILABLE' : 'WEFT_INVALID_VALUE', message: e.message, status: retry ? 503 : 422 };
  }
  return { code: 'WEFT_INTERNAL', message: `internal error in the weft agent: ${e instanceof Error ? e.message : String(e)}`, status: 500 };
}
