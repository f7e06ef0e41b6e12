import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { labDockerSocket, type LabState } from '../lab/index.js';
import type { LabApi } from './api.js';
import type { Prng } from './prng.js';
import type { Recorder } from './recorder.js';

export interface PluginAnswer { status: number; err: string }

/** One POST as libnetwork sends it; status 0 when the socket gave no HTTP answer (reset, hang). */
export function callPlugin(socketPath: string, path: string, body: string, method = 'POST'): Promise<PluginAnswer> {
  return new Promise((resolve) => {
    const req = http.request({ socketPath, path, method, timeout: 10_000, headers: { 'content-type': 'application/json' } }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (d: string) => (text += d));
      res.on('end', () => {
        let err: unknown;
        try { err = (JSON.parse(text) as { Err?: unknown }).Err; } catch { err = `(not JSON) ${text.slice(0, 200)}`; }
        resolve({ status: res.statusCode ?? 0, err: typeof err === 'string' ? err : JSON.stringify(err) ?? '' });
      });
      res.on('error', (e) => resolve({ status: 0, err: e.message }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (e) => resolve({ status: 0, err: e.message }));
    req.end(body);
  });
}

const hex = () => randomBytes(32).toString('hex');
const NET = 'NetworkDriver';

/**
 * A plugin call that must be answered `status` with an `Err` naming `names` (the field, or the unknown
 * id). Unknown ids in a release (DeleteEndpoint, ReleasePool, ...) are answered 200: Docker retries
 * releases, so they are idempotent, and must change nothing all the same.
 */
interface DockerCase { what: string; path: string; status: number; names: (b: Record<string, string>) => string; body: (b: Record<string, string>) => string; method?: string }

const J = JSON.stringify;
const CASES: DockerCase[] = [
  { what: 'body that is not JSON', path: `/${NET}.CreateNetwork`, status: 400, names: () => 'not JSON', body: () => '{"NetworkID": ' },
  { what: 'body of 2 MB', path: `/${NET}.CreateNetwork`, status: 413, names: () => 'body', body: () => J({ NetworkID: 'x'.repeat(2_000_000) }) },
  { what: 'body that is an array', path: '/IpamDriver.RequestPool', status: 400, names: () => 'body', body: () => '[]' },
  { what: 'NetworkID of the wrong type', path: `/${NET}.CreateNetwork`, status: 400, names: () => 'NetworkID', body: () => J({ NetworkID: 42, Options: null, IPv4Data: null, IPv6Data: null }) },
  { what: 'NetworkID of 200 kB', path: `/${NET}.Join`, status: 400, names: () => 'NetworkID', body: (b) => J({ NetworkID: 'f'.repeat(200_000), EndpointID: b.ep, SandboxKey: '/x', Options: null }) },
  { what: 'generic options as a string', path: `/${NET}.CreateNetwork`, status: 400, names: () => 'Options.com.docker.network.generic',
    body: (b) => J({ NetworkID: b.net, Options: { 'com.docker.network.generic': 'tenant=default' }, IPv4Data: null, IPv6Data: null }) },
  { what: 'tenant option that is not a name', path: `/${NET}.CreateNetwork`, status: 400, names: () => 'tenant',
    body: (b) => J({ NetworkID: b.net, Options: { 'com.docker.network.generic': { tenant: '../../global', network: 'cn' } }, IPv4Data: null, IPv6Data: null }) },
  { what: 'Interface as a string', path: `/${NET}.CreateEndpoint`, status: 400, names: () => 'Interface', body: (b) => J({ NetworkID: b.net, EndpointID: b.ep, Interface: '10.77.0.9/24', Options: null }) },
  { what: 'Join without SandboxKey', path: `/${NET}.Join`, status: 400, names: () => 'SandboxKey', body: (b) => J({ NetworkID: b.net, EndpointID: b.ep, Options: null }) },
  { what: 'PoolID of the wrong type', path: '/IpamDriver.RequestAddress', status: 400, names: () => 'PoolID', body: () => J({ PoolID: 42, Address: '', Options: null }) },
  { what: 'V6 as a word', path: '/IpamDriver.RequestPool', status: 400, names: () => 'V6', body: () => J({ AddressSpace: 'weft', Pool: '', SubPool: '', Options: null, V6: 'yes' }) },
  { what: 'unknown method', path: `/${NET}.Explode`, status: 404, names: () => 'Explode', body: () => '{}' },
  { what: 'GET instead of POST', path: '/Plugin.Activate', status: 405, names: () => 'GET', body: () => '', method: 'GET' },
  { what: 'tenant that does not exist', path: `/${NET}.CreateNetwork`, status: 500, names: () => 'nosuchtenant',
    body: (b) => J({ NetworkID: b.net, Options: { 'com.docker.network.generic': { tenant: 'nosuchtenant', network: 'cn' } }, IPv4Data: null, IPv6Data: null }) },
  { what: 'CreateEndpoint on an unknown network', path: `/${NET}.CreateEndpoint`, status: 500, names: (b) => b.net!.slice(0, 12),
    body: (b) => J({ NetworkID: b.net, EndpointID: b.ep, Interface: { Address: '10.77.0.9/24' }, Options: null }) },
  { what: 'Join of an unknown endpoint', path: `/${NET}.Join`, status: 500, names: (b) => b.net!.slice(0, 12), body: (b) => J({ NetworkID: b.net, EndpointID: b.ep, SandboxKey: '/x', Options: null }) },
  { what: 'RequestAddress from an unknown pool', path: '/IpamDriver.RequestAddress', status: 500, names: (b) => b.pool!, body: (b) => J({ PoolID: b.pool, Address: '', Options: null }) },
  { what: 'DeleteEndpoint of an unknown endpoint', path: `/${NET}.DeleteEndpoint`, status: 200, names: () => '', body: (b) => J({ NetworkID: b.net, EndpointID: b.ep }) },
  { what: 'DeleteNetwork of an unknown network', path: `/${NET}.DeleteNetwork`, status: 200, names: () => '', body: (b) => J({ NetworkID: b.net }) },
  { what: 'ReleaseAddress in an unknown pool', path: '/IpamDriver.ReleaseAddress', status: 200, names: () => '', body: (b) => J({ PoolID: b.pool, Address: '10.77.0.9' }) },
];

interface DockerState { endpoints: string[]; networks: string[] }

/** What a Docker call could change on the server: this host's Docker endpoints (by Docker's endpoint ID) and network mappings. */
async function dockerState(api: LabApi, host: string): Promise<DockerState | undefined> {
  const eps = await api.call('GET', '/api/v1/endpoints');
  const nets = await api.call('GET', '/api/v1/tenants/default/docker-networks');
  if (eps.status !== 200 || nets.status !== 200) return undefined;
  const mine = (eps.json.items as Array<{ containerId: string; host: string; labels?: Record<string, string> }>).filter((e) => e.host === host && e.labels?.['runtime'] === 'docker');
  return { endpoints: mine.map((e) => e.containerId).sort(), networks: (nets.json.items as Array<{ name: string }>).map((n) => n.name).sort() };
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * The state once the plugin's background releases are done: the plugin answers DeleteEndpoint at once
 * and releases afterwards (Docker waits on that call to remove a container), so a `docker rm -f` that
 * returned just before may still release its endpoint. Read until two reads 500 ms apart agree (≤ 5 s).
 */
async function settledState(api: LabApi, host: string): Promise<DockerState | undefined> {
  let last = await dockerState(api, host);
  for (const end = Date.now() + 5_000; Date.now() < end;) {
    await sleep(500);
    const now = await dockerState(api, host);
    if (now && last && J(now) === J(last)) return now;
    last = now;
  }
  return last;
}

/**
 * What the malformed request changed: an endpoint or network that appeared, a network that went, or an
 * endpoint gone whose container Docker still runs. An endpoint gone whose container was removed is the
 * plugin finishing that removal in the background (retried while the server was away), not this request.
 */
export function dockerChanges(before: DockerState, after: DockerState, running: ReadonlySet<string>): string[] {
  const out: string[] = [];
  const b = new Set(before.endpoints);
  const a = new Set(after.endpoints);
  for (const e of a) if (!b.has(e)) out.push(`endpoint ${e.slice(0, 12)} appeared`);
  for (const e of b) if (!a.has(e) && running.has(e)) out.push(`endpoint ${e.slice(0, 12)} of a running container went`);
  if (J(before.networks) !== J(after.networks)) out.push(`networks ${J(before.networks)} became ${J(after.networks)}`);
  return out;
}

/** Malformed Docker plugin input to one host's agent: a precise error, nothing changed, the plugin still serving. */
export async function sendDockerMalformed(s: LabState, api: LabApi, rec: Recorder, prng: Prng, hosts: number[], running: () => ReadonlySet<string>, n = 3): Promise<void> {
  for (let k = 0; k < n && hosts.length; k++) {
    const c = prng.draw(CASES);
    const host = prng.pick(hosts);
    const h = s.hosts[host]!;
    const sock = labDockerSocket(h.dir);
    const ids = { net: hex(), ep: hex(), pool: `weft-${randomBytes(8).toString('hex')}` };
    rec.fault('malformed Docker plugin input', `${c.what} on ${h.name}`);
    const before = await settledState(api, h.name);
    const r = await callPlugin(sock, c.path, c.body(ids), c.method);
    const names = c.names(ids);
    rec.check('malformed Docker input refused precisely', r.status === c.status && r.err.includes(names),
      () => `${c.what} (${c.path}): ${r.status} ${r.err.slice(0, 300)} (expected ${c.status}${names ? ` with an Err naming '${names}'` : ''})`);
    const after = await dockerState(api, h.name);
    const changed = before && after ? dockerChanges(before, after, running()) : ['the server did not answer'];
    rec.check('malformed Docker input changed nothing', changed.length === 0, () => `${c.what}: ${changed.join('; ')} (before ${J(before)}, after ${J(after)})`);
    const alive = await callPlugin(sock, '/Plugin.Activate', '');
    rec.check('Docker plugin still serving after malformed input', alive.status === 200, () => `${h.name}'s plugin after '${c.what}': ${alive.status} ${alive.err}`);
  }
}
