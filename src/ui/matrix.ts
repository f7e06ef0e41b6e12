import { fill, h } from './dom.js';
import { enc, type Ctx, type Page } from './page.js';
import { answerVerdict, cellVerdict, decidingSide, sideText, type Answer, type Cell, type Matrix } from './logic.js';

const SYMBOL = { allow: 'allow', deny: 'deny', audit: 'audit', mixed: 'mixed', empty: '–' } as const;
const PORTED = new Set(['tcp', 'udp', 'sctp']);

/**
 * The policy matrix: what a new connection from each group (rows) to each group (columns) gets, from the
 * evaluator `weft explain` uses. A cell is a button: it says why in the panel below; a cell whose members
 * get different answers says "mixed" and lists each answer.
 */
export async function matrixView(ctx: Ctx): Promise<Page> {
  const protocol = h('select', { id: 'mx-proto', name: 'protocol' }, ['tcp', 'udp', 'sctp', 'icmp'].map((p) => h('option', { value: p }, p)));
  const port = h('input', { id: 'mx-port', name: 'port', type: 'number', value: '80', aria: { describedby: 'mx-port-help' } });
  port.min = '0';
  port.max = '65535';
  const help = h('span', { id: 'mx-port-help', class: 'meta' }, 'the destination port (tcp, udp and sctp)');
  const grid = h('div', { class: 'body' });
  const why = h('section', { class: 'why', aria: { live: 'polite', label: 'why' } }, h('p', {}, 'Choose a cell to see which rules decide it.'));
  const form = h('form', { class: 'filters', aria: { label: 'traffic' } },
    h('label', { for: 'mx-proto' }, 'Protocol'), protocol, h('label', { for: 'mx-port' }, 'Port'), port, help, h('button', { type: 'submit' }, 'Show'));
  protocol.addEventListener('change', () => {
    port.disabled = !PORTED.has(protocol.value);
  });
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    void refresh().catch((err: Error) => ctx.status(err.message, true));
  });
  fill(ctx.main, h('h1', {}, `Policy matrix of ${ctx.tenant}`), form, grid, why);
  let chosen: { from: string; to: string } | undefined;
  /** Each read is numbered: an answer older than one already drawn is dropped (the form and the grid agree). */
  let asked = 0;
  let drawn = 0;

  const answerText = (a: Answer, traffic: string, from: string, to: string) => {
    const d = decidingSide(a);
    return [
      h('p', {}, `${from} → ${to}, ${traffic}: ${answerVerdict(a)}. Decided on the ${d.side} side: ${sideText(d.by, d.side)}.`),
      h('ul', {}, h('li', {}, sideText(a.egress, 'egress')), h('li', {}, sideText(a.ingress, 'ingress')),
        a.audit ? h('li', {}, `audit-mode policies would deny it: ${sideText(a.audit.egress, 'egress')}; ${sideText(a.audit.ingress, 'ingress')}`) : null),
    ];
  };
  const explainCell = (m: Matrix, from: number, to: number, c: Cell | null) => {
    const a = m.groups[from];
    const b = m.groups[to];
    if (!a || !b) return;
    chosen = { from: a.name, to: b.name };
    const traffic = `${m.protocol}${m.port === null ? '' : `/${m.port}`}`;
    if (!c) {
      fill(why, h('h2', {}, `${a.name} → ${b.name}`), h('p', {}, `${a.endpoints === 0 ? a.name : b.name} has no endpoints yet: nothing to decide for.`));
      return;
    }
    const explainLine = (x: { ip: string }, y: { ip: string }) => `weft explain -t ${ctx.tenant} ${x.ip} ${y.ip} ${m.protocol}${m.port === null ? '' : ` ${m.port}`}`;
    fill(why, h('h2', {}, `${a.name} → ${b.name}, ${traffic}: ${cellVerdict(c)}`),
      c.variants
        ? [h('p', {}, 'Members of these groups get different answers (the policy tells them apart by address or labels):'),
          c.variants.map((v) => h('div', { class: 'variant' }, h('h3', {}, `${v.pairs} endpoint pair${v.pairs === 1 ? '' : 's'}, e.g. ${v.from.name} (${v.from.ip}) → ${v.to.name} (${v.to.ip})`),
            answerText(v, traffic, a.name, b.name), h('p', { class: 'meta' }, `the same as: ${explainLine(v.from, v.to)}`)))]
        : [answerText(c, traffic, a.name, b.name),
          h('p', { class: 'meta' }, `Every member of each group gets this answer; the same as: ${explainLine(a.representative ?? { ip: '?' }, b.representative ?? { ip: '?' })}`)],
      c.partial ? h('p', { class: 'warn' }, 'These groups have members the policy tells apart in more ways than are shown: the largest kinds were asked about.') : null);
  };

  const refresh = async () => {
    if (PORTED.has(protocol.value) && port.value === '') {
      ctx.status(`Port: ${protocol.value} connections have a destination port; give one.`, true);
      return;
    }
    const q = new URLSearchParams({ protocol: protocol.value });
    if (PORTED.has(protocol.value)) q.set('port', port.value);
    const n = ++asked;
    const m = await ctx.api.get<Matrix>(`/api/v1/tenants/${enc(ctx.tenant)}/matrix?${q}`, ctx.signal);
    if (n < drawn) return;
    drawn = n;
    ctx.status('');
    if (m.groups.length === 0) {
      fill(grid, h('p', {}, 'No groups yet: weft group create NETWORK GROUP'));
      grid.setAttribute('data-ready', '0');
      return;
    }
    const traffic = `${m.protocol}${m.port === null ? '' : `/${m.port}`}`;
    fill(grid,
      h('table', { class: 'matrix' },
        h('caption', {}, `New ${traffic} connections from a group (row) to a group (column)${m.truncated ? `; ${m.truncated} more groups not shown` : ''}`),
        h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'from \\ to'), m.groups.map((g) => h('th', { scope: 'col' }, g.name)))),
        h('tbody', {}, m.groups.map((g, i) => h('tr', {}, h('th', { scope: 'row' }, `${g.name} (${g.endpoints})`),
          (m.cells[i] ?? []).map((c, j) => {
            const v = cellVerdict(c);
            const to = m.groups[j]?.name ?? '';
            const label = `${g.name} to ${to}: ${v === 'empty' ? 'no endpoints' : v}`;
            return h('td', { class: v }, h('button', { type: 'button', class: `cell ${v}`, aria: { label }, data: { from: g.name, to, verdict: v }, on: { click: () => explainCell(m, i, j, c) } }, SYMBOL[v]));
          }))))));
    grid.setAttribute('data-ready', String(m.groups.length));
    // The panel follows the chosen cell across refreshes (a policy change shows its new reason).
    if (chosen) {
      const i = m.groups.findIndex((g) => g.name === chosen?.from);
      const j = m.groups.findIndex((g) => g.name === chosen?.to);
      if (i >= 0 && j >= 0) explainCell(m, i, j, m.cells[i]?.[j] ?? null);
    }
  };
  await refresh();
  return { refresh };
}
