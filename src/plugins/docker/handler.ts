import { ApiError } from '../../client/index.js';
import { WeftError } from '../../model/index.js';
import * as P from './protocol.js';

export interface DockerReply {
  status: number;
  body: unknown;
}

const OK = (body: unknown = {}): DockerReply => ({ status: 200, body });

/** Answers one plugin call. Failures are `{"Err": ...}`: 400 for a malformed request, 500 when the operation failed. */
export async function handleDocker(host: P.DockerHost, path: string, body: string): Promise<DockerReply> {
  try {
    return await dispatch(host, path, body);
  } catch (e) {
    if (e instanceof P.BadRequest) return { status: 400, body: { Err: `weft: ${e.message}` } };
    return { status: 500, body: { Err: messageOf(e) } };
  }
}

async function dispatch(host: P.DockerHost, path: string, body: string): Promise<DockerReply> {
  switch (path) {
    case '/Plugin.Activate': return OK({ Implements: ['NetworkDriver', 'IpamDriver'] });
    case '/NetworkDriver.GetCapabilities': return OK({ Scope: 'local', ConnectivityScope: 'global' });
    case '/NetworkDriver.CreateNetwork': await host.createNetwork(P.parse(P.CreateNetwork, body)); return OK();
    case '/NetworkDriver.DeleteNetwork': await host.deleteNetwork(P.parse(P.NetworkOnly, body).NetworkID); return OK();
    case '/NetworkDriver.CreateEndpoint': return OK(await host.createEndpoint(P.parse(P.CreateEndpoint, body)));
    case '/NetworkDriver.DeleteEndpoint': {
      const r = P.parse(P.EndpointOnly, body);
      await host.deleteEndpoint(r.NetworkID, r.EndpointID);
      return OK();
    }
    case '/NetworkDriver.EndpointOperInfo': P.parse(P.EndpointOnly, body); return OK({ Value: {} });
    case '/NetworkDriver.Join': return OK(await host.join(P.parse(P.Join, body)));
    case '/NetworkDriver.Leave': {
      const r = P.parse(P.EndpointOnly, body);
      await host.leave(r.NetworkID, r.EndpointID);
      return OK();
    }
    case '/NetworkDriver.ProgramExternalConnectivity': {
      const r = P.parse(P.ExternalConnectivity, body);
      await host.programExternalConnectivity({ NetworkID: r.NetworkID, EndpointID: r.EndpointID, Options: r.Options ?? null });
      return OK();
    }
    case '/NetworkDriver.RevokeExternalConnectivity': await host.revokeExternalConnectivity(P.parse(P.ExternalConnectivity, body)); return OK();
    case '/NetworkDriver.DiscoverNew':
    case '/NetworkDriver.DiscoverDelete':
      return OK();
    // No MAC from Docker: an endpoint's MAC is the one Weft derives from its address (the same again when the address is reused).
    case '/IpamDriver.GetCapabilities': return OK({ RequiresMACAddress: false, RequiresRequestReplay: false });
    case '/IpamDriver.GetDefaultAddressSpaces': return OK({ LocalDefaultAddressSpace: 'weft', GlobalDefaultAddressSpace: 'weft' });
    case '/IpamDriver.RequestPool': return OK(await host.requestPool(P.parse(P.RequestPool, body)));
    case '/IpamDriver.ReleasePool': await host.releasePool(P.parse(P.ReleasePool, body).PoolID); return OK();
    case '/IpamDriver.RequestAddress': return OK(await host.requestAddress(P.parse(P.RequestAddress, body)));
    case '/IpamDriver.ReleaseAddress': await host.releaseAddress(P.parse(P.ReleaseAddress, body)); return OK();
    default: return { status: 404, body: { Err: `${path}: not implemented by the weft plugin` } };
  }
}

function messageOf(e: unknown): string {
  if (e instanceof ApiError || e instanceof WeftError) return `weft: ${e.message}`;
  return `weft: ${(e as Error)?.message ?? String(e)}`;
}
