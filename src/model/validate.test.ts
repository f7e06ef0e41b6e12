import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkNetwork, checkRule, parseBandwidth, parsePorts, parseLabelList, parseVxlanRange, formatIp, WeftError } from './index.js';

const fieldOf = (fn: () => unknown): string | undefined => {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof WeftError);
    return e.field;
  }
  assert.fail('expected an error');
};

test('checkNetwork: gateway defaults to the first address; range and gateway must be usable', () => {
  const l = checkNetwork({ name: 'n', subnet: '10.1.2.0/24' });
  assert.equal(formatIp(l.gateway), '10.1.2.1');
  assert.deepEqual([formatIp(l.dynamic.first), formatIp(l.dynamic.last)], ['10.1.2.1', '10.1.2.254']);
  assert.equal(fieldOf(() => checkNetwork({ name: 'n', subnet: '10.1.2.0/24', gateway: '10.1.2.255' })), 'gateway');
  assert.equal(fieldOf(() => checkNetwork({ name: 'n', subnet: '10.1.2.0/24', gateway: '10.1.2.0' })), 'gateway');
  assert.equal(fieldOf(() => checkNetwork({ name: 'n', subnet: '10.1.2.0/24', ipRange: '10.1.2.100-10.1.3.5' })), 'ipRange');
  assert.equal(fieldOf(() => checkNetwork({ name: 'n', subnet: '10.0.0.0/7' })), 'subnet');
  assert.equal(fieldOf(() => checkNetwork({ name: 'n', subnet: '10.0.0.0/31' })), 'subnet');
});

test('checkRule: ports need tcp/udp, peers follow the direction, one peer at most', () => {
  checkRule({ id: '1', protocol: 'tcp', ports: '8000-8080', fromGroup: 'app' });
  checkRule({ id: '1', direction: 'out', protocol: '17', ports: '53', toCidr: '10.0.0.0/8' });
  assert.equal(fieldOf(() => checkRule({ id: '1', ports: '80' })), 'ports');
  assert.equal(fieldOf(() => checkRule({ id: '1', protocol: 'icmp', ports: '80' })), 'ports');
  assert.equal(fieldOf(() => checkRule({ id: '1', protocol: '300' })), 'protocol');
  assert.equal(fieldOf(() => checkRule({ id: '1', toGroup: 'x' })), 'toGroup');
  assert.equal(fieldOf(() => checkRule({ id: '1', fromGroup: 'a', fromCidr: '10.0.0.0/8' })), 'fromCidr');
  assert.equal(fieldOf(() => checkRule({ id: '1', fromCidr: '10.0.0.1/8' })), 'fromCidr');
  assert.doesNotThrow(() => checkRule({ id: '1', fromCidr: '10.0.0.1' }), 'a bare address means /32');
});

test('ports, bandwidth, VNI ranges and label lists parse or name what is wrong', () => {
  assert.deepEqual(parsePorts('80', 'ports'), { first: 80, last: 80 });
  for (const bad of ['0', '70000', '80-70', '']) assert.equal(fieldOf(() => parsePorts(bad, 'ports')), 'ports', bad);
  assert.equal(parseBandwidth('10mbps'), 10e6);
  assert.equal(parseBandwidth('1gbps'), 1e9);
  assert.equal(parseBandwidth('500 kbps'), 500e3);
  assert.equal(parseBandwidth('5M'), 5e6);
  assert.equal(fieldOf(() => parseBandwidth('fast')), 'bandwidth');
  assert.equal(fieldOf(() => parseBandwidth('1kbps')), 'bandwidth');
  assert.deepEqual(parseVxlanRange('10000-19999'), { first: 10000, last: 19999 });
  assert.equal(fieldOf(() => parseVxlanRange('20-10')), 'vxlanRange');
  assert.deepEqual(parseLabelList(['group=db', 'tier=a=b'], '--label'), { group: 'db', tier: 'a=b' });
  assert.equal(fieldOf(() => parseLabelList(['nolabel'], '--label')), '--label');
  // A key given twice: one of the two was a mistake.
  assert.equal(fieldOf(() => parseLabelList(['tier=web', 'tier=db'], '--label')), '--label');
  assert.throws(() => parseLabelList(['tier=web', 'tier=db'], '--selector'), /'tier' is given twice \(tier=web, tier=db\)/);
});
