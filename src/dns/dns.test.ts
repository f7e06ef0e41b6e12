import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BadQuery, encodeReply, parseQuery, RCODE } from './codec.js';
import { decide, nameTable } from './answer.js';
import { parseUpstream, upstreamsFromResolvConf } from './server.js';

/** A query as a stub resolver writes it. */
function query(name: string, type = 1, id = 0x1234, flags = 0x0100): Buffer {
  const labels = name.split('.').flatMap((l) => [Buffer.from([l.length]), Buffer.from(l)]);
  const head = Buffer.alloc(12);
  head.writeUInt16BE(id, 0);
  head.writeUInt16BE(flags, 2);
  head.writeUInt16BE(1, 4);
  const tail = Buffer.alloc(5);
  tail.writeUInt16BE(type, 1);
  tail.writeUInt16BE(1, 3);
  return Buffer.concat([head, ...labels, tail]);
}

test('a query is read case-insensitively and answered with A records after its question', () => {
  const q = parseQuery(query('DbSvc.Default.weft'));
  assert.deepEqual([q.id, q.rd, q.name, q.type, q.qclass], [0x1234, true, 'dbsvc.default.weft', 1, 1]);
  const r = encodeReply(q, { rcode: 0, aa: true, ra: false, addresses: ['10.1.2.200', '10.1.2.3'], ttl: 5 });
  assert.equal(r.readUInt16BE(0), 0x1234);
  assert.equal(r.readUInt16BE(2), 0x8000 | 0x0400 | 0x0100, 'QR, AA and RD; no error');
  assert.deepEqual([r.readUInt16BE(4), r.readUInt16BE(6)], [1, 2]);
  const first = 12 + q.question.length;
  assert.deepEqual([...r.subarray(first, first + 12)], [0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 5, 0, 4]);
  assert.deepEqual([...r.subarray(first + 12, first + 16)], [10, 1, 2, 200]);
  assert.equal(r.length, first + 32);
});

test('malformed messages get FORMERR or NOTIMP, and responses are never answered', () => {
  const code = (b: Buffer) => {
    try {
      parseQuery(b);
      return 'parsed';
    } catch (e) {
      return (e as BadQuery).rcode;
    }
  };
  assert.equal(code(Buffer.alloc(5)), 'drop');
  assert.equal(code(query('a.b', 1, 1, 0x8000)), 'drop');
  assert.equal(code(query('a.b', 1, 1, 0x2800)), RCODE.NOTIMP, 'opcode 5 (update)');
  assert.equal(code(query('a.b').subarray(0, 15)), RCODE.FORMERR, 'cut short');
  const two = query('a.b');
  two.writeUInt16BE(2, 4);
  assert.equal(code(two), RCODE.FORMERR, 'two questions');
  const pointer = Buffer.concat([query('a').subarray(0, 12), Buffer.from([0xc0, 0x0c, 0, 0, 1, 0, 1])]);
  assert.equal(code(pointer), RCODE.FORMERR, 'a compressed question');
  // The labels x, blue, "weft." — not a name under .weft on the wire, but "x.blue.weft." once joined.
  const dotted = Buffer.concat([query('a').subarray(0, 12), Buffer.from([1, 0x78, 4, ...Buffer.from('blue'), 5, ...Buffer.from('weft.'), 0, 0, 1, 0, 1])]);
  assert.equal(code(dotted), RCODE.FORMERR, 'a dot inside a label');
});

test("names resolve inside their tenant only; other .weft names do not exist; the rest goes upstream", () => {
  const names = nameTable([{ name: 'dbsvc', vip: '10.1.2.200' }], [{ containerName: 'db1', ip: '10.1.2.3' }, { containerName: 'DB1', ip: '10.1.2.4' }, { ip: '10.1.2.9' }, { containerName: 'dbsvc', ip: '10.1.2.5' }]);
  const a = (name: string, type = 1) => decide({ name, type, qclass: 1 }, 'default', names);
  assert.deepEqual(a('dbsvc'), { kind: 'answer', rcode: 0, addresses: ['10.1.2.200'], aa: false }, 'a service wins over a container');
  assert.deepEqual(a('dbsvc.default.weft'), { kind: 'answer', rcode: 0, addresses: ['10.1.2.200'], aa: true });
  assert.deepEqual(a('db1.default.weft'), { kind: 'answer', rcode: 0, addresses: ['10.1.2.3', '10.1.2.4'], aa: true });
  assert.deepEqual(a('db1.default.weft', 28), { kind: 'answer', rcode: 0, addresses: [], aa: true }, 'AAAA of a known name: no data, not NXDOMAIN');
  assert.deepEqual(a('db1.blue.weft'), { kind: 'answer', rcode: RCODE.NXDOMAIN, addresses: [], aa: true }, "another tenant's name");
  assert.deepEqual(a('nothing.default.weft'), { kind: 'answer', rcode: RCODE.NXDOMAIN, addresses: [], aa: true });
  assert.deepEqual(a('x.db1.default.weft'), { kind: 'answer', rcode: RCODE.NXDOMAIN, addresses: [], aa: true });
  assert.deepEqual(a('default.weft'), { kind: 'answer', rcode: 0, addresses: [], aa: true });
  assert.deepEqual(a('example.org'), { kind: 'forward' });
  assert.deepEqual(a('unknown'), { kind: 'forward' });
  assert.deepEqual(decide({ name: 'dbsvc', type: 1, qclass: 3 }, 'default', names).kind, 'answer');
});

test('upstreams come from resolv.conf or IP[:PORT]', () => {
  assert.deepEqual(upstreamsFromResolvConf('# c\nsearch x\nnameserver 10.0.0.2\nnameserver ::1\n nameserver 127.0.0.53 \n'), [{ address: '10.0.0.2', port: 53 }, { address: '127.0.0.53', port: 53 }]);
  assert.deepEqual(parseUpstream('127.0.0.1:5399'), { address: '127.0.0.1', port: 5399 });
  assert.throws(() => parseUpstream('300.0.0.1'), /IPv4/);
  assert.throws(() => parseUpstream('1.2.3.4:0'), /IPv4/);
});

test('dual stack: a container with an IPv6 address answers AAAA with it (A with the IPv4 one, ANY both), as a 16-byte record', () => {
  const names = nameTable([{ name: 'svc', vip: '10.1.2.200' }], [{ containerName: 'web', ip: '10.1.2.3', ip6: 'fd00:1:2::3' }, { containerName: 'web', ip: '10.1.2.4', ip6: 'fd00:1:2::4' }]);
  const a = (name: string, type: number) => decide({ name, type, qclass: 1 }, 'default', names);
  assert.deepEqual(a('web.default.weft', 28), { kind: 'answer', rcode: 0, addresses: ['fd00:1:2::3', 'fd00:1:2::4'], aa: true });
  assert.deepEqual(a('web.default.weft', 1), { kind: 'answer', rcode: 0, addresses: ['10.1.2.3', '10.1.2.4'], aa: true });
  assert.deepEqual(a('web', 255), { kind: 'answer', rcode: 0, addresses: ['10.1.2.3', 'fd00:1:2::3', '10.1.2.4', 'fd00:1:2::4'], aa: false });
  assert.deepEqual(a('svc', 28), { kind: 'answer', rcode: 0, addresses: [], aa: false }, 'an IPv4 VIP: AAAA has no data');
  const q = parseQuery(query('web.default.weft', 28));
  const r = encodeReply(q, { rcode: 0, aa: true, ra: false, addresses: ['fd00:1:2::3'], ttl: 5 });
  const first = 12 + q.question.length;
  assert.deepEqual([...r.subarray(first, first + 12)], [0xc0, 0x0c, 0, 28, 0, 1, 0, 0, 0, 5, 0, 16]);
  assert.deepEqual([...r.subarray(first + 12, first + 28)], [0xfd, 0, 0, 1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3]);
  assert.equal(r.length, first + 28);
});
