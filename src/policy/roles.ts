// Classes per role (issue 13; docs/decisions.md, sessions 55-56): a connection's verdict reads its source only
// through what ingress rules name as their peer and through the source's own identity (its egress rules,
// side and high stages), and its destination the other way round. A CIDR that rules name only as a source
// therefore never tells two destinations apart: classes that differ only in such CIDRs are one destination
// role, and pairs of roles are what a compile decides and the datapath holds (E endpoints each named by
// its own /32 in an ingress rule: E² pairs of classes, E × (a few) pairs of roles).
//
// A role's id is the smallest id of its classes (a class id, so marks stay what they were for a tenant
// whose roles are its classes, and a role id never meets another live role's on its side).
import type { Klass } from './classes.js';
import { classKey } from './classes.js';

/** One side's roles: each class's role, each role's classes, and the classes whose role id is not their own id. */
export class RoleSide {
  private readonly byKey = new Map<string, { rep: number; members: Set<number> }>();
  private readonly keyOf = new Map<number, string>();
  /** Class id → role id, for the classes whose role is another class's id (copied before a write once handed out). */
  private other = new Map<number, number>();
  private shared = false;
  /** Role ids whose pairs must be decided (a new role, or one whose id moved to it). */
  readonly fresh = new Set<number>();
  /** Role ids that stopped being one (their pairs on this side go, unless the id is a role again). */
  readonly stale = new Set<number>();
  /** The ids of the roles of enforced classes (a class's identity is part of its role: all of a role's are, or none). */
  readonly enforced = new Set<number>();

  constructor(private readonly keeps: (name: string) => boolean, private readonly isEnforced: (k: Klass) => boolean) {}

  /** A class's role id (its own id when it is its role's smallest, or unknown). */
  of(id: number): number {
    return this.other.get(id) ?? id;
  }

  isRole(id: number): boolean {
    const key = this.keyOf.get(id);
    return key !== undefined && this.byKey.get(key)?.rep === id;
  }

  get size(): number {
    return this.byKey.size;
  }

  /** Every role's id. */
  ids(): number[] {
    return [...this.byKey.values()].map((r) => r.rep);
  }

  /** Class id → role id where they differ: the same map until a role changes (then a new one). */
  snapshot(): ReadonlyMap<number, number> {
    this.shared = true;
    return this.other;
  }

  private writable(): Map<number, number> {
    if (this.shared) { this.other = new Map(this.other); this.shared = false; }
    return this.other;
  }

  /** A class came (`key`: its class key). */
  add(k: Klass, key: string): void {
    // Most classes keep every name: their class key is their role's, with nothing made.
    let role = key;
    for (const c of k.cidrs) {
      if (this.keeps(c)) continue;
      role = classKey({ ...k, cidrs: k.cidrs.filter(this.keeps) });
      break;
    }
    this.keyOf.set(k.id, role);
    const r = this.byKey.get(role);
    if (!r) {
      this.byKey.set(role, { rep: k.id, members: new Set([k.id]) });
      this.fresh.add(k.id);
      if (this.isEnforced(k)) this.enforced.add(k.id);
      return;
    }
    r.members.add(k.id);
    if (k.id > r.rep) { this.writable().set(k.id, r.rep); return; }
    this.stale.add(r.rep);
    this.renumber(r, k.id);
  }

  /** A class went. */
  remove(id: number): void {
    const role = this.keyOf.get(id);
    if (role === undefined) return;
    this.keyOf.delete(id);
    const r = this.byKey.get(role) as { rep: number; members: Set<number> };
    r.members.delete(id);
    if (this.other.has(id)) this.writable().delete(id);
    if (r.rep !== id) return;
    this.stale.add(id);
    if (r.members.size === 0) { this.byKey.delete(role); this.enforced.delete(id); return; }
    let min = Infinity;
    for (const m of r.members) if (m < min) min = m;
    this.renumber(r, min);
  }

  private renumber(r: { rep: number; members: Set<number> }, rep: number): void {
    if (this.enforced.delete(r.rep)) this.enforced.add(rep);
    r.rep = rep;
    this.fresh.add(rep);
    const w = this.writable();
    for (const m of r.members) { if (m === rep) w.delete(m); else w.set(m, rep); }
  }

  /** The fresh and stale role ids since the last call, then forgets them. */
  take(): { fresh: number[]; stale: number[] } {
    const out = { fresh: [...this.fresh].filter((id) => this.isRole(id)), stale: [...this.stale].filter((id) => !this.isRole(id)) };
    this.fresh.clear();
    this.stale.clear();
    return out;
  }
}

/**
 * Which CIDRs rules name as a source peer (ingress `fromCidr`) and as a destination peer (egress `toCidr`),
 * counted. A class's source role keeps every name but the CIDRs named only as destinations; its destination
 * role, every name but those named only as sources. A name neither count holds (a set's name, aliases.ts)
 * is kept in both: it may decide either way. A NetworkPolicy block's CIDR is counted both ways.
 */
export class CidrDirections {
  readonly from = new Map<string, number>();
  readonly to = new Map<string, number>();
  readonly keepSrc = (name: string): boolean => !this.to.has(name) || this.from.has(name);
  readonly keepDst = (name: string): boolean => !this.from.has(name) || this.to.has(name);

  count(text: string, way: 'from' | 'to', d: number): void {
    const m = this[way];
    const n = (m.get(text) ?? 0) + d;
    if (n > 0) m.set(text, n);
    else m.delete(text);
  }

  /**
   * The CIDRs that counting these deltas would move from one role to another while they stay named (their
   * classes take their roles again: engine.ts `rerole`). A CIDR that comes or goes moves its classes itself.
   */
  flips(deltas: ReadonlyMap<string, { from: number; to: number }>): string[] {
    const out: string[] = [];
    for (const [text, d] of deltas) {
      const [f0, t0] = [this.from.get(text) ?? 0, this.to.get(text) ?? 0];
      const [f1, t1] = [f0 + d.from, t0 + d.to];
      if (f0 + t0 === 0 || f1 + t1 === 0) continue;
      if ((f0 > 0) !== (f1 > 0) || (t0 > 0) !== (t1 > 0)) out.push(text);
    }
    return out;
  }
}

/** The source and destination roles of a compile (engine.ts). */
export class Roles {
  readonly ways = new CidrDirections();
  readonly src: RoleSide;
  readonly dst: RoleSide;

  /** `enforced`: whether a class is of an identity this host enforces (asked once per role, as it is made). */
  constructor(enforced: (k: Klass) => boolean) {
    this.src = new RoleSide(this.ways.keepSrc, enforced);
    this.dst = new RoleSide(this.ways.keepDst, enforced);
  }

  add(k: Klass, key: string): void {
    this.src.add(k, key);
    this.dst.add(k, key);
  }

  remove(id: number): void {
    this.src.remove(id);
    this.dst.remove(id);
  }

  /** Both sides' fresh and stale role ids since the last call (RoleSide.take). */
  take(): { src: { fresh: number[]; stale: number[] }; dst: { fresh: number[]; stale: number[] } } {
    return { src: this.src.take(), dst: this.dst.take() };
  }

  /** The pairs a whole compile decides: every source role against every enforced destination role, and every enforced source role against every destination role (an enforced pair once). */
  pairs(): number {
    const [s, d, es, ed] = [this.src.size, this.dst.size, this.src.enforced.size, this.dst.enforced.size];
    return es * d + s * ed - es * ed;
  }
}
