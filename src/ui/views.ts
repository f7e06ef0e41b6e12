import { fill, h, table } from './dom.js';
import { enc, type Ctx, type Page } from './page.js';
import { ago, backends, endpointName, topology, type Endpoint, type Group, type Host, type Network, type PublicChange, type Service } from './logic.js';

interface List<T> { items: T[] }

/**
 * Rows drawn at first, over all groups (each group at most FIRST_ROWS of them): what a screen can show,
 * built and laid out at once whatever the tenant's size or shape; the rest on "Show all" or by Find.
 */
const FIRST_ROWS = 50;
const ROW_BUDGET = 300;

/** Tenants → networks → groups → endpoints, across hosts; a filter by name, address or host. */
export async function topologyView(ctx: Ctx): Promise<Page> {
  const body = h('div', { class: 'body' });
  const find = h('input', { id: 'topo-find', name: 'find', type: 'search', placeholder: 'name, address or host', autocomplete: 'off' });
  const form = h('form', { class: 'filters', role: 'search', aria: { label: 'find endpoints' } }, h('label', { for: 'topo-find' }, 'Find'), find);
  fill(ctx.main, h('h1', {}, `Topology of ${ctx.tenant}`), form, body);
  /** Groups (network/group) shown in full. */
  const whole = new Set<string>();
  let data: { nets: Network[]; groups: Group[]; eps: Endpoint[] } | undefined;
  const draw = () => {
    if (!data) return;
    const q = find.value.trim().toLowerCase();
    const shown = q ? data.eps.filter((e) => [endpointName(e), e.containerId, e.ip ?? '', e.ip6 ?? '', e.host].some((x) => x.toLowerCase().includes(q))) : data.eps;
    const tree = topology(data.nets, data.groups, shown);
    let budget = ROW_BUDGET;
    fill(body,
      h('p', {}, `${data.nets.length} networks, ${data.groups.length} groups, ${data.eps.length} endpoints${q ? `; ${shown.length} match "${find.value.trim()}"` : ''}`),
      tree.length === 0 ? h('p', {}, 'No networks yet: weft net create -s 10.1.0.0/24 NAME') : null,
      tree.map((n) => h('section', { class: 'network', aria: { label: `network ${n.network.name}` } },
        h('h2', {}, `network ${n.network.name}`, h('span', { class: 'meta' }, ` ${[n.network.subnet, n.network.subnet6].filter(Boolean).join(', ')} · ${n.network.encap ?? 'vxlan'}${n.network.vni ? ` vni ${n.network.vni}` : ''} · hosts: ${n.hosts.join(', ') || 'none'}`)),
        n.groups.filter((g) => !q || g.endpoints.length > 0).map((g) => {
          const key = `${n.network.name}/${g.name}`;
          const title = `group ${g.name}: ${g.endpoints.length} endpoint${g.endpoints.length === 1 ? '' : 's'}`;
          const rows = whole.has(key) ? g.endpoints : g.endpoints.slice(0, Math.min(FIRST_ROWS, budget));
          budget = Math.max(0, budget - rows.length);
          const more = g.endpoints.length - rows.length;
          const all = more > 0 ? h('button', { type: 'button', on: { click: () => { whole.add(key); draw(); } } }, `Show ${rows.length ? 'all ' : ''}${g.endpoints.length} endpoints of ${g.name}`) : null;
          if (rows.length === 0 && g.endpoints.length > 0) return h('div', { class: 'groupbox folded', data: { group: g.name } }, h('h3', {}, title), all);
          return h('div', { class: 'groupbox' },
            table(title, ['Endpoint', 'Address', 'Host', 'State'], rows.map((e) => [endpointName(e), e.ip ?? e.ip6 ?? '', e.host, e.state]), { class: 'group', data: { group: g.name } }),
            all);
        }))));
    body.setAttribute('data-ready', String(data.eps.length));
    body.setAttribute('data-drawn', String(ROW_BUDGET - budget));
  };
  find.addEventListener('input', draw);
  form.addEventListener('submit', (e) => e.preventDefault());
  const refresh = async () => {
    const t = enc(ctx.tenant);
    const [nets, groups, eps] = await Promise.all([
      ctx.api.get<List<Network>>(`/api/v1/tenants/${t}/networks`, ctx.signal),
      ctx.api.get<List<Group>>(`/api/v1/tenants/${t}/groups`, ctx.signal),
      ctx.api.get<List<Endpoint>>(`/api/v1/endpoints?tenant=${t}`, ctx.signal),
    ]);
    data = { nets: nets.items, groups: groups.items, eps: eps.items };
    draw();
  };
  await refresh();
  return { refresh };
}

/** Hosts with their health: up or down (heartbeats), when last heard, the tunnel's state. */
export async function hostsView(ctx: Ctx): Promise<Page> {
  const body = h('div', { class: 'body' });
  fill(ctx.main, h('h1', {}, 'Hosts'), body);
  // Read by the watch's redraws and by its own timer: a read that finishes after a later one is not drawn.
  let asked = 0;
  let drawn = 0;
  const refresh = async () => {
    const n = ++asked;
    const [hosts, eps] = await Promise.all([ctx.api.get<List<Host>>('/api/v1/hosts', ctx.signal), ctx.api.get<List<Endpoint>>(`/api/v1/endpoints?tenant=${enc(ctx.tenant)}`, ctx.signal)]);
    if (n < drawn) return;
    drawn = n;
    const count = new Map<string, number>();
    for (const e of eps.items) count.set(e.host, (count.get(e.host) ?? 0) + 1);
    fill(body, table(`${hosts.items.length} hosts`, ['Host', 'State', 'Last heard', 'Agent', 'Encryption', `Endpoints of ${ctx.tenant}`],
      hosts.items.map((x) => [x.name, h('span', { class: `state ${x.state ?? 'unknown'}` }, x.state ?? 'unknown'), ago(x.lastSeen), x.agentVersion ?? '',
        x.wireguard ? (x.wireguard.error ? `wireguard: ${x.wireguard.error}` : `wireguard ${x.wireguard.mode}: ${x.wireguard.handshaken}/${x.wireguard.peers} peers`) : '–',
        count.get(x.name) ?? 0])));
    body.setAttribute('data-ready', String(hosts.items.length));
  };
  await refresh();
  // Liveness is heartbeats, which the watch stream does not carry: read again every 10 s while shown.
  const every = setInterval(() => void refresh().catch(() => undefined), 10_000);
  ctx.signal.addEventListener('abort', () => clearInterval(every));
  return { refresh };
}

/** Services with their VIPs, ports and the endpoints they send to. */
export async function servicesView(ctx: Ctx): Promise<Page> {
  const body = h('div', { class: 'body' });
  fill(ctx.main, h('h1', {}, `Services of ${ctx.tenant}`), body);
  const refresh = async () => {
    const t = enc(ctx.tenant);
    const [svcs, eps] = await Promise.all([ctx.api.get<List<Service>>(`/api/v1/tenants/${t}/services`, ctx.signal), ctx.api.get<List<Endpoint>>(`/api/v1/endpoints?tenant=${t}`, ctx.signal)]);
    fill(body, svcs.items.length === 0 ? h('p', {}, 'No services: weft service create -s NETWORK -l app=web -p 80:8080:TCP NAME') : table(`${svcs.items.length} services`, ['Service', 'Address', 'Ports', 'Selector', 'Backends'],
      svcs.items.map((s) => {
        const b = backends(s, eps.items);
        return [s.name, [s.vip, s.vip6].filter(Boolean).join(', '), s.ports.map((p) => `${p.port}→${p.targetPort}/${p.protocol.toLowerCase()}`).join(', '), Object.entries(s.selector).map(([k, v]) => `${k}=${v}`).join(', '),
          b.length === 0 ? h('span', { class: 'warn' }, 'none') : h('ul', { class: 'plain' }, b.map((e) => h('li', {}, `${endpointName(e)} ${e.ip ?? e.ip6} on ${e.host}`)))];
      })));
    body.setAttribute('data-ready', String(svcs.items.length));
  };
  await refresh();
  return { refresh };
}


/** Who changed what in this tenant, newest first (the last few hundred changes the caller may see). */
export async function historyView(ctx: Ctx): Promise<Page> {
  const SPAN = 500;
  const body = h('div', { class: 'body' });
  fill(ctx.main, h('h1', {}, `History of ${ctx.tenant}`), body);
  const refresh = async () => {
    const head = await ctx.api.get<{ revision: number; compactedRevision: number }>('/api/v1/history?limit=1', ctx.signal);
    const since = Math.max(head.compactedRevision, head.revision - SPAN);
    const page = await ctx.api.get<{ items: PublicChange[] }>(`/api/v1/history?since=${since}&limit=${SPAN}`, ctx.signal);
    const mine = page.items.filter((c) => c.tenant === ctx.tenant).reverse();
    fill(body, table(`${mine.length} changes to ${ctx.tenant} among the last ${SPAN} writes`, ['When', 'Who', 'What', 'Object', 'Revision'],
      mine.map((c) => [new Date(c.time).toLocaleString(), c.actor, c.op === 'put' ? 'wrote' : 'deleted', c.key, c.revision])));
    body.setAttribute('data-ready', String(mine.length));
  };
  await refresh();
  return { refresh };
}
