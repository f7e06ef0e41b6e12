import type { Socket } from 'node:net';

/**
 * Joins two sockets both ways; when either ends or fails, both are destroyed and `closed` is told (once
 * per socket). The relays of the test browser's DevTools (relay.ts, browser-net.ts) are made of these.
 */
export function splice(a: Socket, b: Socket, closed: (s: Socket) => void = () => undefined): void {
  const close = () => {
    for (const s of [a, b]) {
      if (!s.destroyed) s.destroy();
      closed(s);
    }
  };
  for (const s of [a, b]) {
    s.on('error', close);
    s.on('close', close);
  }
  a.pipe(b);
  b.pipe(a);
}
