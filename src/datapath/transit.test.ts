import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_TENANT_ID, UPLINK_RANGE6, UPLINK_SPACE6, formatIp, parseIp, parseIp6 } from '../model/index.js';
import { RESERVED_LINK_LOCAL, transit, transit6 } from './transit.js';

const base = parseIp('169.254.0.0') as number;
/** The address choice before reserved ranges existed: id × 4. */
const legacyHost = (id: number) => formatIp(base + id * 4 + 1);
const WELL_KNOWN = ['169.254.169.254', '169.254.169.253', '169.254.169.123', '169.254.169.250', '169.254.169.251',
  '169.254.170.2', '169.254.170.23', '169.254.20.10', '169.254.25.10', '169.254.42.42', '169.254.2.2', '169.254.255.255'];

test('no tenant uplink /30 covers a well-known link-local service, and no two tenants share one', () => {
  const seen = new Map<number, number>();
  const known = new Set(WELL_KNOWN.map((a) => parseIp(a) as number));
  let moved = 0;
  for (let id = 1; id <= MAX_TENANT_ID; id++) {
    const t = transit(id);
    const net = (parseIp(t.host) as number) - 1;
    assert.equal(parseIp(t.tenant), net + 2);
    assert.ok(net >= base + 4 && net + 3 <= base + 0xffff, `tenant ${id}: ${t.host} is inside 169.254.0.0/16, past the unused first /30`);
    for (let a = net; a < net + 4; a++) assert.ok(!known.has(a), `tenant ${id}'s /30 (${formatIp(net)}) covers ${formatIp(a)}`);
    assert.equal(seen.get(net), undefined, `tenants ${seen.get(net)} and ${id} share ${formatIp(net)}/30`);
    seen.set(net, id);
    if (t.host !== legacyHost(id)) moved++;
  }
  assert.equal(moved, 3 * 64 + 3, 'only the ids whose old /30 was unsafe move: three reserved /24s and three single addresses');
});

test('tenants whose uplink was already safe keep their addresses; the one on the metadata address moves', () => {
  assert.deepEqual(transit(1), { host: '169.254.0.5', tenant: '169.254.0.6', prefix: 30 });
  assert.deepEqual(transit(16000), { host: '169.254.250.1', tenant: '169.254.250.2', prefix: 30 });
  assert.equal(transit(127).host, legacyHost(127));
  // 169.254.169.252/30 would hold 169.254.169.254 on the tenant side (id 10879); it is the 131st moved id.
  assert.equal(legacyHost(10879), '169.254.169.253');
  assert.deepEqual(transit(10879), { host: '169.254.252.13', tenant: '169.254.252.14', prefix: 30 });
  assert.equal(transit(10880).host === legacyHost(10880), false, '169.254.170.0/30 (ECS metadata .2) moves too');
  assert.ok(RESERVED_LINK_LOCAL.includes('169.254.169.0/24'));
});

test('IPv6 uplinks: a /126 per tenant id inside the uplink /64, ::1 the host\'s, ::2 the tenant\'s, none shared', () => {
  const seen = new Set<bigint>();
  for (const id of [1, 2, 3, 255, 4096, MAX_TENANT_ID]) {
    const t = transit6(id);
    const host = parseIp6(t.host) as bigint;
    assert.equal(t.prefix, 126);
    assert.equal(parseIp6(t.tenant), host + 1n);
    assert.equal(host & 3n, 1n, `${t.host}: the first usable address of its /126`);
    assert.ok(host >= UPLINK_RANGE6.first + 4n && host + 2n <= UPLINK_RANGE6.last, `${t.host} inside ${UPLINK_SPACE6}, past the unused first /126`);
    assert.ok(!seen.has(host));
    seen.add(host);
  }
  assert.deepEqual(transit6(1), { host: 'fd9f:5e3a:b17c:ffff::5', tenant: 'fd9f:5e3a:b17c:ffff::6', prefix: 126 });
});
