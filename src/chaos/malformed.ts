import type { LabState } from '../lab/index.js';
import type { LabApi } from './api.js';
import { callCni, pluginConf, runner, type CniCall } from './cni.js';
import type { Prng } from './prng.js';
import type { Recorder } from './recorder.js';
import { NETWORK } from './workload.js';

const T = '/api/v1/tenants/default';
const HUGE = 'x'.repeat(2_000_000);

/** A CNI call that must fail with a CNI error whose message names `names` (the field at fault). */
interface CniCase { what: string; names: string; call: (id: string, netns: string, conf: Record<string, unknown>) => Omit<CniCall, 'conflist'> }

const CNI_CASES: CniCase[] = [
  { what: 'stdin is not JSON', names: '', call: (id, netns) => ({ id, netns, stdin: '{"cniVersion":"1.0.0","name":' }) },
  { what: 'stdin of 2 MB', names: '', call: (id, netns) => ({ id, netns, stdin: HUGE }) },
  { what: 'tenant of the wrong type', names: 'tenant', call: (id, netns, conf) => ({ id, netns, stdin: JSON.stringify({ ...conf, tenant: 42 }) }) },
  { what: 'unknown CNI_COMMAND', names: 'CNI_COMMAND', call: (id, netns) => ({ id, netns, env: { CNI_COMMAND: 'EXPLODE' } }) },
  { what: 'no CNI_COMMAND', names: 'CNI_COMMAND', call: (id, netns) => ({ id, netns, env: { CNI_COMMAND: undefined } }) },
  { what: 'empty CNI_CONTAINERID', names: 'CNI_CONTAINERID', call: (_id, netns) => ({ id: '', netns }) },
  { what: 'CNI_CONTAINERID of 100 kB', names: 'CNI_CONTAINERID', call: (_id, netns) => ({ id: HUGE.slice(0, 100_000), netns }) },
  { what: 'CNI_IFNAME of 40 characters', names: 'CNI_IFNAME', call: (id, netns) => ({ id, netns, env: { CNI_IFNAME: 'e'.repeat(40) } }) },
  { what: 'CNI_NETNS that does not exist', names: '', call: (id) => ({ id, netns: '/run/netns/chaos-no-such-netns' }) },
  { what: 'CNI_ARGS garbage', names: 'CNI_ARGS', call: (id, netns) => ({ id, netns, env: { CNI_ARGS: ';;==;garbage' } }) },
];

/** An API call that must be refused (400/413/422, a WEFT_ code, the field named) and change nothing. */
interface ApiCase { what: string; field?: string; send: (api: LabApi) => Promise<{ status: number; json: any }>; unchanged: (api: LabApi) => Promise<string> }

const revisionOf = async (api: LabApi, path: string) => String((await api.call('GET', path)).json?.revision);
const absent = (path: string) => async (api: LabApi) => String((await api.call('GET', path)).status);

const API_CASES: ApiCase[] = [
  { what: 'network subnet of the wrong type', field: 'subnet', send: (a) => a.call('POST', `${T}/networks`, { name: 'badnet', subnet: 123 }), unchanged: absent(`${T}/networks/badnet`) },
  { what: 'network name of 200 kB', send: (a) => a.call('POST', `${T}/networks`, { name: HUGE.slice(0, 200_000), subnet: '10.99.0.0/24' }),
    unchanged: async (a) => JSON.stringify(((await a.call('GET', `${T}/networks`)).json?.items ?? []).filter((n: any) => n.subnet === '10.99.0.0/24')) },
  { what: 'body that is not JSON', send: (a) => a.call('POST', `${T}/networks`, undefined, { raw: '{"name": "badnet2", ' }), unchanged: absent(`${T}/networks/badnet2`) },
  { what: 'unknown field', field: 'color', send: (a) => a.call('POST', `${T}/networks`, { name: 'badnet3', subnet: '10.98.0.0/24', color: 'red' }), unchanged: absent(`${T}/networks/badnet3`) },
  { what: 'group policies as a string', field: 'policies', send: (a) => a.call('POST', `${T}/groups`, { name: 'badgrp', network: NETWORK, policies: 'pb' }), unchanged: absent(`${T}/groups/badgrp`) },
  { what: 'group b patched with a number as policy', field: 'policies.0', send: (a) => a.call('PATCH', `${T}/groups/b`, { policies: [42] }), unchanged: (a) => revisionOf(a, `${T}/groups/b`) },
  { what: 'rule priority as a word', field: 'priority', send: (a) => a.call('POST', `${T}/policies/pb/rules`, { id: 'badrule', priority: 'high' }), unchanged: absent(`${T}/policies/pb/rules/badrule`) },
  { what: 'endpoint ip of the wrong type', field: 'ip', send: (a) => a.call('POST', '/api/v1/endpoints', { tenant: 'default', network: NETWORK, containerId: 'badep', host: 'host1', ifname: 'eth0', ip: 12345 }),
    unchanged: async (a) => JSON.stringify(((await a.call('GET', '/api/v1/endpoints')).json?.items ?? []).filter((e: any) => e.containerId === 'badep')) },
  { what: 'global mtu as a string', field: 'mtu', send: (a) => a.call('PATCH', '/api/v1/global', { mtu: '1500' }), unchanged: (a) => revisionOf(a, '/api/v1/global') },
];

/** Malformed input, a few cases of each kind per fault: each must get a precise error and change nothing. */
export async function sendMalformed(s: LabState, api: LabApi, rec: Recorder, prng: Prng, hosts: number[], n = 3): Promise<void> {
  for (let k = 0; k < n && hosts.length; k++) {
    const c = prng.draw(CNI_CASES);
    const host = prng.pick(hosts);
    const id = `bad${prng.int(0, 1e6)}`;
    const ns = `${s.prefix}-c-${id}`;
    rec.fault('malformed CNI input', `${c.what} on host${host + 1}`);
    await runner.run(['ip', 'netns', 'add', ns]);
    try {
      const r = await callCni(s, host, 'ADD', { conflist: 'weft-default-a', ...c.call(id, `/run/netns/${ns}`, pluginConf(s.hosts[host]!.dir, 'weft-default-a')) });
      const precise = r.code !== 0 && typeof r.json?.code === 'number' && typeof r.json?.msg === 'string' && String(r.json.msg).includes(c.names);
      rec.check('malformed CNI input refused precisely', precise, () => `${c.what}: exit ${r.code}, ${r.stdout.slice(0, 300)} (expected a CNI error naming '${c.names}')`);
      const left = ((await api.call('GET', '/api/v1/endpoints')).json?.items ?? []).filter((e: any) => e.containerId === id);
      rec.check('malformed CNI input changed nothing', left.length === 0, () => `${c.what}: left endpoint(s) ${JSON.stringify(left)}`);
    } finally {
      await runner.run(['ip', 'netns', 'del', ns], { allowFailure: true });
    }
  }
  for (let k = 0; k < n; k++) {
    const c = prng.draw(API_CASES);
    rec.fault('malformed API input', c.what);
    const before = await c.unchanged(api);
    const r = await c.send(api);
    const precise = [400, 413, 422].includes(r.status) && /^WEFT_/.test(String(r.json?.code)) && (c.field === undefined || r.json?.field === c.field);
    rec.check('malformed API input refused precisely', precise, () => `${c.what}: ${r.status} ${JSON.stringify(r.json)?.slice(0, 300)} (expected 400/413/422, a WEFT_ code${c.field ? `, field ${c.field}` : ''})`);
    const after = await c.unchanged(api);
    rec.check('malformed API input changed nothing', after === before, () => `${c.what}: before ${before}, after ${after}`);
  }
}
