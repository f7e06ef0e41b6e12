import { fill, h } from './dom.js';
import { ApiError } from './api.js';
import { enc, type Ctx, type Page } from './page.js';
import { backoff, endText, ruleText, type Flow } from './logic.js';

/** Rows kept on screen; the server keeps the newest 5,000 per tenant. */
const ROWS = 500;

/** Live flows: the newest records, then each new one as the agents report it (GET /api/v1/flows?follow=1). */
export async function flowsView(ctx: Ctx): Promise<Page> {
  const verdict = h('select', { id: 'fl-verdict', name: 'verdict' }, h('option', { value: '' }, 'any'), ['allow', 'deny', 'audit'].map((v) => h('option', { value: v }, v)));
  const group = h('input', { id: 'fl-group', name: 'group', placeholder: 'any', autocomplete: 'off' });
  const port = h('input', { id: 'fl-port', name: 'port', type: 'number', placeholder: 'any' });
  const form = h('form', { class: 'filters', aria: { label: 'filters' } },
    h('label', { for: 'fl-verdict' }, 'Verdict'), verdict, h('label', { for: 'fl-group' }, 'Group'), group, h('label', { for: 'fl-port' }, 'Port'), port, h('button', { type: 'submit' }, 'Filter'));
  const state = h('p', { class: 'meta', role: 'status' }, 'connecting…');
  const rows = h('tbody', {});
  const grid = h('table', { class: 'flows' },
    h('caption', {}, `Connections in ${ctx.tenant}, newest first`),
    h('thead', {}, h('tr', {}, ['Time', 'From', 'To', 'Traffic', 'Verdict', 'Decided by', 'Host'].map((x) => h('th', { scope: 'col' }, x)))), rows);
  fill(ctx.main, h('h1', {}, `Flows in ${ctx.tenant}`), form, state, grid);

  let stop = new AbortController();
  let failures = 0;
  const row = (f: Flow) => h('tr', { class: f.verdict, data: { verdict: f.verdict } },
    h('td', {}, new Date(f.time).toLocaleTimeString()), h('td', {}, endText(f.src)), h('td', {}, endText(f.dst)),
    h('td', {}, `${f.protocol}/${f.dst.port}`), h('td', {}, h('span', { class: `verdict ${f.verdict}` }, f.verdict)),
    h('td', {}, ruleText(f.decidedBy), f.agrees ? null : h('span', { class: 'warn', title: 'the policy as stored now decides otherwise' }, ' (policy changed since)')), h('td', {}, f.host));
  const follow = () => {
    stop.abort();
    stop = new AbortController();
    if (document.hidden || ctx.signal.aborted) return;
    const signal = AbortSignal.any([stop.signal, ctx.signal]);
    rows.replaceChildren();
    const q = new URLSearchParams({ tenant: ctx.tenant, follow: '1', limit: '200' });
    if (verdict.value) q.set('verdict', verdict.value);
    if (group.value.trim()) q.set('group', group.value.trim());
    if (port.value) q.set('port', port.value);
    state.textContent = 'live';
    let n = 0;
    const again = (why: string) => {
      const wait = backoff(failures++);
      state.textContent = `${why}; reconnecting in ${Math.round(wait / 1000)} s…`;
      setTimeout(() => !signal.aborted && follow(), wait);
    };
    ctx.api.stream(`/api/v1/flows?${q}`, (v) => {
      failures = 0;
      rows.prepend(row(v as Flow));
      while (rows.childElementCount > ROWS) rows.lastElementChild?.remove();
      state.textContent = `live · ${++n} received`;
    }, signal).then(() => !signal.aborted && again('the stream ended'), (e: Error) => {
      if (signal.aborted) return;
      if (e instanceof ApiError && e.status === 429) again('paused: your user has too many streams open (other tabs or `weft ... --follow`)');
      else if (e instanceof ApiError && e.status < 500) state.textContent = `refused: ${e.message}`;
      else again(`disconnected (${e.message})`);
    });
  };
  // A hidden tab gives its stream back (streams per user are limited) and opens it again when shown.
  document.addEventListener('visibilitychange', follow, { signal: ctx.signal });
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    follow();
  });
  follow();
  // Records come by their own stream; a change in the store does not alter the ones shown.
  return { refresh: async () => undefined };
}
