// Classes per role (issue 13; docs/decisions.md, sessions 55-56): a connection's verdict reads its source only
// through what ingress rules name as their peer and through the source's own identity (its egress rules,
// side and high stages), and its destination the other way round. A CIDR that rules name only as a source
// therefore never tells two destinations apart: classes that differ only in such CIDRs are one destination
// role, and pairs of roles are what a compile decides and the datapath holds (E endpoints each named by
// its own /32 in an ingress rule: E² pairs of classes, E × (a few) pairs of roles).
//
// A role's id is the smallest id of its classes (a class id, so marks stay what they were for a tenant
// whose roles are its classes, and a role id never meets another live role's on its side).
import { VersionedMap } from './versioned.js';
import type { Klass } from './classes.js';
import { classKey } from './classes.js';

/** A role: its classes, and its id as the last settle gave it (-1: none yet). */
interface Role { key: string; id: number; members: Set<number>; enforced: boolean; added: number[]; lowAdded: number; idGone: boolean }

/**
 * One side's roles: each class's role, each role's classes, and the classes whose role id is not their own
 * id. Classes come and go one by one (a sweep, an endpoint, a CIDR's classes taking new roles); a role's
 * id is settled once per compile (`take`), so a change that moves thousands of classes of one role
 * costs each class once, not the role's size per class (a review's find: a rule naming a /16 around
 * 16,000 endpoints, 8 s).
 */
export class RoleSide {
  private readonly byKey = new Map<string, Role>();
  private readonly roleOf = new Map<number, Role>();
  /** Class id → role id, for the classes whose role is another class's id (handed out as snapshots: versioned.ts). */
  private readonly other = new VersionedMap<number, number>();
  /** Roles changed since the last settle. */
  private readonly dirty = new Set<Role>();
  /** The ids of the roles of enforced classes (a class's identity is part of its role: all of a role's are, or none). */
  readonly enforced = new Set<number>();
  private readonly roleIds = new Set<number>();

  constructor(private readonly keeps: (name: string) => boolean, private readonly isEnforced: (k: Klass) => boolean) {}

  /** A class's role id (its own id when it is its role's smallest, or unknown). As of the last settle. */
  of(id: number): number {
    return this.other.get(id) ?? id;
  }

  isRole(id: number): boolean {
    return this.roleIds.has(id);
  }

  get size(): number {
    return this.roleIds.size;
  }

  /** Every role's id, as of the last settle. */
  ids(): number[] {
    return [...this.roleIds];
  }

  /** Class id → role id where they differ: the same map until a role changes (then a new one). */
  snapshot(): ReadonlyMap<number, number> {
    return this.other.snapshot();
  }

  /** The key of a class's role: its class key (`key`) without the names this side drops. */
  private keyOf(k: Klass, key: string): string {
    // Most classes keep every name: their class key is their role's, with nothing made.
    for (const c of k.cidrs) if (!this.keeps(c)) return classKey({ ...k, cidrs: k.cidrs.filter(this.keeps) });
    return key;
  }

  /** A class came (`key`: its class key). */
  add(k: Klass, key: string): void {
    const role = this.keyOf(k, key);
    let r = this.byKey.get(role);
    if (!r) this.byKey.set(role, (r = { key: role, id: -1, members: new Set(), enforced: this.isEnforced(k), added: [], lowAdded: Infinity, idGone: false }));
    r.members.add(k.id);
    r.added.push(k.id);
    if (k.id < r.lowAdded) r.lowAdded = k.id;
    this.roleOf.set(k.id, r);
    this.dirty.add(r);
  }

  /** A class went. */
  remove(id: number): void {
    const r = this.roleOf.get(id);
    if (!r) return;
    this.roleOf.delete(id);
    r.members.delete(id);
    this.other.delete(id);
    if (id === r.id) r.idGone = true;
    this.dirty.add(r);
  }

  /** A class takes its role again (the names this side drops changed): moved only if its role's key did. */
  rekey(k: Klass, key: string): void {
    const r = this.roleOf.get(k.id);
    if (r && r.key === this.keyOf(k, key)) return;
    this.remove(k.id);
    this.add(k, key);
  }

  /**
   * Settles every role changed since the last call (its id: its smallest class's) and returns the role ids
   * that are new (a new role, or one whose id moved: all its pairs are to be decided) and those that are
   * no role any more (their pairs on this side go).
   */
  take(): { fresh: number[]; stale: number[] } {
    const fresh: number[] = [];
    const stale: number[] = [];
    for (const r of this.dirty) {
      const was = r.id;
      let id = was;
      if (r.members.size === 0) id = -1;
      else if (was < 0 || r.idGone) { id = Infinity; for (const m of r.members) if (m < id) id = m; }
      else if (r.lowAdded < was) id = r.lowAdded;
      if (id !== was) {
        if (was >= 0) { stale.push(was); this.roleIds.delete(was); this.enforced.delete(was); }
        if (id >= 0) {
          fresh.push(id);
          this.roleIds.add(id);
          if (r.enforced) this.enforced.add(id);
          for (const m of r.members) { if (m === id) this.other.delete(m); else this.other.set(m, id); }
        }
      } else if (r.added.length > 0) {
        for (const m of r.added) if (m !== id && this.roleOf.get(m) === r) this.other.set(m, id);
      }
      r.id = id;
      r.added = [];
      r.lowAdded = Infinity;
      r.idGone = false;
      if (id < 0) this.byKey.delete(r.key);
    }
    this.dirty.clear();
    // An id that went from one role and came to another in one settle is a role (fresh), not stale.
    return { fresh, stale: stale.filter((x) => !this.roleIds.has(x)) };
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
   * classes take their roles again: incremental.ts `recompile`, by `classesOfCidr`). A CIDR that comes or goes moves its classes itself.
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

  /** A class takes its roles again (a CIDR it holds is named on another side now): each side moves it only if its key there changed. */
  rekey(k: Klass, key: string): void {
    this.src.rekey(k, key);
    this.dst.rekey(k, key);
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
