import { nameTable, type NameTable } from '../dns/index.js';
import type { DesiredState } from './state.js';

/** Each tenant's DNS names, rebuilt only after the desired state changed (queries far outnumber changes). */
export class TenantNames {
  private cache = { version: -1, tables: new Map<string, NameTable>() };

  constructor(private readonly state: DesiredState) {}

  of(tenant: string): NameTable {
    if (this.cache.version !== this.state.version) this.cache = { version: this.state.version, tables: new Map() };
    let t = this.cache.tables.get(tenant);
    if (!t) {
      t = nameTable([...this.state.services.values()].filter((s) => s.tenant === tenant), [...this.state.endpoints.values()].filter((e) => e.tenant === tenant));
      this.cache.tables.set(tenant, t);
    }
    return t;
  }
}
