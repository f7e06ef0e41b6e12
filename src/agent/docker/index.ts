import type { CreateEndpoint, CreateNetwork, DockerHost, Join, JoinResult, ReleaseAddress, RequestAddress, RequestPool } from '../../plugins/docker/index.js';
import { DockerCollector } from './collector.js';
import { DockerIpam } from './ipam.js';
import { DockerMappings, type DockerDeps } from './mappings.js';
import { DockerNetworkDriver } from './network.js';

export type { DockerDeps } from './mappings.js';

/**
 * The agent as Docker's network and IPAM driver, split as libnetwork splits them: the IPAM driver
 * (`ipam.ts`: pools, and addresses reserved as placeholder endpoints), the network driver (`network.ts`:
 * networks, endpoints, Join, published ports) and the collector (`collector.ts`: endpoints Docker no
 * longer has). They share only the server's mappings of Docker networks (`mappings.ts`); the network
 * driver claims the pool IPAM holds pending for a network.
 */
export class DockerBackend implements DockerHost {
  private readonly ipam: DockerIpam;
  private readonly network: DockerNetworkDriver;
  private readonly collector: DockerCollector;

  constructor(d: DockerDeps) {
    const m = new DockerMappings(d);
    this.ipam = new DockerIpam(d, m);
    this.network = new DockerNetworkDriver(d, m, (cidr, tenant, network, v6) => this.ipam.claimPool(cidr, tenant, network, v6));
    this.collector = new DockerCollector(d, m);
  }

  requestPool(r: RequestPool): Promise<{ PoolID: string; Pool: string; Data: Record<string, string> }> { return this.ipam.requestPool(r); }
  releasePool(poolId: string): Promise<void> { return this.ipam.releasePool(poolId); }
  requestAddress(r: RequestAddress): Promise<{ Address: string; Data: Record<string, string> }> { return this.ipam.requestAddress(r); }
  releaseAddress(r: ReleaseAddress): Promise<void> { return this.ipam.releaseAddress(r); }

  createNetwork(r: CreateNetwork): Promise<void> { return this.network.createNetwork(r); }
  deleteNetwork(networkId: string): Promise<void> { return this.network.deleteNetwork(networkId); }
  createEndpoint(r: CreateEndpoint): Promise<{ Interface?: { MacAddress: string } }> { return this.network.createEndpoint(r); }
  join(r: Join): Promise<JoinResult> { return this.network.join(r); }
  leave(): Promise<void> { return this.network.leave(); }
  programExternalConnectivity(r: { NetworkID: string; EndpointID: string; Options: Record<string, unknown> | null }): Promise<void> { return this.network.programExternalConnectivity(r); }
  revokeExternalConnectivity(r: { NetworkID: string; EndpointID: string }): Promise<void> { return this.network.revokeExternalConnectivity(r); }
  deleteEndpoint(networkId: string, endpointId: string): Promise<void> { return this.network.deleteEndpoint(networkId, endpointId); }

  /** See DockerCollector: run by maintenance after each full resync. */
  collect(graceMs: number): Promise<string[]> { return this.collector.collect(graceMs); }
}
