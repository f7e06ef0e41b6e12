import { after, before } from 'node:test';
import { execFileSync } from 'node:child_process';
import { EtcdStore } from '../store/etcd.js';
import { startEtcd, type EtcdProcess } from '../testkit/etcd.js';
import { hostLeaseSuite } from './hostlease-suite.js';

// Starts a real etcd (loopback, its own temp dir): run under the shared lock.
const available = (() => { try { execFileSync('etcd', ['--version'], { stdio: 'ignore' }); return true; } catch { return false; } })();
let etcd: EtcdProcess | undefined;
let n = 0;
before(async () => { if (available) etcd = await startEtcd(); });
after(async () => etcd?.stop());

// Each test its own keyspace; `peer` is a second server's store on it, so a heartbeat commits inside the
// GC's transaction and etcd's guard on the lease key must make the GC retry.
hostLeaseSuite('etcd', async () => {
  const prefix = `/lease-${n++}/`;
  const opened: EtcdStore[] = [await EtcdStore.open([etcd!.endpoint], prefix)];
  const [store] = opened as [EtcdStore];
  return {
    store,
    peer: async () => { const s = await EtcdStore.open([etcd!.endpoint], prefix); opened.push(s); return s; },
    close: async () => { for (const s of opened) await s.close().catch(() => undefined); },
  };
}, { skip: available ? false : 'etcd is not installed' });
