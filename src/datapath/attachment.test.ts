import { test } from 'node:test';
import assert from 'node:assert/strict';
import { attachmentOf, names } from './index.js';

test('an attachment is built one way for ADD and repair: names from the endpoint, hairpin when the tenant has services', () => {
  const ep = { id: '0123456789abcdef', vni: 10001, ifname: 'eth0', mac: '02:57:0a:01:02:02', ip: '10.1.2.2', prefixLength: 24, gateway: '10.1.2.1', mtu: 1450 };
  const plain = attachmentOf(ep, { ns: 'weft-t1', services: [] }, '/run/netns/c1');
  assert.deepEqual(plain, {
    tenantNs: 'weft-t1', bridge: names.bridge(10001), veth: names.endpointVeth(ep.id), netnsPath: '/run/netns/c1', ifname: 'eth0',
    mac: ep.mac, ip: ep.ip, prefixLength: 24, gateway: ep.gateway, mtu: 1450, hairpin: false, defaultRoute: true,
  });
  const withServices = attachmentOf(ep, { ns: 'weft-t1', services: [{} as never] }, '/run/netns/c1');
  assert.equal(withServices.hairpin, true, 'a backend may reach its own service (the repair once forgot this)');
  // The repair of an interface `weft attach` made must not give it the container's default route.
  assert.equal(attachmentOf({ ...ep, attached: { defaultRoute: false } }, { ns: 'weft-t1', services: [] }, '/run/netns/c1').defaultRoute, false);
  assert.equal(attachmentOf({ ...ep, attached: { defaultRoute: true } }, { ns: 'weft-t1', services: [] }, '/run/netns/c1').defaultRoute, true);
});
