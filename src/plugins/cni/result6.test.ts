import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatAddResult, SUPPORTED_VERSIONS } from './protocol.js';

// An IPv6-only network's endpoint (issue 19): the ADD result names its one IPv6 address, gateway and
// default route, and nothing of IPv4 (a runtime would otherwise configure "undefined").

test('an IPv6-only ADD result holds the IPv6 address and ::/0 alone, in every supported version', () => {
  for (const v of SUPPORTED_VERSIONS) {
    const r = formatAddResult(v, { hostVeth: 'we1', ifname: 'eth0', mac: '02:58:00:00:00:02', mtu: 1450, netns: '/run/netns/c', ip6: 'fd00:60::2', prefixLength6: 64, gateway6: 'fd00:60::1', dns: { nameservers: ['fd00:60::1'], search: ['default.weft'] } });
    const old = v.startsWith('0.');
    assert.deepEqual(r['ips'], [{ ...(old ? { version: '6' } : {}), address: 'fd00:60::2/64', gateway: 'fd00:60::1', interface: 1 }], v);
    assert.deepEqual(r['routes'], [{ dst: '::/0', gw: 'fd00:60::1' }], v);
    assert.doesNotMatch(JSON.stringify(r), /undefined|0\.0\.0\.0/, v);
  }
});
