import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ERROR_CATALOGUE, WeftError, type ErrorCode } from '../../model/index.js';
import { ApiError } from '../../client/index.js';
import { FakeCniHost, errorOf, invoke, type Invocation } from './fake.js';
import { CniError } from './protocol.js';

// Failures of the host (the agent, the server behind it) are mapped to CNI codes in one place, for
// every command alike, and never leak a stack trace onto stdout.

const calls: Array<[string, Invocation]> = [
  ['ADD', {}],
  ['DEL', {}],
  ['CHECK', {}],
  ['GC', { config: { 'cni.dev/valid-attachments': [] } }],
  ['STATUS', {}],
];

async function failWith(thrown: unknown, command = 'ADD', o: Invocation = {}) {
  const host = new FakeCniHost();
  host.fail = thrown;
  const out = await invoke(host, command, o);
  assert.equal(host.calls.length, 1, `${command} reached the host before failing`);
  return { out, e: errorOf(out) };
}

test('no server answering (ApiError status 0) is 11, try again later, for every command', async () => {
  for (const [command, o] of calls) {
    const { e } = await failWith(new ApiError(0, undefined, 'connect ECONNREFUSED 127.0.0.1:9700'), command, o);
    assert.deepEqual(e, {
      cniVersion: '1.1.0', code: 11, msg: 'the weft server cannot be reached; try again later', details: 'connect ECONNREFUSED 127.0.0.1:9700',
    }, command);
  }
});

test("every catalogue code from the server becomes the catalogue's CNI code, with the server's detail", async () => {
  const codes = Object.keys(ERROR_CATALOGUE) as ErrorCode[];
  assert.ok(codes.length >= 20, 'the whole catalogue is walked');
  for (const code of codes) {
    const entry = ERROR_CATALOGUE[code];
    const { e } = await failWith(new ApiError(entry.status, code, `detail of ${code}`));
    assert.deepEqual([e.code, e.msg], [entry.cni, `detail of ${code}`], code);
  }
  const spot: Array<[ErrorCode, number]> = [['WEFT_POOL_EXHAUSTED', 11], ['WEFT_INVALID_REFERENCE', 7], ['WEFT_INTERNAL', 999], ['WEFT_UNKNOWN_FIELD', 2]];
  for (const [code, cni] of spot) assert.equal((await failWith(new ApiError(409, code, 'x'))).e.code, cni, code);
});

test('catalogue errors raised by the agent itself keep their code', async () => {
  const { e } = await failWith(new WeftError('WEFT_UNAUTHENTICATED', 'host h1 has not joined'), 'DEL');
  assert.deepEqual([e.code, e.msg], [11, 'host h1 has not joined']);
  const invalid = await failWith(new WeftError('WEFT_INVALID_FIELD', 'ip: 10.9.9.9 is outside the network', { field: 'ip' }));
  assert.deepEqual([invalid.e.code, invalid.e.msg], [7, 'ip: 10.9.9.9 is outside the network']);
});

test('an ApiError without a known code is 999; codes that only look like keys are not looked up', async () => {
  for (const code of [undefined, 'WEFT_NOT_A_CODE', 'constructor', '__proto__', 'toString']) {
    const { e } = await failWith(new ApiError(500, code, 'odd answer'));
    assert.deepEqual([e.code, e.msg], [999, 'odd answer'], String(code));
  }
});

test('a CniError from the host passes through unchanged, in the request version', async () => {
  const thrown = new CniError(7, 'tenant blue is not known to this agent yet; try again', 'synced at revision 4');
  const { e } = await failWith(thrown, 'ADD', { config: { cniVersion: '0.4.0' } });
  assert.deepEqual(e, { cniVersion: '0.4.0', code: 7, msg: 'tenant blue is not known to this agent yet; try again', details: 'synced at revision 4' });
});

test('an unexpected failure is 999 with its message as details, and never a stack trace', async () => {
  const deep = (): never => {
    throw new TypeError("Cannot read properties of undefined (reading 'vni')");
  };
  let thrown: unknown;
  try {
    deep();
  } catch (x) {
    thrown = x;
  }
  assert.match((thrown as Error).stack ?? '', /\n\s+at /, 'the thrown error does carry a stack');
  const cases: Array<[unknown, string]> = [
    [thrown, "Cannot read properties of undefined (reading 'vni')"],
    [new Error('boom', { cause: new Error('inner') }), 'boom'],
    ['a thrown string', 'a thrown string'],
    [null, 'null'],
    [42, '42'],
  ];
  for (const [c, details] of cases) {
    for (const [command, o] of calls) {
      const { out, e } = await failWith(c, command, o);
      assert.deepEqual(e, { cniVersion: '1.1.0', code: 999, msg: 'internal error in the weft agent', details }, `${command}: ${String(c)}`);
      assert.doesNotMatch(out.stdout, /\bat |\.js:\d+|node:internal/, 'no stack frame on stdout');
    }
  }
});

test('a failed CHECK is 100 and an unready agent on STATUS is 50, both with the reason', async () => {
  const host = new FakeCniHost();
  const check = errorOf(await invoke(host, 'CHECK', { env: { CNI_CONTAINERID: 'never-added' } }));
  assert.deepEqual([check.code, check.msg], [100, 'endpoint check failed: never-added/eth0 is not attached']);
  host.statusProblem = 'the agent has not loaded the desired state yet';
  const status = errorOf(await invoke(host, 'STATUS'));
  assert.deepEqual([status.code, status.msg], [50, 'the agent has not loaded the desired state yet']);
  assert.deepEqual(host.calls, [['check', 'never-added', 'eth0', '/proc/self/ns/net'], ['status']]);
});

test('CHECK consults prevResult: an address it gives this interface that the endpoint does not hold fails (100); another interface\'s is not ours', async () => {
  const host = new FakeCniHost();
  host.dual = true;
  assert.equal((await invoke(host, 'ADD')).code, 0);
  const check = (prevResult: unknown) => invoke(host, 'CHECK', { config: { prevResult } });
  const ours = { interfaces: [{ name: 'we3f2a9c0d1b7e' }, { name: 'eth0', sandbox: '/proc/self/ns/net' }] };
  // The addresses ADD gave, the IPv6 one in another spelling, and one of a chained plugin's interface.
  const fine = await check({ ...ours, interfaces: [...ours.interfaces, { name: 'net1' }], ips: [{ address: '10.1.2.9/24', interface: 1 }, { address: 'fd00:1:2:0::9/64', interface: 1 }, { address: '192.168.9.9/24', interface: 2 }] });
  assert.equal(fine.code, 0, fine.stdout);
  assert.equal((await check({ ips: [{ address: '10.1.2.9/24' }] })).code, 0, 'no interface index: ours');
  for (const address of ['10.9.9.9/24', '10.1.2.9/16', 'fd00:1:2::8/64']) {
    const e = errorOf(await check({ ...ours, ips: [{ address, interface: 1 }] }));
    assert.equal(e.code, 100, address);
    assert.match(e.msg, /^endpoint check failed: prevResult lists '.*', which is not this interface's address \(10\.1\.2\.9\/24, fd00:1:2::9\/64\)$/, address);
  }
});
