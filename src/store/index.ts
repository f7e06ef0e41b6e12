export type { Store, Txn, Entry, Change, Listing, StoreOptions, WriteHealth } from './port.js';
export { DEFAULT_HISTORY_BYTES, DEFAULT_HISTORY_LIMIT } from './port.js';
export { MemoryStore } from './memory.js';
export { SqliteStore } from './sqlite.js';
export { EtcdStore, type EtcdConnection } from './etcd.js';
export { Mutex } from './buffered.js';
