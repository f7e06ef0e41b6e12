import { test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { FLOW_BATCH, FLOW_BUFFER, FLOW_BUFFER_PER_TENANT, FlowReporter, type FlowReport } from './flows.js';
import type { FlowRecord } from '../datapath/index.js';

const rec = (dport: number): FlowRecord => ({ at: 1, verdict: 'deny', proto: 6, src: '10.0.0.1', sport: 1, dst: '10.0.0.2', dport });

function reporter(fail: () => boolean) {
  const sent: FlowReport[] = [];
  const r = new FlowReporter({
    tenantOf: (ns) => (ns.startsWith('t-') ? ns.slice(2) : undefined), log: pino({ level: 'silent' }),
    send: async (report) => {
      if (fail()) throw new Error('server away');
      sent.push(structuredClone(report));
    },
  });
  return { r, sent };
}

test('records go out in batches, tenants in turn; a namespace of no tenant is ignored', async () => {
  const { r, sent } = reporter(() => false);
  for (let i = 0; i < 1000; i++) r.record('t-a', rec(i));
  for (let i = 0; i < 10; i++) r.record('t-b', rec(i));
  r.record('elsewhere', rec(1));
  await r.flush();
  assert.deepEqual(sent.map((s) => s.flows.length), [FLOW_BATCH, 10]);
  assert.ok(sent[0]!.flows.some((f) => f.tenant === 'b'), 'the quiet tenant is in the first batch');
  assert.deepEqual(sent.flatMap((s) => s.flows).filter((f) => f.tenant === 'a').map((f) => f.dport).slice(0, 3), [0, 1, 2], 'a tenant\'s oldest first');
  assert.equal(r.sent, 1010);
  assert.equal(r.holding, 0);
});

test('while the server is away the newest are kept, per tenant and in all; what is dropped is counted lost; nothing sent is lost or repeated', async () => {
  let away = true;
  const { r, sent } = reporter(() => away);
  for (let i = 0; i < 3000; i++) r.record('t-noisy', rec(i));
  for (let i = 0; i < 5; i++) r.record('t-quiet', rec(i));
  for (let t = 0; t < 5; t++) for (let i = 0; i < 800; i++) r.record(`t-x${t}`, rec(i));
  r.lost('t-quiet', 7);
  r.held('t-quiet', 11);
  r.held('nowhere', 5);
  await r.flush();
  assert.ok(r.holding <= FLOW_BUFFER, `bounded: ${r.holding}`);
  // A failed send puts back what it took: the next one sends it, once.
  away = false;
  await r.flush();
  const all = sent.flatMap((s) => s.flows);
  const noisy = all.filter((f) => f.tenant === 'noisy').map((f) => f.dport);
  assert.ok(noisy.length <= FLOW_BUFFER_PER_TENANT, `a tenant keeps at most ${FLOW_BUFFER_PER_TENANT}: ${noisy.length}`);
  assert.equal(noisy.at(-1), 2999, 'the newest kept');
  assert.deepEqual(all.filter((f) => f.tenant === 'quiet').map((f) => f.dport), [0, 1, 2, 3, 4], 'a quiet tenant keeps its records');
  assert.equal(new Set(all.map((f) => `${f.tenant}:${f.dport}`)).size, all.length, 'none twice');
  const lost = new Map<string, number>();
  for (const s of sent) for (const l of s.lost) lost.set(l.tenant, (lost.get(l.tenant) ?? 0) + l.count);
  assert.equal(lost.get('quiet'), 7);
  assert.deepEqual(sent.flatMap((x) => x.held), [{ tenant: 'quiet', count: 11 }], 'held back: sent once, after the failed try, and only of a tenant');
  assert.equal([...lost.values()].reduce((a, b) => a + b, 0), 3000 + 5 + 4000 + 7 - all.length, 'every record is sent or counted lost');
});

test('lost counts of more tenants than a request holds go in several requests', async () => {
  const { r, sent } = reporter(() => false);
  for (let i = 0; i < 2500; i++) r.lost(`t-${i}`, 1);
  await r.flush();
  assert.deepEqual(sent.map((s) => s.lost.length), [FLOW_BATCH, FLOW_BATCH, 500]);
});
