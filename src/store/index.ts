export type { Store, Txn, Entry, Change, Listing, StoreOptions, WriteHealth } from './port.js';
export { DEFAULT_HISTORY_BYTES, DEFAULT_HISTORY_LIMIT } from './port.js';
export { MemoryStore } from './memory.js';
export { SqliteStore } from './sqlite.js';
// EtcdStore is imported from './etcd.js' by who opens one (server/store-open.ts, lazily): etcd's client
// (gRPC, protobufjs) costs ~0.5 s of start-up, which agents and SQLite servers never need.
export type { EtcdConnection } from './etcd.js';
export { Mutex } from './buffered.js';
