import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import type { Client } from '../client/index.js';
import type { Datapath } from '../datapath/index.js';
import type { Endpoints } from './endpoints.js';
import type { DockerNetwork } from '../model/index.js';
import { DockerBackend } from './docker/index.js';
import type { Reconciler } from './reconciler.js';
import { DesiredState } from './state.js';

const ID = 'a'.repeat(64);
const mapping = (tenant: string, network: string, pool: string): DockerNetwork =>
  ({ tenant, name: ID.slice(0, 63), network, host: 'h1', pool, revision: 1, createdAt: '', updatedAt: '' });

/** A backend whose server, kernel and reconciler must never be reached: the lookups alone decide. */
function backend(state: DesiredState): DockerBackend {
  const never = () => { throw new Error('reached the server or the kernel'); };
  return new DockerBackend({
    state, client: { request: never } as unknown as Client, reconciler: {} as Reconciler, datapath: {} as Datapath, host: 'h1',
    log: pino({ level: 'silent' }), endpoints: { release: never, with: <T>(_id: string, fn: () => Promise<T>) => fn() } as unknown as Endpoints,
  });
}

test('a Docker network or pool mapped in two tenants is used for neither (fail closed, never the wrong tenant)', async () => {
  const state = new DesiredState();
  state.putDockerNetwork(mapping('blue', 'contiv-net', 'weft-pool1'));
  const one = backend(state);
  await assert.rejects(one.createEndpoint({ NetworkID: ID, EndpointID: 'e'.repeat(64), Interface: null, Options: null }), /Interface.Address/,
    'one mapping: found (then stopped for want of an address)');
  state.putDockerNetwork(mapping('evil', 'trap-net', 'weft-pool1'));
  const two = backend(state);
  await assert.rejects(two.createEndpoint({ NetworkID: ID, EndpointID: 'e'.repeat(64), Interface: { Address: '10.1.2.5/24' }, Options: null }), /mapped to 2 Weft tenants/);
  await assert.rejects(two.join({ NetworkID: ID, EndpointID: 'e'.repeat(64), SandboxKey: '/x', Options: null }), /mapped to 2 Weft tenants/);
  await assert.rejects(two.requestAddress({ PoolID: 'weft-pool1', Address: '', Options: null }), /pool weft-pool1 is mapped to 2 Weft tenants/);
  await assert.rejects(two.deleteNetwork(ID), /mapped to 2 Weft tenants/);
});
