// npm run bench:scale — issue 13's scale simulation. One real `weft server` (SQLite, then etcd: a 1-member
// etcd this bench starts) and 1,000 simulated agents in a few worker processes, each a joined host with its
// own certificate that lists and watches like the real agent and holds its host's 50 endpoints (50,000 in
// all, made through the API as the CNI ADD path makes them). Changes (rules, a group, an endpoint) are timed
// until every agent has applied them, against a trivial Node HTTPS server's fan-out in the same run; then
// the real agent's memory per endpoint (1, 1,000, 5,000 endpoints on its host; root, kernel datapath).
// Everything it starts is stopped by pid. Sizes: --hosts, --endpoints, --rounds (see --help).
import { cpus, loadavg, totalmem } from 'node:os';
import { parseArgs } from 'node:util';
import { runFleet, type FleetOptions } from './scale-fleet-run.js';
import { fleetReport } from './scale-report.js';
import { memoryReport, runMemory } from './scale-memory.js';

const HELP = `npm run bench:scale -- [options]
  --stores sqlite,etcd    stores to run the fleet on, in order (default: sqlite,etcd)
  --hosts N               simulated agents, one joined host each (default 1000)
  --endpoints N           endpoints per host, made through the API (default 50)
  --rounds N              rounds of the five changes per phase, each change timed (default 20)
  --workers N             worker processes holding the simulated agents (default 2)
  --clients N             concurrent API clients for joins and allocations (default 4)
  --heartbeat-ms N        the agents' heartbeat in the second phase (default 10000, the agent's)
  --heartbeat-rounds N    rounds of the five changes with heartbeats on (default 4)
  --memory-counts LIST    endpoints on the real agent's host for the memory part (default 1,1000,5000)
  --skip fleet|memory     leave a part out
Run it under flock /work/e2e.lock on a shared machine; the memory part needs root.`;

const { values: a } = parseArgs({
  options: {
    stores: { type: 'string', default: 'sqlite,etcd' }, hosts: { type: 'string', default: '1000' }, endpoints: { type: 'string', default: '50' },
    rounds: { type: 'string', default: '20' }, workers: { type: 'string', default: '2' }, clients: { type: 'string', default: '4' },
    'heartbeat-ms': { type: 'string', default: '10000' }, 'heartbeat-rounds': { type: 'string', default: '4' }, 'memory-counts': { type: 'string', default: '1,1000,5000' },
    skip: { type: 'string', multiple: true, default: [] }, help: { type: 'boolean', default: false },
  },
});
if (a.help) {
  console.log(HELP);
  process.exit(0);
}
const int = (name: string, v: string | undefined, min: number) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) {
    console.error(`--${name}: '${v}' is not a whole number ≥ ${min}\n\n${HELP}`);
    process.exit(2);
  }
  return n;
};
const o: FleetOptions = {
  hosts: int('hosts', a.hosts, 1), endpointsPerHost: int('endpoints', a.endpoints, 1), rounds: int('rounds', a.rounds, 1),
  workers: int('workers', a.workers, 1), clients: int('clients', a.clients, 1), heartbeatMs: int('heartbeat-ms', a['heartbeat-ms'], 100),
  heartbeatRounds: int('heartbeat-rounds', a['heartbeat-rounds'], 1), timeoutMs: 30_000,
};
const stores = (a.stores ?? '').split(',').filter(Boolean);
for (const s of stores) if (s !== 'sqlite' && s !== 'etcd') {
  console.error(`--stores: '${s}' is not sqlite or etcd`);
  process.exit(2);
}
const counts = (a['memory-counts'] ?? '').split(',').map((x) => int('memory-counts', x, 1));
const log = (s: string) => console.error(`[bench:scale ${new Date().toISOString().slice(11, 19)}] ${s}`);

const date = new Date().toISOString().slice(0, 10);
console.log(`### bench:scale — ${date}, ${cpus().length} × ${cpus()[0]?.model.trim()}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}`);
console.log(`\nLoad average at the start: ${loadavg().map((x) => x.toFixed(1)).join(', ')} (above ${cpus().length} means others were using the machine).\n`);
console.log(`${o.hosts} simulated agents in ${o.workers} worker processes, ${o.endpointsPerHost} endpoints per host (${o.hosts * o.endpointsPerHost} in all).\n`);
if (!a.skip?.includes('fleet')) {
  for (const store of stores) {
    // A store's run that fails (a deadline, a server that stopped answering) is reported, and the next runs.
    const report = await runFleet(store as 'sqlite' | 'etcd', o, log).then((r) => fleetReport(r, o), (e: Error) => `#### ${store}\n\nfailed: ${e.message}\n`);
    console.log(report);
  }
}
if (!a.skip?.includes('memory')) console.log(await runMemory(counts, log).then(memoryReport, (e: Error) => `#### the real agent: memory per endpoint\n\nfailed: ${e.message}\n`));
console.log(`Load average at the end: ${loadavg().map((x) => x.toFixed(1)).join(', ')}.`);
