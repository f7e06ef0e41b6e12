import http from 'node:http';

/**
 * The little the agent asks the Docker Engine API: which container an endpoint belongs to. The plugin
 * protocol never says (Join gets only a sandbox path), but `weft endpoint ls` should.
 */
export async function containerOfEndpoint(socketPath: string, networkId: string, endpointId: string): Promise<{ id: string; name: string } | undefined> {
  for (const [id, c] of Object.entries(await containersOf(socketPath, networkId))) {
    if (c.EndpointID === endpointId && c.Name) return { id, name: c.Name };
  }
  return undefined;
}

/** A container's labels (`docker run --label`), {} when it has none. */
export async function labelsOfContainer(socketPath: string, containerId: string): Promise<Record<string, string>> {
  if (!/^[0-9a-f]{12,64}$/.test(containerId)) throw new DockerApiError(400, `'${containerId.slice(0, 80)}' is not a container id`);
  const c = JSON.parse(await get(socketPath, `/containers/${containerId}/json`)) as { Config?: { Labels?: Record<string, string> | null } };
  return c.Config?.Labels ?? {};
}

/** The endpoint IDs Docker has on a network (a network ID prefix is enough). */
export async function endpointsOfNetwork(socketPath: string, networkId: string): Promise<string[]> {
  return Object.values(await containersOf(socketPath, networkId)).map((c) => c.EndpointID ?? '').filter(Boolean);
}

async function containersOf(socketPath: string, networkId: string): Promise<Record<string, { Name?: string; EndpointID?: string }>> {
  const body = await get(socketPath, `/networks/${networkId}`);
  return (JSON.parse(body) as { Containers?: Record<string, { Name?: string; EndpointID?: string }> }).Containers ?? {};
}

export class DockerApiError extends Error {
  constructor(readonly status: number, msg: string) {
    super(msg);
  }
}

function get(socketPath: string, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath, path, method: 'GET', timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => (res.statusCode === 200 ? resolve(body) : reject(new DockerApiError(res.statusCode ?? 0, `docker ${path}: HTTP ${res.statusCode} ${body.trim()}`))));
    });
    req.on('timeout', () => req.destroy(new Error(`docker ${path}: timed out`)));
    req.on('error', reject);
    req.end();
  });
}
