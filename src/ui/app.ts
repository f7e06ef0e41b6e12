import { Api, ApiError, login } from './api.js';
import { fill, h } from './dom.js';
import { backoff, coalesced, concerns, parseRoute, type PublicChange, type ViewName } from './logic.js';
import { matrixView } from './matrix.js';
import { flowsView } from './flows.js';
import { historyView, hostsView, servicesView, topologyView } from './views.js';
import type { Ctx, Page } from './page.js';

/**
 * Weft's web UI (issue 16): a token (or a user name and password exchanged for one) kept for this tab
 * only, then the tenant's views, each redrawn when the watch stream reports a change that concerns it.
 */
const VIEWS: Array<[ViewName, string, (ctx: Ctx) => Promise<Page>]> = [
  ['topology', 'Topology', topologyView],
  ['matrix', 'Policy matrix', matrixView],
  ['flows', 'Flows', flowsView],
  ['services', 'Services', servicesView],
  ['hosts', 'Hosts', hostsView],
  ['history', 'History', historyView],
];
const TOKEN = 'weft.token';
/** The id of a token this page got by logging in (revoked at logout). */
const TOKEN_ID = 'weft.token-id';
const root = document.getElementById('app') as HTMLElement;

function loginScreen(problem?: string): void {
  const user = h('input', { id: 'username', name: 'username', autocomplete: 'username' });
  const pass = h('input', { id: 'password', name: 'password', type: 'password', autocomplete: 'current-password' });
  const token = h('input', { id: 'token', name: 'token', type: 'password', autocomplete: 'off' });
  const error = h('p', { class: 'error', role: 'alert' }, problem ?? '');
  const form = h('form', { class: 'login', aria: { label: 'log in' } },
    h('h1', {}, 'Weft'),
    h('p', {}, 'Log in with your Weft user, or paste a token (weft token create).'),
    h('label', { for: 'username' }, 'User'), user,
    h('label', { for: 'password' }, 'Password'), pass,
    h('label', { for: 'token' }, 'or token'), token,
    h('button', { type: 'submit' }, 'Log in'), error);
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    void (async () => {
      try {
        const pasted = token.value.trim();
        const issued = pasted ? undefined : await login(user.value.trim(), pass.value);
        const t = pasted || (issued?.token as string);
        // A token is checked before it is kept: a wrong one is said here, not as an empty tenant list.
        await new Api(t, () => undefined).get('/api/v1/whoami');
        sessionStorage.setItem(TOKEN, t);
        if (issued) sessionStorage.setItem(TOKEN_ID, issued.id);
        void start(t);
      } catch (err) {
        error.textContent = err instanceof ApiError && err.status === 401 ? 'That user, password or token was not accepted.' : (err as Error).message;
      }
    })();
  });
  fill(root, h('main', { id: 'main' }, form));
  user.focus();
}

/** One login's life: everything it started (views, streams, the hash listener) stops with it. */
let session: AbortController | undefined;
/** Starts in a row whose first reads (who, which tenants) got no answer: each tried again after a backoff. */
let unansweredStarts = 0;

function logout(why?: string): void {
  const ending = session;
  session = undefined;
  ending?.abort();
  window.onhashchange = null;
  document.onvisibilitychange = null;
  const token = sessionStorage.getItem(TOKEN);
  const issued = sessionStorage.getItem(TOKEN_ID);
  sessionStorage.removeItem(TOKEN);
  sessionStorage.removeItem(TOKEN_ID);
  // A token this page got by logging in is revoked on the server too; a pasted one is the user's to keep.
  if (token && issued) void new Api(token, () => undefined).send('DELETE', `/api/v1/tokens/${encodeURIComponent(issued)}`).catch(() => undefined);
  loginScreen(why);
}

async function start(token: string): Promise<void> {
  session?.abort();
  const mine = (session = new AbortController());
  const live = () => session === mine;
  const api = new Api(token, () => live() && logout('Your session ended (the token expired or was revoked): log in again.'));
  // Who the token is and its tenants are asked at once; a view the address names starts beside them
  // (a tenant the caller may not see answers 404 and is replaced by its first tenant when the list comes).
  const known = Promise.all([api.get<{ user: string; role: string }>('/api/v1/whoami', mine.signal), api.get<{ items: Array<{ name: string }> }>('/api/v1/tenants', mine.signal)])
    .then(([me, list]) => ({ me, tenants: list.items.map((t) => t.name).sort() }));
  const picker = h('select', { id: 'tenant', name: 'tenant' });
  const who = h('span', { class: 'who' });
  const nav = h('nav', { aria: { label: 'views' } });
  const main = h('main', { id: 'main', tabindex: '-1' });
  const status = h('p', { class: 'status', role: 'status' });
  fill(root,
    h('header', {}, h('span', { class: 'brand' }, 'Weft'), h('label', { for: 'tenant' }, 'Tenant'), picker, who,
      h('button', { type: 'button', on: { click: () => logout() } }, 'Log out')),
    nav, main, status);
  let page: Page | undefined;
  let view: AbortController | undefined;
  let watch: { drawn(): void } | undefined;
  let route = parseRoute(location.hash);
  let tenants: string[] | undefined;
  const say = (text: string, error = false) => {
    status.textContent = text;
    status.className = error ? 'status error' : 'status';
  };
  /** Views in a row whose reads failed without an answer (the network): each read again after a backoff. */
  let unanswered = 0;
  const show = async (again = false) => {
    if (!live()) return;
    if (!again) unanswered = 0;
    route = parseRoute(location.hash);
    const tenant = route.tenant && (!tenants || tenants.includes(route.tenant)) ? route.tenant : tenants?.[0];
    if (!tenant) return;
    if (tenants) picker.value = tenant;
    fill(nav, VIEWS.map(([v, label]) => h('a', { ...(v === route.view ? { aria: { current: 'page' } } : {}), data: { view: v } }, label)));
    for (const a of nav.querySelectorAll('a')) a.setAttribute('href', `#/${encodeURIComponent(tenant)}/${a.getAttribute('data-view')}`);
    view?.abort();
    const ctl = (view = new AbortController());
    page = undefined;
    const make = VIEWS.find(([v]) => v === route.view)?.[2] ?? topologyView;
    main.setAttribute('data-view', route.view);
    main.setAttribute('aria-busy', 'true');
    try {
      const made = await make({ api, tenant, main, status: say, signal: AbortSignal.any([ctl.signal, mine.signal]) });
      if (ctl !== view || !live()) return;
      page = made;
      watch?.drawn();
      unanswered = 0;
      say('');
      // For bench:ui and the tests: when the view's data was drawn, and (two frames on) painted.
      const drawn = `weft:${route.view}`;
      performance.mark(drawn);
      requestAnimationFrame(() => requestAnimationFrame(() => performance.mark(`${drawn}:painted`)));
    } catch (e) {
      if (ctl.signal.aborted || !live() || (e instanceof ApiError && e.status === 404 && !tenants)) return;
      if (e instanceof ApiError) return say(e.message, true);
      // No answer at all (fetch's TypeError: the server restarting, the network changing under the
      // browser): the view is read again, later each time, until it draws or another view is chosen.
      const wait = backoff(unanswered++);
      say(`${(e as Error).message}; trying again in ${Math.round(wait / 1000)} s`, true);
      setTimeout(() => { if (ctl === view && live()) void show(true); }, wait);
    } finally {
      if (ctl === view) main.removeAttribute('aria-busy');
    }
  };
  picker.addEventListener('change', () => {
    location.hash = `#/${encodeURIComponent(picker.value)}/${route.view}`;
  });
  window.onhashchange = () => void show();
  // The watch opens before the first view reads, so nothing written meanwhile is missed.
  watch = follow(api, mine.signal, () => ({ tenant: picker.value || route.tenant || '', view: route.view }), () => page, say);
  const first = route.tenant ? show() : Promise.resolve();
  let me: { user: string; role: string };
  try {
    ({ me, tenants } = await known);
    unansweredStarts = 0;
  } catch (e) {
    view?.abort();
    if (!live() || (e instanceof ApiError && e.status === 401)) return;
    if (e instanceof ApiError) return loginScreen(e.message);
    // No answer (the server restarting, the network changing under the browser): the token is kept and
    // the start tried again, later each time, instead of asking to log in again.
    const wait = backoff(unansweredStarts++);
    say(`${(e as Error).message}; trying again in ${Math.round(wait / 1000)} s`, true);
    setTimeout(() => { if (live()) void start(token); }, wait);
    return;
  }
  if (!live()) return;
  who.textContent = `${me.user} (${me.role})`;
  fill(picker, tenants.map((t) => h('option', { value: t }, t)));
  if (tenants.length === 0) {
    view?.abort();
    fill(main, h('h1', {}, 'No tenants'), h('p', {}, me.role === 'tenant' ? 'Your user has no tenants yet: ask an administrator.' : 'Make one: weft tenant create NAME'));
    return;
  }
  await first;
  if (!live()) return;
  // Started beside the lists: kept if its tenant is one of the caller's, else the first tenant instead.
  if (!route.tenant || !tenants.includes(route.tenant)) location.hash = `#/${encodeURIComponent(tenants[0] as string)}/${route.view}`;
  else picker.value = route.tenant;
}

/**
 * The watch stream: a change that concerns the view on screen redraws it (a burst of changes is one read). Reconnects after a
 * break with backoff; a refusal (429: the user's streams are all taken) is said, and retried slowly. A
 * hidden tab closes its stream and reads again when shown. After any break the view is read again once
 * the new stream is open (from the server's revision then), never resumed from the last revision seen:
 * a server whose store was restored from an older copy numbers new changes as the lost ones were.
 */
function follow(api: Api, signal: AbortSignal, where: () => { tenant: string; view: ViewName }, page: () => Page | undefined, say: (text: string, error?: boolean) => void): { drawn(): void } {
  /** The view may have missed changes (a break, a hidden tab): read it again once a stream is open. */
  let stale = false;
  /** A change came while the view was being made (its reads may be older): read it again once drawn. */
  let missed = false;
  let failures = 0;
  let stream: AbortController | undefined;
  /** Whether the current stream has been taken by the server, and how many have been: only a read that started while one stream was open all along clears `stale`. */
  let streaming = false;
  let opened = 0;
  /** Redraws in a row that failed: the next try waits longer (1 s, 2 s, ... 30 s). */
  let refused = 0;
  /** The status line says a redraw failed: cleared by the next that draws. */
  let failed = false;
  // One read at a time, a burst of changes one read (logic.ts `coalesced`). A read that fails after a
  // break (a server just restarted may refuse some, 429) is tried again while the stream is open; so is
  // one that got no answer at all (fetch's TypeError: Chromium drops the requests in flight when a link
  // comes or goes on the machine, as a container started on it does); later each time, so a refusal that
  // stays (the tenant deleted meanwhile) costs a read every 30 s, not every few. A refusal with the view
  // up to date is said and waits for the next change.
  const redraw = coalesced(async () => {
    const p = page();
    if (!p) return void (missed = true);
    const since = streaming ? opened : -1;
    try {
      await p.refresh();
      refused = 0;
      if (failed) say('');
      failed = false;
      if (streaming && since === opened) stale = false;
    } catch (e) {
      if (signal.aborted) return;
      const noAnswer = !(e instanceof ApiError);
      const again = stale || noAnswer;
      say(`could not redraw: ${(e as Error).message}${again ? '; trying again' : ''}`, true);
      failed = true;
      if (!again) return;
      // Not if a read since drew the view (a later change's).
      setTimeout(() => refused > 0 && (noAnswer || stale) && streaming && !signal.aborted && redraw.kick(), backoff(refused++));
    }
  }, 250, { set: (f, ms) => setTimeout(f, ms), clear: (t) => clearTimeout(t as ReturnType<typeof setTimeout>) });
  signal.addEventListener('abort', () => redraw.cancel());
  const open = () => {
    if (signal.aborted || document.hidden || stream) return;
    const ctl = (stream = new AbortController());
    api.stream('/api/v1/watch', (v) => {
      failures = 0;
      const c = v as PublicChange | { op: 'bookmark'; revision: number };
      if (c.op === 'bookmark') return;
      const w = where();
      if (concerns(c, w.tenant, w.view)) redraw.kick();
    }, AbortSignal.any([signal, ctl.signal]), () => {
      if (stream !== ctl) return;
      streaming = true;
      opened++;
      if (stale) redraw.kick();
    }).then(() => again(ctl), (e: unknown) => {
      if (e instanceof ApiError && e.status === 429) say('Live updates are paused: your user has too many streams open (other tabs or `weft ... --follow`).', true);
      again(ctl);
    });
  };
  const again = (ctl: AbortController) => {
    if (stream === ctl) {
      stream = undefined;
      streaming = false;
    }
    stale = true;
    if (!signal.aborted && !ctl.signal.aborted) setTimeout(open, backoff(failures++));
  };
  document.onvisibilitychange = () => {
    if (document.hidden) {
      stream?.abort();
      stream = undefined;
      streaming = false;
      stale = true;
    } else if (!signal.aborted) {
      open();
    }
  };
  open();
  return {
    drawn() {
      if (!missed) return;
      missed = false;
      redraw.kick();
    },
  };
}

const saved = sessionStorage.getItem(TOKEN);
if (saved) void start(saved);
else loginScreen();
