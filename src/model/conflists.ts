import { NAME_PATTERN } from './schemas.js';

/**
 * The names runtimes select Weft's CNI networks by (`podman run --network NAME`). Weft names are DNS
 * labels, which never hold a dot, so `weft.<tenant>.<name>` names one object whatever the names are; CNI
 * and podman both allow dots in a network name (`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`). The short
 * `weft-<tenant>-<name>` reads better but is ambiguous: tenant `acme` group `prod-db` and tenant
 * `acme-prod` group `db` are both `weft-acme-prod-db`. So the short name exists only while exactly one
 * object has it, decided from the whole desired state (the same on every host), never first come first
 * served: while two share it, neither gets it, and a runtime asking for it finds no network instead of
 * another tenant's.
 */
export const conflistName = (tenant: string, name: string): string => `weft.${tenant}.${name}`;

export const shortConflistName = (tenant: string, name: string): string => `weft-${tenant}-${name}`;

const NAME = new RegExp(NAME_PATTERN);

/** The other (tenant, name) pairs with the same short name: `tenant-name` split at each other dash. */
export function shortNameTwins(tenant: string, name: string): Array<{ tenant: string; name: string }> {
  const joined = `${tenant}-${name}`;
  const out: Array<{ tenant: string; name: string }> = [];
  for (let i = joined.indexOf('-'); i >= 0; i = joined.indexOf('-', i + 1)) {
    const t = joined.slice(0, i);
    const n = joined.slice(i + 1);
    if (t !== tenant && NAME.test(t) && NAME.test(n)) out.push({ tenant: t, name: n });
  }
  return out;
}

/** Short names held by more than one of `objects` (groups and networks of every tenant). */
export function ambiguousShortNames(objects: Iterable<{ tenant: string; name: string }>): Set<string> {
  const seen = new Set<string>();
  const twice = new Set<string>();
  for (const o of objects) {
    const s = shortConflistName(o.tenant, o.name);
    if (seen.has(s)) twice.add(s);
    seen.add(s);
  }
  return twice;
}
