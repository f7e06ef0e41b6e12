import { after, before } from 'node:test';
import { execFileSync } from 'node:child_process';
import { EtcdStore } from './etcd.js';
import { storeContract } from './contract.js';
import { startEtcd, type EtcdProcess } from '../testkit/etcd.js';

const available = (() => { try { execFileSync('etcd', ['--version'], { stdio: 'ignore' }); return true; } catch { return false; } })();
let etcd: EtcdProcess | undefined;
let n = 0;
if (available) {
  before(async () => { etcd = await startEtcd(); });
  after(async () => etcd?.stop());
  // Each test gets its own keyspace on the one etcd, run one after another (the suite is sequential).
  storeContract('etcd', (options) => EtcdStore.open([etcd!.endpoint], `/contract-${n++}/`, options));
}
