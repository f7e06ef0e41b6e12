import type { Api } from './api.js';

/** What a view is given: the API with the user's token, the tenant shown, where to draw, and a line for news. */
export interface Ctx {
  api: Api;
  tenant: string;
  main: HTMLElement;
  status(text: string, error?: boolean): void;
  /** Aborted when the view is left: streams and pending reads stop. */
  signal: AbortSignal;
}

/** A view on screen: `refresh` reads again after a change the watch stream reported. */
export interface Page {
  refresh(): Promise<void>;
}

export const enc = encodeURIComponent;
