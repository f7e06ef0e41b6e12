// bench:api's `explain` part: what tenant users asking `weft explain` in a loop cost everyone else.
import { makeShape } from './policy-shapes.js';
import { ms, summarise } from './stats.js';

const RULES = Number(process.env['BENCH_EXPLAIN_RULES'] ?? 10_000);
const ASKERS = 4;
const LOOP_MS = 3000;

type Call = (method: string, path: string, token: string, body?: unknown) => Promise<{ status: number; body: string }>;

/**
 * A tenant with RULES rules of the shape (distinct `fromCidr` /32 with a port each, on `db`) and
 * an endpoint in `app` and one in `db`; one question between them (checked to be decided by the rule
 * deep in the set that the shape says) cold and asked again (the kept evaluator); then a bystander's `GET /api/v1/tenants`
 * every 20 ms, alone and while ASKERS users of the tenant ask explain in a loop (each may have two under
 * way; beyond, 429).
 */
export async function explainRows(call: Call, admin: string): Promise<string[]> {
  const ok = async (r: Promise<{ status: number; body: string }>, what: string) => {
    const x = await r;
    if (x.status >= 300) throw new Error(`${what}: HTTP ${x.status} ${x.body.slice(0, 300)}`);
    return x;
  };
  const t = 'bench-explain';
  await ok(call('POST', '/api/v1/tenants', admin, { name: t }), 'tenant');
  await ok(call('POST', `/api/v1/tenants/${t}/networks`, admin, { name: 'n', subnet: '10.40.0.0/16' }), 'network');
  const shape = makeShape('cidr', RULES, { app: '10.40.0.2', db: '10.40.0.3' });
  for (const p of shape.policies) await ok(call('POST', `/api/v1/tenants/${t}/policies`, admin, { name: p.name, rules: p.rules }), 'policy');
  await ok(call('POST', `/api/v1/tenants/${t}/groups`, admin, { name: 'db', network: 'n', policies: shape.policies.map((p) => p.name) }), 'group');
  await ok(call('POST', `/api/v1/tenants/${t}/groups`, admin, { name: 'app', network: 'n' }), 'group');
  // Both ends are endpoints, so the question reads db's rules (an address that is no endpoint has none).
  for (const [group, ip] of [['app', '10.40.0.2'], ['db', '10.40.0.3']] as const) {
    await ok(call('POST', '/api/v1/endpoints', admin, { tenant: t, network: 'n', group, host: 'bench-explain', containerId: `${group}`.padEnd(64, '0'), ifname: 'eth0', ip }), 'endpoint');
  }
  const tokens: string[] = [];
  for (let i = 0; i < ASKERS; i++) {
    const name = `asker${i}`;
    await ok(call('POST', '/api/v1/users', admin, { name, role: 'tenant', tenants: [t], password: `${name}-password-1` }), 'user');
    tokens.push(JSON.parse((await ok(call('POST', '/api/v1/login', '', { username: name, password: `${name}-password-1` }), 'login')).body).token as string);
  }
  const question = `/api/v1/tenants/${t}/explain?from=10.40.0.2&to=10.40.0.3&protocol=tcp&port=5201`;
  const decided = shape.flows.find((f) => f.port === 5201)?.ingress;
  const timed = async () => {
    const t0 = performance.now();
    const r = await ok(call('GET', question, tokens[0] as string), 'explain');
    const ms = performance.now() - t0;
    const rule = (JSON.parse(r.body) as { ingress?: { rule?: { id?: string } } }).ingress?.rule?.id;
    if (rule !== decided) throw new Error(`explain answered by rule ${rule}, not ${decided}: it did not read the rules`);
    return ms;
  };
  const cold = await timed();
  const kept = median3(await timed(), await timed(), await timed());
  const bystander = async (during: () => boolean) => {
    const lat: number[] = [];
    const end = Date.now() + LOOP_MS;
    while (Date.now() < end && during()) {
      const t0 = performance.now();
      await ok(call('GET', '/api/v1/tenants', admin), 'bystander');
      lat.push(performance.now() - t0);
      await new Promise((r) => setTimeout(r, 20));
    }
    return summarise(lat);
  };
  const idle = await bystander(() => true);
  let stop = false;
  let failure: Error | undefined;
  const answered = { ok: 0, busy: 0 };
  const askers = tokens.flatMap((token) => [0, 1, 2].map(() => (async () => {
    while (!stop) {
      // A port of its own each time: no rule of the set names most of them, so each question decides down
      // every rule (the hostile case; the same question again would find its answer early).
      const r = await call('GET', question.replace(/port=5201$/, `port=${1024 + Math.floor(Math.random() * 60_000)}`), token);
      if (r.status === 200) answered.ok++;
      else if (r.status === 429) answered.busy++;
      else throw new Error(`explain under load: HTTP ${r.status} ${r.body.slice(0, 200)}`);
    }
  })().catch((e: Error) => {
    // Held until the bystander is done, then thrown: the server is stopped by the caller either way.
    failure ??= e;
    stop = true;
  })));
  const loaded = await bystander(() => !stop);
  stop = true;
  await Promise.all(askers);
  if (failure) throw failure;
  return [
    `| explain at ${RULES.toLocaleString('en')} rules (distinct /32 sources with ports): first question / asked again (p50 of 3) | ${ms(cold)} / ${ms(kept)} | (recorded) |`,
    `| a bystander's GET /api/v1/tenants every 20 ms, p50 / p99: alone | ${ms(idle.p50)} / ${ms(idle.p99)} | (recorded) |`,
    `| the same while ${ASKERS} tenant users ask explain in a loop, a random port each time (3 at once each; ${answered.ok} answered, ${answered.busy} × 429 in ${LOOP_MS / 1000} s) | ${ms(loaded.p50)} / ${ms(loaded.p99)} | (recorded) |`,
  ];
}

const median3 = (a: number, b: number, c: number) => [a, b, c].sort((x, y) => x - y)[1] as number;
