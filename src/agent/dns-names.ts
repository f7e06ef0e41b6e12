import { nameTable, type NameTable } from '../dns/index.js';
import { namedServices } from '../datapath/index.js';
import type { DesiredState } from './state.js';

/** Each tenant's DNS names, rebuilt only after the desired state changed (queries far outnumber changes). */
export class TenantNames {
  private cache = { version: -1, tables: new Map<string, NameTable>() };

  constructor(private readonly state: DesiredState) {}

  of(tenant: string): NameTable {
    if (this.cache.version !== this.state.version) this.cache = { version: this.state.version, tables: new Map() };
    let t = this.cache.tables.get(tenant);
    if (!t) {
      const endpoints = [...this.state.endpoints.values()].filter((e) => e.tenant === tenant);
      t = nameTable(namedServices([...this.state.services.values()].filter((s) => s.tenant === tenant), endpoints), endpoints);
      this.cache.tables.set(tenant, t);
    }
    return t;
  }
}
