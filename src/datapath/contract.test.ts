import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { tmpdir } from 'node:os';
import { ProcessRunner } from '../exec/index.js';
import type { Endpoint, Network, Tenant } from '../model/index.js';
import { DATAPATHS, type DatapathKind } from './backends.js';
import { attachmentOf, type Datapath } from './datapath.js';
import { MemoryDatapath } from './memory.js';
import { planTenant, type DesiredHostState } from './plan.js';

/**
 * What the agent relies on a datapath for, checked against every implementation the same way: the
 * in-memory one must behave like the kernel where the agent's tests lean on it. Linux needs root.
 */
const real = new ProcessRunner();
const root = process.getuid?.() === 0;
const tag = `k${process.pid % 10000}`;
const id = 9300 + (process.pid % 300);
const made: string[] = [];

after(async () => {
  for (const n of made) await real.run(['ip', 'netns', 'del', n], { allowFailure: true });
  await real.run(['ip', 'link', 'del', `wu${id}`], { allowFailure: true });
  await real.run(['ip', 'netns', 'del', `${tag}-t${id}`], { allowFailure: true });
});

const meta = { revision: 1, createdAt: '', updatedAt: '' };
const tenant: Tenant = { ...meta, name: 'red', id, defaultAction: 'allow' };
const network: Network = { ...meta, tenant: 'red', name: 'net', subnet: '10.93.1.0/24', gateway: '10.93.1.1', encap: 'vxlan', vni: 51001, mtu: 1450 };
const endpoint = (n: number): Endpoint => ({
  ...meta, id: `${n}`.repeat(16).slice(0, 16), tenant: 'red', network: 'net', ip: `10.93.1.${n + 1}`, prefixLength: 24, gateway: '10.93.1.1',
  mac: `02:57:00:00:00:0${n}`, mtu: 1450, vni: 51001, host: 'h', ifname: 'eth0', containerId: `c${n}`, labels: {}, state: 'created',
});
const desired: DesiredHostState = { host: 'h', nsPrefix: `${tag}-`, tenants: [tenant], networks: [network], endpoints: [endpoint(1), endpoint(2)] };

/** A container namespace as a runtime makes it: a real one for Linux, a declared one for memory. */
async function container(dp: Datapath, name: string): Promise<string> {
  if (dp instanceof MemoryDatapath) {
    dp.addContainer(`/run/netns/${tag}-${name}`);
  } else {
    await real.run(['ip', 'netns', 'add', `${tag}-${name}`]);
    made.push(`${tag}-${name}`);
  }
  return `/run/netns/${tag}-${name}`;
}

for (const kind of Object.keys(DATAPATHS) as DatapathKind[]) {
  test(`datapath contract: ${kind}`, { skip: kind === 'linux' && !root && 'needs root' }, async () => {
    const dp = DATAPATHS[kind]({ runner: real, nsPrefix: `${tag}-`, stateDir: tmpdir(), keyFile: '/nonexistent' });
    const plan = planTenant(desired, tenant);
    await dp.ensureTenant(plan);
    assert.equal(await dp.ensureTenant(plan), 'unchanged', 'a second convergence changes nothing');
    assert.deepEqual((await dp.presentTenants()).filter((t) => t.id === id), [{ ns: plan.ns, id }]);

    const c1 = await container(dp, 'c1');
    const a1 = attachmentOf(endpoint(1), plan, c1);
    await dp.attach(a1);
    assert.equal((await dp.ports(plan.ns)).get(a1.veth)?.bridge, a1.bridge, 'the host end is on the bridge');
    assert.equal(await dp.containerHas(c1, 'eth0'), true);
    assert.equal(await dp.checkContainer(a1), undefined, 'CHECK passes');
    assert.equal(await dp.checkContainer({ ...a1, ip: '10.93.1.99' }), 'interface eth0 lacks 10.93.1.99/24');

    await assert.rejects(dp.attach({ ...attachmentOf(endpoint(2), plan, c1) }), 'a container that has the interface is not wired twice');
    assert.equal((await dp.ports(plan.ns)).has(attachmentOf(endpoint(2), plan, c1).veth), false, 'and nothing is left of the attempt');
    await assert.rejects(dp.attach(attachmentOf(endpoint(2), plan, '/proc/self/ns/net')), /netns: \/proc\/self\/ns\/net is the network namespace of/);
    await assert.rejects(dp.attach(attachmentOf(endpoint(2), plan, `/run/netns/${plan.ns}`)), /is the network namespace of/, 'nor a tenant router');
    await assert.rejects(dp.attach(attachmentOf(endpoint(2), plan, `/run/netns/${tag}-never-made`)), /cannot be identified/);

    const stale = await container(dp, 'c2');
    await dp.attach(attachmentOf(endpoint(2), plan, stale));
    await dp.ensureTenant(planTenant({ ...desired, endpoints: [endpoint(1)] }, tenant), new Set());
    assert.equal((await dp.ports(plan.ns)).has(attachmentOf(endpoint(2), plan, stale).veth), false, 'a veth the plan lost is removed');
    assert.equal(await dp.containerHas(stale, 'eth0'), false, 'with the container\'s end');

    await dp.unwire(plan.ns, a1.veth);
    assert.equal(await dp.containerHas(c1, 'eth0'), false, 'unwire takes the container\'s end too');
    await dp.unwire(plan.ns, a1.veth);
    await dp.forgetConnections(plan.ns, a1.ip as string);
    assert.equal(dp.containerExists(c1), true);

    await dp.removeTenant(plan.ns, id);
    assert.deepEqual((await dp.presentTenants()).filter((t) => t.id === id), []);
    await dp.unwire(plan.ns, a1.veth);
  });
}
