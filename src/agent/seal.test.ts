import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Sealer } from './seal.js';

test('a seal checks only for what this agent sealed, with its own key, and breaks when any wired field changes', () => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-seal-'));
  const other = mkdtempSync(join(tmpdir(), 'weft-seal-'));
  try {
    const s = Sealer.load(dir);
    assert.equal(statSync(join(dir, 'seal.key')).mode & 0o777, 0o600);
    const ep = { id: '0123456789abcdef', tenant: 'blue', network: 'n', ifname: 'eth0', netns: '/run/netns/c1' };
    const seal = s.seal(ep);
    assert.ok(s.verify({ ...ep, seal }));
    assert.ok(Sealer.load(dir).verify({ ...ep, seal }), 'the key survives a restart');
    assert.ok(!Sealer.load(other).verify({ ...ep, seal }), 'another agent\'s key does not check it');
    for (const change of [{ netns: '/proc/1/ns/net' }, { tenant: 'red' }, { network: 'm' }, { ifname: 'eth1' }, { id: 'fedcba9876543210' }]) {
      assert.ok(!s.verify({ ...ep, ...change, seal }), JSON.stringify(change));
    }
    for (const bad of [undefined, '', 'x'.repeat(64), seal.slice(1)]) assert.ok(!s.verify({ ...ep, ...(bad !== undefined ? { seal: bad } : {}) }));
  } finally {
    rmSync(dir, { recursive: true, force: true });
    rmSync(other, { recursive: true, force: true });
  }
});
