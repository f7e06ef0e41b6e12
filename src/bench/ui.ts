// npm run bench:ui — the web UI's first paint (issue 16): a tenant with 1,000 endpoints (10 groups, 4
// hosts, made through the API of a real `weft server`), opened in Debian's headless Chromium with a
// token, timed from navigation start until its topology is drawn and painted (the UI reads all 1,000 and
// draws the first 300 rows: a screenful and more; groups off screen are laid out when scrolled to), and
// its policy matrix painted. The anchor, in the same browser: a static page holding the same rows as the
// UI drew (what painting that much costs with no UI at all). Each sample is a new browser context (no
// cache). Then the server alone: the matrix of all groups through the API (each a new question: no
// cache). BENCH_UI_ENDPOINTS, BENCH_UI_GROUPS, BENCH_UI_RULES (rules with distinct CIDRs in the
// policy of every third group), BENCH_UI_RUNS. Needs no root (as root, the browser runs in a network
// namespace of its own: testkit/browser.ts); cleans up (server, browser and its namespace).
import { startServerProcess, http } from '../testkit/server.js';
import { startBrowser } from '../testkit/browser.js';
import { summarise } from './stats.js';

const ENDPOINTS = Number(process.env['BENCH_UI_ENDPOINTS'] ?? 1000);
const GROUPS = Number(process.env['BENCH_UI_GROUPS'] ?? 10);
const HOSTS = 4;
const RUNS = Number(process.env['BENCH_UI_RUNS'] ?? 10);
const RULES = Number(process.env['BENCH_UI_RULES'] ?? 2);

async function main(): Promise<void> {
  const browser = await startBrowser();
  // Where the browser reaches us (as root it runs in a namespace of its own: testkit/browser.ts).
  const server = await startServerProcess({ listen: `${browser.serverHost}:0` }).catch(async (e) => {
    await browser.stop();
    throw e;
  });
  try {
    const call = async (m: string, p: string, b?: unknown) => {
      const r = await http(server.url, server.token, m, p, b);
      if (r.status >= 300) throw new Error(`${m} ${p}: ${JSON.stringify(r.json)}`);
      return r.json;
    };
    await call('POST', '/api/v1/tenants', { name: 'shop' });
    await call('POST', '/api/v1/tenants/shop/networks', { name: 'net', subnet: '10.20.0.0/16' });
    const gname = (g: number) => `g${String(g).padStart(2, '0')}`;
    for (let g = 0; g < GROUPS; g++) await call('POST', '/api/v1/tenants/shop/groups', { name: gname(g), network: 'net' });
    // Past the first two, rules from distinct /32 sources with a port each (the shape that splits groups most).
    await call('POST', '/api/v1/tenants/shop/policies', { name: 'locked', rules: [
      { id: '1', direction: 'in', priority: 1, protocol: 'tcp', action: 'deny' },
      { id: '2', direction: 'in', priority: 10, protocol: 'tcp', ports: '80', fromGroup: 'g00', action: 'allow' },
      ...Array.from({ length: Math.max(0, RULES - 2) }, (_, i) => ({ id: String(i + 3), direction: 'in', priority: 20, protocol: 'tcp', ports: String(1000 + (i % 5000)), fromCidr: `10.${30 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}/32`, action: 'allow' })),
    ] });
    for (let g = 0; g < GROUPS; g += 3) await call('PUT', `/api/v1/tenants/shop/groups/${gname(g)}`, { name: gname(g), network: 'net', policies: ['locked'] });
    const t0 = Date.now();
    let made = 0;
    await Promise.all(Array.from({ length: 8 }, async () => {
      while (made < ENDPOINTS) {
        const i = made++;
        await call('POST', '/api/v1/endpoints', { tenant: 'shop', network: 'net', group: gname(i % GROUPS), containerId: `c${i}`, containerName: `web-${i}`, host: `host-${i % HOSTS}`, ifname: 'eth0' });
      }
    }));
    console.error(`[bench:ui] ${ENDPOINTS} endpoints made in ${((Date.now() - t0) / 1000).toFixed(1)} s`);

    const timeView = async (view: string, ready: string) => {
      const { page, errors } = await browser.page();
      await page.addInitScript((t) => sessionStorage.setItem('weft.token', t), server.token);
      await page.goto(`${server.url}/ui/#/shop/${view}`);
      await page.waitForSelector(ready, { timeout: 30_000 }).catch(async (e: Error) => {
        const seen = await page.evaluate(() => `${document.querySelector('.status')?.textContent ?? ''} | ${document.querySelector('main')?.textContent?.slice(0, 300) ?? ''}`).catch(() => '');
        throw new Error(`${view}: ${ready} not drawn in 30 s; the page shows: ${seen}; errors: ${errors.join('; ')}`, { cause: e });
      });
      await page.waitForFunction((v) => performance.getEntriesByName(`weft:${v}:painted`).length > 0, view);
      const drawnRows = Number(await page.locator('.body').first().getAttribute('data-drawn') ?? 0);
      const t = await page.evaluate((v) => ({
        fcp: performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? NaN,
        drawn: performance.getEntriesByName(`weft:${v}`)[0]?.startTime ?? NaN,
        painted: performance.getEntriesByName(`weft:${v}:painted`)[0]?.startTime ?? NaN,
      }), view);
      if (errors.length) throw new Error(`the page logged errors: ${errors.join('; ')}`);
      await page.context().close();
      return { ...t, rows: drawnRows };
    };
    const anchor = async (rows: number) => {
      const body = Array.from({ length: rows }, (_, i) => `<tr><td>web-${i}</td><td>10.20.${i >> 8}.${i & 255}</td><td>host-${i % HOSTS}</td><td>active</td></tr>`).join('');
      const html = `<!doctype html><title>anchor</title><table><tbody>${body}</tbody></table><script>requestAnimationFrame(()=>requestAnimationFrame(()=>performance.mark('painted')))</script>`;
      const { page } = await browser.page();
      await page.route('http://anchor.test/', (r) => r.fulfill({ contentType: 'text/html', body: html }));
      await page.goto('http://anchor.test/');
      await page.waitForFunction(() => performance.getEntriesByName('painted').length > 0);
      const t = await page.evaluate(() => ({ fcp: performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? NaN, painted: performance.getEntriesByName('painted')[0]?.startTime ?? NaN }));
      await page.context().close();
      return t;
    };
    const topo = { fcp: [] as number[], drawn: [] as number[], painted: [] as number[] };
    const matrix = { painted: [] as number[] };
    const base = { fcp: [] as number[], painted: [] as number[] };
    const rows = (await timeView('topology', `.body[data-ready="${ENDPOINTS}"]`)).rows; // also warms the server's first reads
    for (let i = 0; i < RUNS; i++) {
      const a = await anchor(rows);
      base.fcp.push(a.fcp);
      base.painted.push(a.painted);
      const t = await timeView('topology', `.body[data-ready="${ENDPOINTS}"]`);
      topo.fcp.push(t.fcp);
      topo.drawn.push(t.drawn);
      topo.painted.push(t.painted);
      matrix.painted.push((await timeView('matrix', '.body[data-ready]')).painted);
      console.error(`[bench:ui] run ${i + 1}/${RUNS}: topology painted at ${t.painted.toFixed(0)} ms, anchor ${a.painted.toFixed(0)} ms`);
    }
    const row = (name: string, all: number[]) => {
      // Chromium now and then records no first-contentful-paint entry for a page: such a run is left out.
      const xs = all.filter((x) => !Number.isNaN(x));
      const s = summarise(xs);
      return `| ${name} | ${s.p50.toFixed(0)} ms | ${s.max.toFixed(0)} ms |${xs.length < all.length ? ` ${all.length - xs.length} of ${all.length} runs without the entry` : ''}`;
    };
    // The server alone: the matrix of every group, each call a question not asked before (no cache).
    const api: number[] = [];
    for (let i = 0; i < Math.max(5, RUNS); i++) {
      const t1 = performance.now();
      await call('GET', `/api/v1/tenants/shop/matrix?protocol=tcp&port=${2000 + i}`);
      api.push(performance.now() - t1);
    }
    console.log(`\n### bench:ui — ${new Date().toISOString()}, ${ENDPOINTS} endpoints in ${GROUPS} groups on ${HOSTS} hosts, ${RULES} rules, ${RUNS} runs each (new browser context each)\n`);
    console.log('| measure (from navigation start) | p50 | max |\n| --- | --- | --- |');
    console.log(row('UI: first contentful paint', topo.fcp));
    console.log(row(`UI: topology of the ${ENDPOINTS}-endpoint tenant drawn (${rows} rows)`, topo.drawn));
    console.log(row(`UI: topology of the ${ENDPOINTS}-endpoint tenant painted (target ≤ 1,000 ms)`, topo.painted));
    console.log(row(`UI: policy matrix of ${Math.min(GROUPS, 60)} groups painted`, matrix.painted));
    console.log(row(`anchor: static page of the same ${rows} rows, first contentful paint`, base.fcp));
    console.log(row(`anchor: static page of the same ${rows} rows painted`, base.painted));
    console.log(row(`server: GET .../matrix of ${Math.min(GROUPS, 60)} groups (${ENDPOINTS} endpoints, ${RULES} rules), wall time`, api));
  } finally {
    await browser.stop().finally(() => server.stop());
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
