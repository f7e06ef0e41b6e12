import { IdleGc } from './idle-gc.js';
import { schedSpans, threadSched } from './sched.js';
import type { Logger } from 'pino';
import { Mutex } from '../store/index.js';
import { names, planHostSide, planHostTenants, planTenant, planTunnel, type Datapath, type FlowLimits, type HostPlan, type NftWrite, type Protected, type TenantPlan } from '../datapath/index.js';
import type { DesiredState } from './state.js';
import type { Endpoint } from '../model/index.js';
import { compilePolicy, filters, PolicyTooLarge, type CompiledPolicy, type PolicyState } from '../policy/index.js';
import { desiredConflists, syncConflists } from './conflists.js';
import { Admissions } from './admissions.js';
import { Lane } from './lane.js';
import { DriftChecks } from './drift.js';
import { Attached } from '../model/attached.js';

export interface ReconcilerOptions {
  host: string;
  nsPrefix: string;
  cniConfDir: string;
  agentSocket: string;
  resyncMs: number;
  /**
   * While the datapath watches for drift (Datapath.watch), how often a resync still checks every tenant
   * anyway: what no watch sees (a sysctl, an event lost with its helper) is repaired at the latest then.
   */
  safetyMs?: number;
  /** This host's underlay address, the local end of its VXLAN tunnels. */
  vtep: string;
  dnsPort: number;
  /** Flow records' limits (flows-nft.ts): every tenant table logs new connections within them; none when absent. */
  flowLog?: FlowLimits;
  /** Which endpoints the datapath may act on in their own namespace (plan.ts DesiredHostState.wired). */
  wired?: (e: Endpoint) => boolean;
  /** Full collections while idle (idle-gc.ts), made by the agent's wiring; none when absent (tests). */
  idleGc?: IdleGc;
  /** The most pairs of address classes one tenant's policy may decide here (policy/budget.ts); no limit when absent. */
  maxPolicyPairs?: number;
}

/**
 * Level-triggered: a change marks its tenant dirty, and `ensureTenant` re-reads the desired state and
 * converges the kernel to what changed in the tenant's shape. A re-list marks everything, and its pass
 * asks the datapath to check every tenant against the kernel, which is how drift (a deleted bridge, a
 * flushed table) is repaired. A periodic resync does the same, unless the datapath watches for drift:
 * then it checks only the tenants the watch reported (after a short settle, or at the next resync when
 * reports keep coming: drift.ts), plus every tenant once per `safetyMs`, so an idle agent reads nothing
 * from the kernel however many rules it holds.
 * Changes and full passes run in two lanes, so a change never waits behind a full pass over every
 * tenant: they meet only on the lock of a tenant's namespace both touch (shared with the CNI and Docker paths) and
 * on the host side's lock.
 */
export class Reconciler {
  private readonly locks = new Map<string, Mutex>();
  /** Per tenant, the shape it last converged to (see ensureTenant); lets ADD and changes skip a re-check. */
  private readonly converged = new Map<string, { shape: string; links: string; admitted: string }>();
  private readonly dirty = new Set<string>();
  private readonly full = new Lane(() => this.pass(true), (e) => this.failed(e));
  private readonly changes = new Lane(() => this.pass(false), (e) => this.failed(e));
  /** The host table, its DNS listeners and the conflists: one pass (or ADD) at a time converges them. */
  private readonly hostLock = new Mutex();
  private timer: NodeJS.Timeout | undefined;
  lastError: string | undefined;
  private lastWarned = -Infinity;
  /** Which tenants a full pass checks: all, or those the datapath's drift watch reported. */
  private readonly drift: DriftChecks;

  /** Passes started, for tests and the host's status: all, and full ones. */
  get passes(): number {
    return this.full.passes + this.changes.passes;
  }

  get fullPasses(): number {
    return this.full.passes;
  }

  constructor(
    private readonly state: DesiredState,
    private readonly dp: Datapath,
    /** Converges the host namespace: the host table for every tenant's plan, the other hosts, the tunnel. */
    private readonly hostSide: (h: HostPlan) => Promise<void>,
    private readonly opts: ReconcilerOptions,
    private readonly log: Logger,
    private readonly protect: () => Protected = () => new Set(),
    private readonly afterFullPass: () => Promise<void> = async () => undefined,
  ) {
    this.drift = new DriftChecks(() => this.full.schedule(), log, opts.resyncMs, opts.safetyMs);
    this.idleGc = opts.idleGc ?? new IdleGc(undefined, log);
  }

  /** Collects garbage after a pass and a quiet moment, not in the middle of the next change (idle-gc.ts). */
  private readonly idleGc: IdleGc;

  start(): void {
    this.drift.start(this.dp);
    this.timer = setInterval(() => this.full.schedule(), this.opts.resyncMs);
    this.mark(undefined);
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.idleGc.stop();
    this.drift.stop();
    await Promise.all([this.full.close(), this.changes.close()]);
    await this.dp.close?.();
  }

  private lock(key: string): Mutex {
    let m = this.locks.get(key);
    if (!m) this.locks.set(key, (m = new Mutex()));
    return m;
  }

  /**
   * What a tenant's convergence is serialised by: its namespace, which a deleted tenant's removal is
   * serialised by too (a tenant made since takes the lowest free id, so its namespace may be the deleted
   * one's). A tenant not known, or without a whole-number id, by its name (it is not planned).
   */
  private lockKey(tenant: string): string {
    const t = this.state.tenants.get(tenant);
    return t && Number.isSafeInteger(t.id) ? names.tenantNs(this.opts.nsPrefix, t.id) : `tenant ${tenant}`;
  }

  /** Whether a tenant of the desired state has this namespace. */
  private isTenantNs(ns: string): boolean {
    for (const t of this.state.tenants.values()) if (names.tenantNs(this.opts.nsPrefix, t.id) === ns) return true;
    return false;
  }

  /** A change of one tenant (its own lane), or of everything (undefined: a full pass). */
  mark(tenant: string | undefined): void {
    if (tenant === undefined) {
      this.drift.all();
      return this.full.schedule();
    }
    this.dirty.add(tenant);
    this.idleGc.asked();
    this.changes.schedule();
  }

  /** Runs `fn` (work outside the passes: an ADD's wiring) with no idle collection while it runs. */
  async working<T>(fn: () => Promise<T>): Promise<T> {
    this.idleGc.busy();
    try {
      return await fn();
    } finally {
      this.idleGc.done();
    }
  }

  /** Runs `fn` with no full pass (resync) under way or starting: the kernel stays as `fn` leaves it. */
  withoutResync<T>(fn: () => Promise<T>): Promise<T> {
    return this.full.exclusive(fn);
  }

  private failed(e: Error): void {
    this.lastError = `pass: ${e.message}`;
    this.log.warn({ err: e.message }, 'reconcile pass failed; retrying at the next resync');
  }

  plan(tenant: string): TenantPlan | undefined {
    const t = this.state.tenants.get(tenant);
    return t && planTenant(this.view(), t);
  }

  /**
   * What plans are made from. The host side's (`forHost`) takes a tenant whose policy is refused here with
   * no policy: the host side does not read it, and the tenant's published ports, DNS listener and routes
   * must not go with its policy (after a restart there is no last plan to keep). Its tables are planned
   * only from the view without it, where the refusal stands.
   */
  private view(forHost = false) {
    return {
      ...this.state.hostView(this.opts.host, this.opts.nsPrefix, this.opts.vtep), compile: forHost ? this.compileForHost : this.compile, dnsPort: this.opts.dnsPort,
      ...(this.opts.flowLog ? { flowLog: this.opts.flowLog } : {}), ...(this.opts.wired ? { wired: this.opts.wired } : {}),
    };
  }

  /**
   * Compiles a tenant's policy only when one of its inputs changed (their revisions are the key):
   * a resync must not recompile 50,000 rules every two seconds.
   */
  private readonly compiled = new Map<string, { key: string; value: CompiledPolicy }>();
  /**
   * A tenant's policy refused by the budget, by the inputs' keys (the last few: a failed ADD adds an
   * endpoint and takes it away again): refused again without compiling until they change.
   */
  private readonly refused = new Map<string, Map<string, PolicyRefused>>();
  private readonly compile = (all: PolicyState): CompiledPolicy => {
    // Only policies some group holds can decide anything; the others' rules (their CIDRs) would still
    // split address classes, and a change to one of them would recompile the tenant: measured, a rule
    // toggled in a tenant holding 50,000 unattached rules cost a 1-2 s compile each time.
    const attached = new Set(all.groups.flatMap((g) => g.policies));
    const s = { ...all, policies: all.policies.filter((p) => attached.has(p.name)) };
    const rev = (xs: ReadonlyArray<{ revision: number }>) => xs.map((x) => x.revision).join(',');
    const np = (xs: ReadonlyArray<{ revision?: number; name: string }> = []) => xs.map((x) => `${x.name}:${x.revision ?? '?'}`).join(',');
    const key = [s.tenant.revision, s.tenant.defaultAction, rev(s.networks), rev(s.groups), rev(s.policies),
      endpointsKey(s.endpoints), np(s.netpol?.policies), np(s.netpol?.namespaces), np(s.netpol?.anps), s.netpol?.banp?.revision ?? ''].join('|');
    const hit = this.compiled.get(s.tenant.name);
    if (hit && hit.key === key) return hit.value;
    const no = this.refused.get(s.tenant.name)?.get(key);
    if (no) throw no;
    const t0 = performance.now();
    let value: CompiledPolicy;
    try {
      // The last compile keeps classes' marks stable, so a rule change is a few map elements.
      const budget = this.opts.maxPolicyPairs;
      value = compilePolicy({ ...s, ...(hit ? { previous: hit.value } : {}), ...(budget !== undefined ? { budget } : {}) });
    } catch (e) {
      if (!(e instanceof PolicyTooLarge)) throw e;
      // The tenant's tables are not planned: they stay as last applied, and its ADDs here are refused.
      const error = new PolicyRefused(`${e.message} (the limit is weft agent --max-policy-pairs, ${e.budget.toLocaleString('en-US')} on this host); its tables here stay as last applied`);
      const keys = this.refused.get(s.tenant.name) ?? new Map<string, PolicyRefused>();
      keys.set(key, error);
      if (keys.size > REFUSALS_KEPT) keys.delete(keys.keys().next().value as string);
      this.refused.set(s.tenant.name, keys);
      this.log.warn({ tenant: s.tenant.name, pairs: e.pairs, classes: e.classes, limit: e.budget }, 'policy refused: too many pairs of address classes for this host');
      throw error;
    }
    this.refused.delete(s.tenant.name);
    const ms = Math.round(performance.now() - t0);
    // A compile blocks the agent's event loop (ADDs, DNS, every other tenant) for as long as it runs.
    if (ms >= SLOW_COMPILE_MS) this.log.warn({ tenant: s.tenant.name, ms, rules: value.ruleCount }, 'policy compile was slow');
    this.compiled.set(s.tenant.name, { key, value });
    return value;
  };

  /** `compile`, but a refused policy is none (the host side's view: see `view`). */
  private readonly compileForHost = (all: PolicyState): CompiledPolicy => {
    try {
      return this.compile(all);
    } catch (e) {
      if (!(e instanceof PolicyRefused)) throw e;
      // No group holds a rule: the compile's first return, no class made (and no NetworkPolicy read).
      return compilePolicy({ tenant: all.tenant, networks: all.networks, groups: all.groups.map((g) => ({ ...g, policies: [] })), policies: [], endpoints: all.endpoints, ...(all.host !== undefined ? { host: all.host } : {}) });
    }
  };

  /** Applies the host side now (published ports must work when the CNI ADD returns). */
  async ensureHostNow(): Promise<void> {
    await this.hostLock.run(() => this.hostSide(this.hostPlan().host));
  }

  /** Each tenant's last plan that could be made, by name: what its host side keeps while its objects cannot be planned. */
  private readonly lastPlans = new Map<string, TenantPlan>();

  /**
   * The host side's plan. A tenant whose plan throws (an object this agent cannot read) keeps its last
   * plan, or none, and its namespace (`keep`): one bad network stopped the host side of every tenant
   * (host table, DNS listeners, routes; an ADD with published ports in any tenant then failed).
   */
  private hostPlan(): { host: HostPlan; keep: Set<string> } {
    const view = this.view(true);
    const { plans, failed } = planHostTenants(view);
    for (const p of plans) this.lastPlans.set(p.tenant, p);
    for (const name of this.lastPlans.keys()) if (!this.state.tenants.has(name)) this.lastPlans.delete(name);
    const kept: TenantPlan[] = [];
    for (const f of failed) {
      // The same tenant only: one deleted and made again under its name has a new id (its old plan names
      // another namespace, perhaps a tenant that took the old id since).
      const found = this.lastPlans.get(f.tenant.name);
      const last = found?.id === f.tenant.id ? found : undefined;
      this.log.warn({ tenant: f.tenant.name, err: f.error.message, kept: last !== undefined }, 'tenant cannot be planned: its host side stays as last planned');
      if (last) kept.push(last);
    }
    const tenants = kept.length ? [...plans, ...kept].sort((a, b) => a.id - b.id) : plans;
    return { host: planHostSide(view, tenants), keep: new Set(failed.map((f) => names.tenantNs(this.opts.nsPrefix, f.tenant.id))) };
  }

  /**
   * Converges one tenant now. With `fast` (ADD, Docker's CreateEndpoint and Join, change-triggered passes)
   * it skips the kernel re-check when the tenant's shape (uplink, bridges and overlay, ports, policy,
   * services, marks, shaping, DNS) is what it last converged to: drift between resyncs is the resync's job,
   * and ADD falls back to a full ensure if wiring fails. When only the tables' part of the shape changed,
   * only the tables are written.
   */
  async ensureTenant(tenant: string, fast = false, opts: { deferAdmit?: boolean } = {}): Promise<TenantPlan | undefined> {
    this.idleGc.busy();
    try {
      return await this.ensureTenantLocked(tenant, fast, opts);
    } finally {
      this.idleGc.done();
    }
  }

  private async ensureTenantLocked(tenant: string, fast: boolean, opts: { deferAdmit?: boolean }): Promise<TenantPlan | undefined> {
    for (;;) {
      const key = this.lockKey(tenant);
      const out = await this.lock(key).run(async () => (this.lockKey(tenant) === key ? this.converge(tenant, fast, opts) : MOVED));
      // The tenant was deleted and made again with another id while this waited: its new namespace's lock.
      if (out !== MOVED) return out;
    }
  }

  /** ensureTenant's work, under the lock of the tenant's namespace (lockKey). */
  private async converge(tenant: string, fast: boolean, opts: { deferAdmit?: boolean }): Promise<TenantPlan | undefined> {
    const tp = performance.now();
    // The main thread's CPU and run-queue time, for the debug line (a slow change: own work or kept waiting?).
    const sched = this.log.isLevelEnabled('debug');
    const s0 = sched ? threadSched() : undefined;
    const p = this.plan(tenant);
    const planMs = Math.round(performance.now() - tp);
    const s1 = sched ? threadSched() : undefined;
    if (!p) return p;
    this.drift.seen(p.ns, tenant);
    // The compiled policy is part of the shape: a new endpoint changes the address classes, and its
    // policy must be in the kernel before ADD returns (fail closed).
    // By identity: the compile cache hands back the same object while the policy's inputs stand, and
    // serialising 50,000 rules' entries on every pass cost more than the rest of the pass.
    // Without rules only the fallback counts: a new endpoint then changes no policy.
    const rules = p.policy && filters(p.policy);
    const pol = p.policy && (rules ? policyToken(p.policy) : p.policy.fallback);
    const shape = JSON.stringify([p.ns, p.uplink, p.bridges, p.ports, pol, p.services, p.dscp, p.qos, p.dns]);
    // What the links follow: when only the rest changed (a rule, a service, a port), only the tables are
    // written, without reading the links (an exec that is most of a rule change's latency here).
    const links = JSON.stringify([p.ns, p.uplink, p.bridges, p.qos, p.endpoints]);
    // Which endpoints may send from their ports: a new endpoint changes only this, and it must be in
    // the kernel before the endpoint is wired (its first frames would be dropped as spoofed).
    const admitted = JSON.stringify(p.endpoints.map((e) => [e.veth, e.ip, e.mac, e.ip6 ?? '']));
    const last = this.converged.get(tenant);
    if (fast && last?.shape === shape) {
      this.converged.set(tenant, { shape, links, admitted });
      if (last.admitted !== admitted) {
        const done = this.admissions.request(p.ns, p);
        this.lastAdmission.set(tenant, done);
        // Deferred: the ADD's wiring waits for it (admitted()); a failure is its error there.
        if (opts.deferAdmit) done.catch(() => undefined);
        else await done;
      }
      return p;
    }
    // Admissions still being applied to its namespace finish before the tenant is converged in full: its
    // own, or a deleted tenant's whose id (and so namespace) it took, which would otherwise write that
    // tenant's ports over this one's after it (its endpoints' frames then dropped as spoofed).
    await this.admissions.idle(p.ns);
    this.lastAdmission.delete(tenant);
    this.converged.delete(tenant);
    const t0 = performance.now();
    const tablesOnly = fast && last?.links === links && this.dp.ensureTables !== undefined;
    const nft = tablesOnly && this.dp.ensureTables ? await this.dp.ensureTables(p) : await this.dp.ensureTenant(p, this.protect());
    const ms = Math.round(performance.now() - t0);
    if (nft === 'replace-after-refused-delta') this.log.warn({ tenant, ms, reason: this.dp.lastRefusal }, 'nft refused a delta; replaced the table');
    else if (nft !== 'unchanged') this.log.debug({ tenant, nft, ms, planMs, sched: schedSpans(s0, s1, sched ? threadSched() : undefined), decided: p.policy?.decided, write: roundedWrite(this.dp.lastWrite?.(p.ns)) }, 'tenant converged');
    this.converged.set(tenant, { shape, links, admitted });
    return p;
  }

  /** Ports admitted by the fast path, coalesced per namespace; a failure makes the next pass converge its tenant in full. */
  private readonly admissions = new Admissions((p) => this.dp.admit(p), (p) => this.converged.delete(p.tenant));

  /** Per tenant, the last admission requested: it holds every port asked for before it. */
  private readonly lastAdmission = new Map<string, Promise<void>>();

  /** Resolves once the ports of the tenant's last fast-path convergence are admitted; rejects if that failed. */
  admitted(tenant: string): Promise<void> {
    return this.lastAdmission.get(tenant) ?? Promise.resolve();
  }

  /** A full pass (every tenant checked against the kernel) or a change pass (the dirty tenants' shapes). */
  private async pass(all: boolean): Promise<void> {
    this.idleGc.busy();
    const tenants = all ? this.drift.take([...this.state.tenants.keys()]) : [...this.dirty];
    if (!all) this.dirty.clear();
    const errors: string[] = [];
    const t0 = performance.now();
    const at: number[] = [];
    // Conflists are configuration only (an ADD through one converges its tenant itself): written first,
    // a new group is usable at once instead of after every dirty tenant's kernel work (seconds under load).
    try {
      syncConflists(this.opts.cniConfDir, desiredConflists([...this.state.networks.values()], [...this.state.groups.values()], this.opts.agentSocket));
    } catch (e) {
      errors.push(`conflists: ${(e as Error).message}`);
    }
    // The tunnel is up before any overlay is pointed into it, and taken down only after none is.
    at.push(performance.now());
    const tunnel = planTunnel(this.view());
    if (tunnel) await this.tunnelStep(tunnel, errors);
    at.push(performance.now());
    for (const t of tenants) {
      try {
        await this.ensureTenant(t, !all);
      } catch (e) {
        errors.push(`tenant ${t}: ${(e as Error).message}`);
        // Retried by the next change pass or, at the latest, the next full one; a refused policy only
        // when its inputs change (which marks the tenant).
        if (e instanceof PolicyRefused) continue;
        if (!all) this.dirty.add(t);
        else this.drift.retry(t);
      }
    }
    at.push(performance.now());
    try {
      const { plans, keep } = await this.hostLock.run(async () => {
        const { host: h, keep } = this.hostPlan();
        await this.hostSide(h);
        if (!h.tunnel) await this.tunnelStep(undefined, errors);
        return { plans: h.tenants, keep };
      });
      if (all) await this.removeStaleTenants(plans, keep);
      if (all) await this.afterFullPass();
    } catch (e) {
      errors.push(`host: ${(e as Error).message}`);
    }
    const error = errors.length ? errors.join('; ') : undefined;
    // The same errors pass after pass (a refused policy, a host that cannot be converged) are said once a
    // minute, not at every resync.
    const now = performance.now();
    if (error !== undefined && (error !== this.lastError || now - this.lastWarned >= REPEAT_WARNING_MS)) {
      this.log.warn({ errors }, 'reconcile incomplete; retrying at the next resync');
      this.lastWarned = now;
    }
    this.lastError = error;
    const ms = (a: number, b: number) => Math.round(b - a);
    const end = performance.now();
    this.log.debug({ all, tenants: tenants.length, conflists: ms(t0, at[0] as number), tunnel: ms(at[0] as number, at[1] as number), ensure: ms(at[1] as number, at[2] as number), hostSide: ms(at[2] as number, end) }, 'pass');
    this.idleGc.passed(!all || tenants.length > 0);
  }

  /** One tunnel convergence at a time: the pass's, and tunnelNow()'s outside the pass queue. */
  private readonly tunnelLock = new Mutex();

  /**
   * Brings an encryption tunnel that is planned up to date now, without waiting for a pass: a peer's new
   * key (a rotation) or address must not wait behind a full pass over every tenant, or traffic with that
   * peer stops for as long. Taking a tunnel down stays in the pass's order (after the overlays left it).
   */
  async tunnelNow(): Promise<void> {
    const t = planTunnel(this.view());
    if (!t) return;
    await this.tunnelLock.run(() => this.dp.ensureTunnel(t));
  }

  private async tunnelStep(t: Parameters<Datapath['ensureTunnel']>[0], errors: string[]): Promise<void> {
    try {
      await this.tunnelLock.run(() => this.dp.ensureTunnel(t));
    } catch (e) {
      // Encrypted overlays then reach no one (fail closed); the error is in the host's status.
      errors.push(`tunnel: ${(e as Error).message}`);
    }
  }

  /** Namespaces with our prefix whose tenant no longer exists are removed with their uplink. */
  private async removeStaleTenants(plans: readonly TenantPlan[], keep: ReadonlySet<string> = new Set()): Promise<void> {
    // A deleted tenant's last compile (tens of MB at 50,000 rules) or refusal is not kept for a name that may never come back.
    // Nor its last shape: a tenant made again under its name, id and shape after its namespace went would
    // take the fast path (nothing to do) into a namespace no longer there.
    for (const m of [this.compiled, this.refused, this.converged, this.lastAdmission]) for (const name of m.keys()) if (!this.state.tenants.has(name)) m.delete(name);
    const wanted = new Set([...plans.map((p) => p.ns), ...keep]);
    // A desired state with no tenant at all is far likelier a server restored or re-initialised (or pointed
    // at the wrong store) than a cluster whose last tenant was deleted: removing every namespace would cut
    // off every container on the host. Left for an operator (weft agent uninstall), said every pass.
    if (plans.length === 0 && this.state.tenants.size === 0) {
      const present = await this.dp.presentTenants();
      if (present.length) this.log.warn({ namespaces: present.map((p) => p.ns) }, 'the desired state holds no tenant: not removing any tenant namespace');
      return;
    }
    for (const { ns, id } of await this.dp.presentTenants()) {
      if (wanted.has(ns)) continue;
      await this.lock(ns).run(async () => {
        // Looked at again under the namespace's lock: a tenant made since the plans were made may have this
        // namespace (the deleted tenant's id, freed), and is converged under the same lock.
        if (this.isTenantNs(ns)) return;
        // An admission of the deleted tenant still being applied finishes first (it writes this namespace).
        await this.admissions.idle(ns);
        this.log.info({ ns }, 'removing the namespace of a deleted tenant');
        await this.dp.removeTenant(ns, id);
      });
    }
  }
}

/** A convergence that found its tenant's namespace changed while it waited for the lock. */
const MOVED = Symbol('moved');

/** A tenant's policy refused on this host (policy/budget.ts): its tables are not planned until its inputs change. */
export class PolicyRefused extends Error {}

/** How many refused states of one tenant are remembered. */
const REFUSALS_KEPT = 4;

/** How often the same reconcile errors are logged again. */
const REPEAT_WARNING_MS = 60_000;

/** A compile this slow is logged as a warning (it held up everything else the agent does). */
const SLOW_COMPILE_MS = 1000;

/**
 * The endpoints' part of a compile's key, made once per list: a view's lists stand while the state does
 * (state.ts hostView, plan.ts), and an idle resync plans every tenant, which built this string for each
 * of them every two seconds (~1.2 MB at 50,000 endpoints).
 */
const endpointKeys = new WeakMap<readonly Endpoint[], string>();
function endpointsKey(eps: readonly Endpoint[]): string {
  let k = endpointKeys.get(eps);
  if (k === undefined) endpointKeys.set(eps, (k = eps.map((e) => `${e.id}:${e.revision}`).join(',')));
  return k;
}

const tokens = new Attached<CompiledPolicy, number>('token');
let nextToken = 0;

/** A compiled policy's identity as a number: equal while the compile cache returns the same object. */
function policyToken(p: CompiledPolicy): number {
  let t = tokens.get(p);
  if (t === undefined) tokens.set(p, (t = nextToken++));
  return t;
}

/** A table write for the log, in whole bytes and tenths of a millisecond. */
function roundedWrite(w: NftWrite | undefined): NftWrite | undefined {
  const r = (x: number) => Math.round(x * 10) / 10;
  return w && { how: w.how, bytes: w.bytes, diffMs: r(w.diffMs), commitMs: r(w.commitMs) };
}

