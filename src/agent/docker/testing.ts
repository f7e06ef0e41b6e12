import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { endpointId } from '../../model/index.js';
import type { Agent } from '../agent.js';
import { startMemoryAgent, type MemoryAgentOptions } from '../testing.js';

/**
 * For tests of the Docker driver without root: a real agent in the test's process on the in-memory
 * datapath, serving the plugin protocol on a socket in `dir`, as dockerd finds it; `callDocker` speaks to
 * it the way dockerd does, and `fakeDockerApi` stands in for Docker's own API (the two questions
 * `api.ts` asks). Never used by the product.
 */
export const dockerSocketIn = (dir: string): string => join(dir, 'plugins', 'weft.sock');

/** An agent on the memory datapath serving Docker's plugin socket in `dir` (see ../testing.ts). */
export function startDockerTestAgent(o: MemoryAgentOptions & { dockerApi?: string }): Promise<Agent> {
  return startMemoryAgent(o, { dockerSocket: dockerSocketIn(o.dir), ...(o.dockerApi ? { dockerApi: o.dockerApi } : {}) });
}

/** A 64-hex ID, as Docker makes network and endpoint IDs. */
export const dockerId = (): string => randomBytes(32).toString('hex');

/** POSTs one plugin call as dockerd does; a string body is sent as it is (for malformed JSON). */
export function callDocker(socketPath: string, call: string, body: unknown): Promise<{ status: number; json: any }> {
  const data = typeof body === 'string' ? body : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath, path: `/${call}`, method: 'POST', headers: { accept: 'application/vnd.docker.plugins.v1.2+json' } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, json: text ? JSON.parse(text) : undefined }));
    });
    req.on('error', reject);
    req.end(data);
  });
}

/** One plugin call that must succeed; its answer. */
export async function dockerOk(socketPath: string, call: string, body: unknown): Promise<any> {
  const r = await callDocker(socketPath, call, body);
  assert.equal(r.status, 200, `${call}: ${r.status} ${JSON.stringify(r.json)}`);
  return r.json;
}

export const GATEWAY_REQUEST = { RequestAddressType: 'com.docker.network.gateway' };

/** `docker network create -d weft --ipam-driver weft [--subnet] [--ipam-opt] -o ...`: RequestPool, the gateway, CreateNetwork. */
export async function createDockerNetwork(socketPath: string, generic: Record<string, string>, pool = '', ipamOpts: Record<string, string> = {}) {
  const p = await dockerOk(socketPath, 'IpamDriver.RequestPool', { AddressSpace: 'weft', Pool: pool, SubPool: '', Options: ipamOpts, V6: false });
  const gw = await dockerOk(socketPath, 'IpamDriver.RequestAddress', { PoolID: p.PoolID, Address: '', Options: GATEWAY_REQUEST });
  const networkId = dockerId();
  await dockerOk(socketPath, 'NetworkDriver.CreateNetwork', {
    NetworkID: networkId, Options: { 'com.docker.network.generic': generic, 'com.docker.network.enable_ipv6': false },
    IPv4Data: [{ AddressSpace: 'weft', Pool: p.Pool, Gateway: gw.Address }], IPv6Data: [],
  });
  return { networkId, poolId: p.PoolID as string, pool: p.Pool as string, gateway: gw.Address as string };
}

/** `docker run --network`: RequestAddress, CreateEndpoint, Join. `id` is the Weft endpoint's. */
export async function runContainer(socketPath: string, n: { networkId: string; poolId: string }) {
  const addr = await dockerOk(socketPath, 'IpamDriver.RequestAddress', { PoolID: n.poolId, Address: '', Options: {} });
  const endpointDocker = dockerId();
  const created = await dockerOk(socketPath, 'NetworkDriver.CreateEndpoint', {
    NetworkID: n.networkId, EndpointID: endpointDocker, Interface: { Address: addr.Address, AddressIPv6: '', MacAddress: '' }, Options: {},
  });
  const joined = await dockerOk(socketPath, 'NetworkDriver.Join', { NetworkID: n.networkId, EndpointID: endpointDocker, SandboxKey: `/var/run/docker/netns/${endpointDocker.slice(0, 12)}`, Options: {} });
  return { endpointDocker, id: endpointId(endpointDocker, 'eth0'), ip: (addr.Address as string).split('/')[0] as string, mac: created.Interface?.MacAddress as string, joined };
}

/** Docker's view of its networks: full network ID → container ID → the container's name and endpoint on it. */
export type DockerContainers = Map<string, Record<string, { Name: string; EndpointID: string; Labels?: Record<string, string> }>>;

/**
 * Docker's API on a unix socket, as far as `api.ts` uses it: `GET /containers/{id}/json` (labels), `GET /networks/{id or prefix}` with the
 * network's containers, 404 for a network Docker does not have, or `failWith` for every call.
 */
export async function fakeDockerApi(socketPath: string, networks: DockerContainers): Promise<{ failWith: number | undefined; close(): Promise<void> }> {
  const fake: { failWith: number | undefined; close(): Promise<void> } = { failWith: undefined, close: async () => undefined };
  const server = http.createServer((req, res) => {
    const id = /^\/networks\/([0-9a-f]+)$/.exec(req.url ?? '')?.[1];
    const full = id === undefined ? undefined : [...networks.keys()].find((n) => n.startsWith(id));
    // A container as GET /containers/ID/json shows it: only its labels are asked.
    const cid = /^\/containers\/([0-9a-f]+)\/json$/.exec(req.url ?? '')?.[1];
    const container = cid === undefined ? undefined : [...networks.values()].find((cs) => cs[cid] !== undefined)?.[cid];
    const [status, body] = fake.failWith ? [fake.failWith, { message: 'simulated failure' }]
      : container ? [200, { Id: cid, Config: { Labels: container.Labels ?? null } }]
      : full ? [200, { Id: full, Containers: networks.get(full) }] : [404, { message: `no such ${cid ? 'container' : 'network'} ${cid ?? id}` }];
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  });
  rmSync(socketPath, { force: true });
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  fake.close = () => new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
  return fake;
}
