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

test('veth counters: the first reading is the baseline; later ones count what moved, per group; new and re-made veths from zero; a veth a reading skipped is not counted twice; a failed send keeps it', async () => {
  let away = false;
  const sent: FlowReport[] = [];
  const groups: Record<string, string | undefined> = { we1: 'db', we2: 'db', we3: 'app', we4: undefined };
  const r = new FlowReporter({
    tenantOf: (ns) => (ns.startsWith('t-') ? ns.slice(2) : undefined), log: pino({ level: 'silent' }),
    endpointOf: (veth) => (veth in groups ? { ...(groups[veth] ? { group: groups[veth] } : {}) } : undefined),
    countsMs: 0,
    send: async (report) => {
      if (away) throw new Error('server away');
      sent.push(structuredClone(report));
    },
  });
  /** Counters: bytes and packets apart (packets are not bytes / anything), ifindex 1 unless said. */
  const c = (rxBytes: number, rxPackets: number, txBytes: number, txPackets: number, ifindex = 1) => ({ ifindex, rxBytes, rxPackets, txBytes, txPackets });
  const reading = (ns: string, v: Record<string, ReturnType<typeof c>>, done = true) => {
    r.trafficBegin(ns);
    for (const [veth, x] of Object.entries(v)) r.traffic(ns, veth, x);
    if (done) r.trafficDone(ns);
  };
  const totals = () => {
    const total = new Map<string, number[]>();
    for (const s of sent) for (const t of s.traffic ?? []) {
      const had = total.get(`${t.tenant}/${t.group}`) ?? [0, 0, 0, 0];
      total.set(`${t.tenant}/${t.group}`, [had[0]! + t.sentBytes, had[1]! + t.sentPackets, had[2]! + t.receivedBytes, had[3]! + t.receivedPackets]);
    }
    return Object.fromEntries(total);
  };
  // What the counters held when the agent started is not news.
  reading('t-shop', { we1: c(10_000, 70, 5000, 40), we3: c(100, 1, 100, 1, 3) });
  await r.flush();
  assert.equal(sent.length, 0, 'a baseline reports nothing');
  // we3 moved nothing; weffff is no endpoint of ours; we2 is new (from zero); we4 has no group.
  reading('t-shop', { we1: c(12_000, 90, 5100, 41), we2: c(300, 3, 200, 2, 2), we3: c(100, 1, 100, 1, 3), we4: c(1000, 9, 0, 0, 4), weffff: c(9900, 99, 9900, 99, 5) });
  away = true;
  await r.flush();
  away = false;
  await r.flush();
  assert.deepEqual(totals(), { 'shop/db': [2000 + 300, 20 + 3, 100 + 200, 1 + 2], 'shop/': [1000, 9, 0, 0] }, 'sent once, after the failed try');
  // A reading that never completed (interrupted) counts nothing, and the next one is whole again.
  reading('t-shop', { we1: c(99_999, 999, 99_999, 999) }, false);
  // we2 skipped by a reading (a dump can skip a link), then back: only what it moved since, not its whole life.
  reading('t-shop', { we1: c(12_500, 95, 5100, 41), we3: c(100, 1, 100, 1, 3) });
  reading('t-shop', { we1: c(12_500, 95, 5100, 41), we2: c(350, 4, 200, 2, 2), we3: c(100, 1, 100, 1, 3) });
  // we1 made again (another ifindex) with counters above the old ones: from zero, all four alike.
  reading('t-shop', { we1: c(20_000, 50, 6000, 50, 9), we2: c(350, 4, 200, 2, 2), we3: c(100, 1, 100, 1, 3) });
  await r.flush();
  assert.deepEqual(totals(), { 'shop/db': [2300 + 500 + 50 + 20_000, 23 + 5 + 1 + 50, 300 + 0 + 0 + 6000, 3 + 0 + 0 + 50], 'shop/': [1000, 9, 0, 0] });
  // A namespace of no tenant counts nothing.
  reading('elsewhere', { we1: c(1, 1, 1, 1) });
  reading('elsewhere', { we1: c(100_000, 100, 1, 1) });
  const before = sent.length;
  await r.flush();
  assert.equal(sent.length, before);
});

test('group traffic: past 1e15 a number waits for the next report; a report the server refuses as bad is dropped, not sent forever', async () => {
  const sent: FlowReport[] = [];
  let refuse = false;
  const r = new FlowReporter({
    tenantOf: (ns) => (ns.startsWith('t-') ? ns.slice(2) : undefined), log: pino({ level: 'silent' }), countsMs: 0,
    endpointOf: () => ({ group: 'db' }),
    send: async (report) => {
      if (refuse) throw Object.assign(new Error('traffic.0.sentBytes: must be <= 1e15'), { status: 400 });
      sent.push(structuredClone(report));
    },
  });
  r.trafficBegin('t-shop');
  r.trafficDone('t-shop');
  r.trafficBegin('t-shop');
  r.traffic('t-shop', 'we1', { ifindex: 1, rxBytes: 2.5e15, rxPackets: 10, txBytes: 0, txPackets: 0 });
  r.trafficDone('t-shop');
  await r.flush();
  assert.deepEqual(sent.map((x) => x.traffic?.[0]?.sentBytes), [1e15, 1e15, 0.5e15], 'in three reports, none over the limit');
  assert.equal(sent.reduce((n, x) => n + (x.traffic?.[0]?.sentPackets ?? 0), 0), 10);
  refuse = true;
  for (let i = 0; i < 3; i++) r.record('t-shop', rec(i));
  await r.flush();
  refuse = false;
  await r.flush();
  assert.equal(r.holding, 0, 'refused as bad: dropped');
  assert.equal(sent.length, 3 + 1, 'only the lost count goes next');
  assert.deepEqual(sent.at(-1)?.lost, [{ tenant: 'shop', count: 3 }]);
});
