import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startTestHost, within, type TestHost } from '../testkit/host.js';

const root = process.getuid?.() === 0;
let h: TestHost;
const bg: ChildProcess[] = [];
const T = '/api/v1/tenants/mx';
const FLOWS: Array<[string, number]> = [['tcp', 80], ['tcp', 53], ['udp', 80], ['udp', 53]];
const CONTAINERS: Array<[string, string]> = [['c1', 'g1'], ['c2', 'g2'], ['c3', 'g3'], ['c4', 'g4'], ['c5', 'na']];

// Echo servers on every flow, and a prober that tries a list of flows concurrently and prints the results.
const SERVER = `const net=require('net'),dgram=require('dgram');for(const p of [80,53]){net.createServer(s=>s.pipe(s)).listen(p);const u=dgram.createSocket('udp4');u.on('message',(m,r)=>u.send(m,r.port,r.address));u.bind(p);}`;
const PROBER = `const net=require('net'),dgram=require('dgram');const t=JSON.parse(process.argv[2]);
Promise.all(t.map(([ip,proto,port])=>new Promise(res=>{const done=(ok)=>{clearTimeout(tm);try{s.destroy?s.destroy():s.close()}catch{};res(ok)};let s;const tm=setTimeout(()=>done(false),700);
if(proto==='tcp'){s=net.connect(port,ip,()=>s.write('x'));s.on('data',()=>done(true));s.on('error',()=>done(false));}
else{s=dgram.createSocket('udp4');s.on('message',()=>done(true));s.on('error',()=>done(false));s.send('x',port,ip);}}))).then(r=>console.log(JSON.stringify(r)));`;

before(async () => {
  if (!root) return;
  h = await startTestHost('mx');
  const ok = async (m: string, p: string, b?: unknown) => {
    const r = await h.api(m, p, b);
    assert.ok(r.status < 300, `${m} ${p}: ${JSON.stringify(r.json)}`);
  };
  await ok('POST', '/api/v1/tenants', { name: 'mx', defaultAction: 'deny' });
  await ok('POST', `${T}/networks`, { name: 'na', subnet: '10.2.1.0/24' });
  await ok('POST', `${T}/networks`, { name: 'nb', subnet: '10.2.2.0/24' });
  for (const [g, n] of [['g1', 'na'], ['g2', 'na'], ['g3', 'nb'], ['g4', 'nb']]) await ok('POST', `${T}/groups`, { name: g, network: n });
  const r = (id: string, x: Record<string, unknown>) => ({ id, ...x });
  await ok('POST', `${T}/policies`, { name: 'egress-all', rules: [r('1', { direction: 'out' })] });
  await ok('POST', `${T}/policies`, { name: 'p-g1', rules: [
    r('1', { fromNetwork: 'nb', protocol: 'tcp', ports: '80', priority: 5 }),
    r('2', { fromGroup: 'g4', action: 'deny', priority: 10 }),
    r('3', { fromGroup: 'g2', protocol: 'udp', ports: '53', priority: 3 }),
  ] });
  await ok('POST', `${T}/policies`, { name: 'p-g2', rules: [
    r('1', { protocol: 'tcp', ports: '80' }),
    r('2', { fromCidr: '10.2.2.0/25', protocol: 'tcp', ports: '80', action: 'deny', priority: 2 }),
  ] });
  await ok('POST', `${T}/policies`, { name: 'p-g3', rules: [r('1', { fromGroup: 'g1' }), r('2', { fromGroup: 'g2', protocol: 'tcp', ports: '53' })] });
  await ok('POST', `${T}/policies`, { name: 'p-g4', rules: [
    r('1', { fromNetwork: 'na', protocol: 'udp' }),
    r('2', { fromNetwork: 'na', protocol: 'udp', ports: '53', action: 'deny' }),
  ] });
  await ok('POST', `${T}/policies`, { name: 'g2-out', rules: [r('1', { direction: 'out', toGroup: 'g3', action: 'deny', priority: 10 })] });
  await ok('PATCH', `${T}/groups/g1`, { policies: ['egress-all', 'p-g1'] });
  await ok('PATCH', `${T}/groups/g2`, { policies: ['egress-all', 'p-g2', 'g2-out'] });
  await ok('PATCH', `${T}/groups/g3`, { policies: ['egress-all', 'p-g3'] });
  await ok('PATCH', `${T}/groups/g4`, { policies: ['egress-all', 'p-g4'] });
  assert.ok(await within(5000, async () => existsSync(join(h.cniConfDir, 'weft-mx-g4.conflist'))) >= 0);
  writeFileSync(join(h.dir, 'server.js'), SERVER);
  writeFileSync(join(h.dir, 'prober.js'), PROBER);
});
after(async () => {
  for (const p of bg) p.kill('SIGKILL');
  await h?.cleanup();
});

test('reachability matrix: real probes match the explain evaluator in every cell', { skip: !root && 'needs root' }, async () => {
  const ip = new Map<string, string>();
  for (const [name, conflist] of CONTAINERS) {
    const netns = await h.container(name);
    const r = await h.cni('ADD', { conflist: `weft-mx-${conflist}`, containerId: name, netns });
    assert.equal(r.code, 0, r.stdout);
    ip.set(name, r.json.ips[0].address.split('/')[0]);
    bg.push(spawn('nsenter', [`--net=${netns}`, process.execPath, join(h.dir, 'server.js')], { stdio: 'ignore' }));
  }
  await new Promise((r) => setTimeout(r, 800));
  const names = CONTAINERS.map(([n]) => n);
  const expected = new Map<string, boolean>();
  const observed = new Map<string, boolean>();
  for (const src of names) {
    const targets = names.filter((d) => d !== src).flatMap((dst) => FLOWS.map(([proto, port]) => [dst, proto, port] as const));
    for (const [dst, proto, port] of targets) {
      const e = await h.api('GET', `${T}/explain?from=${src}&to=${dst}&protocol=${proto}&port=${port}`);
      assert.equal(e.status, 200, JSON.stringify(e.json));
      expected.set(`${src}>${dst}:${port}/${proto}`, e.json.allowed);
    }
    const probe = await h.exec(`${h.tag}-${src}`, [process.execPath, join(h.dir, 'prober.js'), JSON.stringify(targets.map(([d, p, port]) => [ip.get(d), p, port]))], { timeoutMs: 10_000 });
    assert.equal(probe.code, 0, `prober in ${src}: ${probe.stderr}`);
    const results = JSON.parse(probe.stdout) as boolean[];
    targets.forEach(([dst, proto, port], i) => observed.set(`${src}>${dst}:${port}/${proto}`, results[i] as boolean));
  }
  const cols = names.flatMap((d) => FLOWS.map(([p, port]) => `${d}:${port}/${p}`));
  const render = (m: Map<string, boolean>) => [
    `      ${cols.map((c) => c.padEnd(11)).join('')}`,
    ...names.map((s) => `${s.padEnd(6)}${cols.map((c) => (c.startsWith(`${s}:`) ? '·' : m.get(`${s}>${c}`) ? '✓' : '✗').padEnd(11)).join('')}`),
  ].join('\n');
  console.log(`# expected (explain):\n${render(expected).replace(/^/gm, '# ')}\n# observed (probes):\n${render(observed).replace(/^/gm, '# ')}`);
  const diff = [...expected.keys()].filter((k) => expected.get(k) !== observed.get(k));
  const allowed = [...expected.values()].filter(Boolean).length;
  assert.ok(allowed > 5 && allowed < expected.size - 5, `the policy set mixes allowed (${allowed}) and denied cells`);
  assert.deepEqual(diff.map((k) => `${k}: expected ${expected.get(k) ? 'allowed' : 'denied'}, observed ${observed.get(k) ? 'allowed' : 'denied'}`), []);
});
