/**
 * The only way the UI makes elements: text is always a text node, never markup. Names shown come from
 * tenants who may be hostile to each other and to the person looking; nothing here parses HTML.
 */
export type Child = Node | string | number | null | undefined | false | readonly Child[];

export interface Attrs {
  class?: string;
  id?: string;
  title?: string;
  role?: string;
  type?: string;
  name?: string;
  value?: string;
  for?: string;
  placeholder?: string;
  autocomplete?: string;
  disabled?: boolean;
  tabindex?: string;
  scope?: string;
  hidden?: boolean;
  selected?: boolean;
  /** aria-* and data-* attributes, by their full name. */
  aria?: Record<string, string>;
  data?: Record<string, string>;
  on?: Partial<{ [K in keyof HTMLElementEventMap]: (e: HTMLElementEventMap[K]) => void }>;
}

export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Attrs = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === false) continue;
    if (k === 'on') for (const [ev, fn] of Object.entries(v as object)) el.addEventListener(ev, fn as EventListener);
    else if (k === 'aria') for (const [a, x] of Object.entries(v as Record<string, string>)) el.setAttribute(`aria-${a}`, x);
    else if (k === 'data') for (const [a, x] of Object.entries(v as Record<string, string>)) el.setAttribute(`data-${a}`, x);
    else if (k === 'value' && 'value' in el) (el as HTMLInputElement).value = String(v);
    else if (k === 'selected' && 'selected' in el) (el as HTMLOptionElement).selected = Boolean(v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

export function append(el: Node, children: readonly Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.appendChild(typeof c === 'string' || typeof c === 'number' ? document.createTextNode(String(c)) : (c as Node));
  }
}

/** Replaces what an element holds. */
export function fill(el: Element, ...children: Child[]): void {
  el.replaceChildren();
  append(el, children);
}

/** A table with a caption and column headers; rows are arrays of cells (text cells set directly: a thousand rows are built in a few milliseconds). */
export function table(caption: string, headers: readonly string[], rows: readonly (readonly Child[])[], attrs: Attrs = {}): HTMLTableElement {
  const t = h('table', attrs, h('caption', {}, caption), h('thead', {}, h('tr', {}, headers.map((x) => h('th', { scope: 'col' }, x)))));
  const body = t.createTBody();
  for (const r of rows) {
    const tr = body.insertRow();
    for (const c of r) {
      const td = tr.insertCell();
      if (typeof c === 'string' || typeof c === 'number') td.textContent = String(c);
      else append(td, [c]);
    }
  }
  return t;
}
