import { test } from 'node:test';
import assert from 'node:assert/strict';
import { renderTable } from './output.js';
import { age, bytes, hostColumns, type HostRow } from './commands/host.js';

const NOW = Date.parse('2026-11-23T10:00:00Z');
const at = (secondsAgo: number) => new Date(NOW - secondsAgo * 1000).toISOString();
const status = (mode: 'kernel' | 'wireguard-go', peers: number, handshaken: number, oldest: number | undefined, rxBytes: number, txBytes: number) =>
  ({ mode, peers, handshaken, ...(oldest === undefined ? {} : { oldestHandshakeAt: at(oldest) }), rxBytes, txBytes });

test('ages and byte counts read like kubectl and wg show', () => {
  assert.deepEqual([0, 42_000, 59_999, 60_000, 3_599_000, 3_600_000, 172_799_000, 172_800_000, -5_000].map(age), ['0s', '42s', '59s', '1m', '59m', '1h', '47h', '2d', '0s']);
  assert.deepEqual([0, 1023, 1024, 1_258_291, 3_565_158, 5 * 2 ** 40, 2 ** 60].map(bytes), ['0 B', '1023 B', '1.0 KiB', '1.2 MiB', '3.4 MiB', '5.0 TiB', '1024.0 PiB']);
});

test('host ls rows: tunnel, mode or error, short key, the oldest handshake, summed traffic; dashes where nothing is known', () => {
  const key = 'q83vEjRWeJq8zN7vEjRWeJq8zN7vEjRWeJq8zN7vEjQ=';
  const rows: HostRow[] = [
    { name: 'node1', state: 'up', vtepIp: '192.0.2.1', tunnelIp: '100.64.0.1', wgPublicKey: key, agentVersion: '0.1.0', lastSeen: at(3),
      wireguard: status('wireguard-go', 2, 2, 42, 1_258_291, 3_565_158),
      identity: { joinedAt: at(86_400), addedBy: 'admin', certExpiresAt: '2026-12-23T10:00:00.000Z' } },
    { name: 'node2', state: 'up', vtepIp: '192.0.2.2', tunnelIp: '100.64.0.2', wgPublicKey: key, lastSeen: at(1),
      wireguard: status('kernel', 2, 1, 200, 10, 168) },
    { name: 'node3', state: 'down', vtepIp: '192.0.2.3', tunnelIp: '100.64.0.3', lastSeen: at(600),
      wireguard: { ...status('wireguard-go', 0, 0, undefined, 0, 0), error: 'wireguard-go: not installed' } },
    { name: 'node4', state: 'invited', identity: { addedBy: 'admin', joinExpiresAt: '2026-11-23T11:00:00.000Z' } },
  ];
  assert.equal(renderTable(rows, hostColumns(NOW)), [
    'HOST   STATE    VTEP       TUNNEL      WG            KEY        HANDSHAKE  TRAFFIC          AGENT  LAST SEEN                 JOINED                                                  CERT EXPIRES',
    'node1  up       192.0.2.1  100.64.0.1  wireguard-go  q83vEjRW…  42s        1.2 MiB/3.4 MiB  0.1.0  2026-11-23T09:59:57.000Z  2026-11-22T10:00:00.000Z (added by admin)               2026-12-23T10:00:00.000Z',
    'node2  up       192.0.2.2  100.64.0.2  kernel        q83vEjRW…  never      10 B/168 B       -      2026-11-23T09:59:59.000Z  token (no certificate)                                  -',
    'node3  down     192.0.2.3  100.64.0.3  error         -          -          -                -      2026-11-23T09:50:00.000Z  token (no certificate)                                  -',
    'node4  invited  -          -           -             -          -          -                -      -                         invited by admin, token until 2026-11-23T11:00:00.000Z  -',
  ].join('\n'));
});
