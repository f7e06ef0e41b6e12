import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Group, Network } from '../model/index.js';
import { desiredConflists, syncConflists } from './conflists.js';

const meta = { revision: 1, createdAt: '', updatedAt: '' };
const net = (tenant: string, name: string): Network => ({ ...meta, tenant, name, subnet: '10.0.0.0/24', gateway: '10.0.0.1', encap: 'vxlan', vni: 1, mtu: 1450 });
const group = (tenant: string, name: string, network: string): Group => ({ ...meta, tenant, name, network, policies: [], labels: {} });
const plugin = (text: string | undefined) => JSON.parse(text ?? '{}').plugins[0];

test('every group and network gets its dotted conflist; the short one only while no other object shares it', () => {
  const nets = [net('acme', 'n1'), net('acme-prod', 'n2')];
  const alone = desiredConflists(nets, [group('acme', 'prod-db', 'n1')], '/run/weft/agent.sock');
  assert.deepEqual([...alone.keys()].sort(), ['weft-acme-n1', 'weft-acme-prod-db', 'weft-acme-prod-n2', 'weft.acme-prod.n2', 'weft.acme.n1', 'weft.acme.prod-db']);
  const both = desiredConflists(nets, [group('acme', 'prod-db', 'n1'), group('acme-prod', 'db', 'n2')], '/run/weft/agent.sock');
  assert.deepEqual([...both.keys()].sort(), ['weft-acme-n1', 'weft-acme-prod-n2', 'weft.acme-prod.db', 'weft.acme-prod.n2', 'weft.acme.n1', 'weft.acme.prod-db'],
    'weft-acme-prod-db is nobody\'s while two objects would have it');
  assert.deepEqual(plugin(both.get('weft.acme.prod-db')), { type: 'weft', tenant: 'acme', network: 'n1', group: 'prod-db', agentSocket: '/run/weft/agent.sock', capabilities: { portMappings: true, ips: true, mac: true } });
  assert.equal(plugin(both.get('weft.acme-prod.db')).tenant, 'acme-prod');
  assert.equal(JSON.parse(both.get('weft.acme.prod-db') ?? '{}').name, 'weft.acme.prod-db', 'the name inside is what runtimes select');
  const reversed = desiredConflists([...nets].reverse(), [group('acme-prod', 'db', 'n2'), group('acme', 'prod-db', 'n1')], '/run/weft/agent.sock');
  assert.deepEqual([...reversed.keys()].sort(), [...both.keys()].sort(), 'the order objects arrive in changes nothing');
});

test('sync removes a short conflist once it turns ambiguous, and never touches other plugins\' files', () => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-conflists-'));
  try {
    const nets = [net('acme', 'n1'), net('acme-prod', 'n2')];
    writeFileSync(join(dir, 'weft-other.conflist'), '{"plugins":[{"type":"bridge"}]}');
    syncConflists(dir, desiredConflists(nets, [group('acme', 'prod-db', 'n1')], '/s'));
    assert.ok(readdirSync(dir).includes('weft-acme-prod-db.conflist'));
    const r = syncConflists(dir, desiredConflists(nets, [group('acme', 'prod-db', 'n1'), group('acme-prod', 'db', 'n2')], '/s'));
    assert.deepEqual(r, { written: 1, removed: 1 });
    assert.deepEqual(readdirSync(dir).sort(), ['weft-acme-n1.conflist', 'weft-acme-prod-n2.conflist', 'weft-other.conflist', 'weft.acme-prod.db.conflist', 'weft.acme-prod.n2.conflist', 'weft.acme.n1.conflist', 'weft.acme.prod-db.conflist']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a resync reads only conflists that changed since, and any change to one is found: edited (even to the same size and time), replaced, removed', () => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-conflists-'));
  try {
    const wanted = desiredConflists([net('acme', 'n1')], [], '/s');
    const file = join(dir, 'weft.acme.n1.conflist');
    syncConflists(dir, wanted);
    const good = readFileSync(file, 'utf8');
    assert.deepEqual(syncConflists(dir, wanted), { written: 0, removed: 0 }, 'nothing changed: nothing written');
    // Edited in place to the same length, its modification time put back.
    const { mtime, atime } = statSync(file);
    writeFileSync(file, good.replace('"weft"', '"wefx"'));
    utimesSync(file, atime, mtime);
    assert.equal(syncConflists(dir, wanted).written, 1, 'the edited one rewritten');
    assert.equal(readFileSync(file, 'utf8'), good);
    writeFileSync(`${file}.new`, '{"plugins":[{"type":"bridge"}]}');
    renameSync(`${file}.new`, file);
    assert.equal(syncConflists(dir, wanted).written, 1, 'replaced by another file: rewritten');
    rmSync(file);
    assert.equal(syncConflists(dir, wanted).written, 1, 'removed: written again');
    assert.equal(readFileSync(file, 'utf8'), good);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
