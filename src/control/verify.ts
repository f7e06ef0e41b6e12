import { randomBytes } from 'node:crypto';
import { WeftError, notFound } from '../model/index.js';
import type { Store } from '../store/index.js';

/**
 * `weft verify` (issue 15): a request every agent sees on the watch (kind `verify`, key
 * `verify/TENANT/ID`), each agent's report of the probes it made from its own endpoints (internal keys
 * `verifyreports/TENANT/ID/HOST`, never published), read back by the server that asked. The request and
 * its reports are deleted when the server has its answer.
 */
export interface VerifyFlow { protocol: 'tcp' | 'udp'; port: number }
export interface VerifyRequest { tenant: string; id: string; flows: VerifyFlow[]; timeoutMs: number; createdAt: string }
/** One probe: source endpoint id, destination endpoint id, flow index, and whether it got through. */
export type VerifyResult = [src: string, dst: string, flow: number, ok: boolean];
export interface VerifyReport { host: string; results: VerifyResult[]; error?: string }

const requestKey = (t: string, id: string) => `verify/${t}/${id}`;
const reportPrefix = (t: string, id: string) => `verifyreports/${t}/${id}/`;

export class Verifier {
  constructor(private readonly store: Store, private readonly now: () => Date) {}

  async start(actor: string, tenant: string, flows: VerifyFlow[], timeoutMs: number): Promise<VerifyRequest> {
    const req: VerifyRequest = { tenant, id: randomBytes(8).toString('hex'), flows, timeoutMs, createdAt: this.now().toISOString() };
    await this.store.transact(actor, async (tx) => { tx.put(requestKey(tenant, req.id), req); });
    return req;
  }

  /** A host's report; refused when the request is gone (answered or never made). */
  async report(actor: string, tenant: string, id: string, report: VerifyReport): Promise<void> {
    await this.store.transact(actor, async (tx) => {
      if (!(await tx.get(requestKey(tenant, id)))) throw notFound(`verification ${tenant}/${id}`);
      tx.put(`${reportPrefix(tenant, id)}${report.host}`, report);
    });
  }

  /** The reports of `hosts`, waiting until every one is in or `deadline` (ms since the epoch) passes. */
  async collect(tenant: string, id: string, hosts: ReadonlySet<string>, deadline: number): Promise<Map<string, VerifyReport>> {
    for (;;) {
      const got = new Map((await this.store.list(reportPrefix(tenant, id))).entries.map((e) => [(e.value as VerifyReport).host, e.value as VerifyReport]));
      if ([...hosts].every((h) => got.has(h)) || Date.now() >= deadline) return got;
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async finish(actor: string, tenant: string, id: string): Promise<void> {
    await this.store.transact(actor, async (tx) => {
      tx.delete(requestKey(tenant, id));
      tx.deletePrefix(reportPrefix(tenant, id));
    });
  }
}

/** `80/tcp,53/udp` as flows; errors name `field`. */
export function parseFlows(list: readonly string[], field: string): VerifyFlow[] {
  return list.map((x, i) => {
    const m = /^([0-9]{1,5})\/(tcp|udp)$/.exec(x);
    const port = m ? Number(m[1]) : 0;
    if (!m || port < 1 || port > 65535) throw new WeftError('WEFT_INVALID_FIELD', `${field}.${i}: '${x}' is not PORT/PROTOCOL (80/tcp, 53/udp)`, { field: `${field}.${i}` });
    return { protocol: m[2] as 'tcp' | 'udp', port };
  });
}
