// Classes per role (issue 13; docs/decisions.md, session 55): a connection's verdict reads its source only
// through what ingress rules name as their peer and through the source's own identity (its egress rules,
// side and high stages), and its destination the other way round. A CIDR that rules name only as a source
// therefore never tells two destinations apart: classes that differ only in such CIDRs are one destination
// role, and pairs of roles are what a compile needs, not pairs of classes (E endpoints each named by its
// own /32 in an ingress rule: E² pairs of classes, E × (a few) pairs of roles).
// Not yet used by the compile or the datapath: this is the projection and the test of its premise.
import type { Klass } from './classes.js';

/** The CIDRs (by their names in classes) that rules name as a source peer (`from`) and as a destination peer (`to`). */
export interface CidrRoles {
  from: ReadonlySet<string>;
  to: ReadonlySet<string>;
}

export interface Roles {
  /** Each class's source role and destination role, by class id. */
  src: Map<number, number>;
  dst: Map<number, number>;
  /** One class of each role, by role id: every class of a role decides alike in that role. */
  srcRep: Map<number, Klass>;
  dstRep: Map<number, Klass>;
}

/**
 * The source and destination roles of `classes`. A class's source role keeps all it is but the CIDRs
 * named only as destinations; its destination role, all but those named only as sources. A CIDR name
 * neither list holds (a NetworkPolicy block, a set's name) is kept in both: it may decide either way.
 */
export function rolesOf(classes: readonly Klass[], cidrs: CidrRoles): Roles {
  const src = project(classes, (name) => !cidrs.to.has(name) || cidrs.from.has(name));
  const dst = project(classes, (name) => !cidrs.from.has(name) || cidrs.to.has(name));
  return { src: src.of, dst: dst.of, srcRep: src.rep, dstRep: dst.rep };
}

function project(classes: readonly Klass[], keeps: (cidr: string) => boolean): { of: Map<number, number>; rep: Map<number, Klass> } {
  const ids = new Map<string, number>();
  const of = new Map<number, number>();
  const rep = new Map<number, Klass>();
  for (const k of classes) {
    const key = JSON.stringify([k.group ?? null, k.network ?? null, k.endpoint, k.cidrs.filter(keeps), k.np ?? null]);
    let id = ids.get(key);
    if (id === undefined) {
      ids.set(key, (id = ids.size));
      rep.set(id, k);
    }
    of.set(k.id, id);
  }
  return { of, rep };
}
