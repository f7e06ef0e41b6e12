import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { forwardIpv6 } from './host.js';

/** A stand-in for /proc/sys/net/ipv6/conf: each interface's accept_ra, and all/forwarding. */
function confDir(ra: Record<string, string>, forwarding = '0'): string {
  const dir = mkdtempSync(join(tmpdir(), 'weft-conf6-'));
  for (const [dev, v] of Object.entries({ all: '0', default: '1', lo: '1', ...ra })) {
    mkdirSync(join(dir, dev));
    writeFileSync(join(dir, dev, 'accept_ra'), `${v}\n`);
    writeFileSync(join(dir, dev, 'forwarding'), dev === 'all' ? `${forwarding}\n` : '0\n');
  }
  return dir;
}
const read = (dir: string, dev: string, f: string) => readFileSync(join(dir, dev, f), 'utf8').trim();

test('IPv6 forwarding keeps router advertisements coming where they came (accept_ra 1 → 2), leaves 0 and 2 alone', () => {
  const dir = confDir({ eth0: '1', eth1: '0', eth2: '2' });
  try {
    forwardIpv6(dir);
    assert.equal(read(dir, 'all', 'forwarding'), '1');
    assert.deepEqual(['eth0', 'eth1', 'eth2', 'default', 'lo'].map((d) => read(dir, d, 'accept_ra')), ['2', '0', '2', '2', '1']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a host that already forwards IPv6 is left as it is', () => {
  const dir = confDir({ eth0: '1' }, '1');
  try {
    forwardIpv6(dir);
    assert.equal(read(dir, 'eth0', 'accept_ra'), '1', 'its owner chose forwarding with accept_ra 1');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a host without IPv6 (no conf directory) is not touched', () => {
  assert.doesNotThrow(() => forwardIpv6(join(tmpdir(), 'weft-no-such-conf6')));
});
