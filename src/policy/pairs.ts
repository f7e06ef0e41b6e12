import type { Action } from '../model/index.js';
import type { Klass } from './classes.js';
import { PROTO } from './decide.js';
import type { RuleIndex } from './rule-index.js';
import { segmentPorts, segmentProtos } from './segments.js';
import type { PortEntry, ProtoEntry, Verdict } from './compile.js';

const TCP = PROTO['tcp'] as 6;
const UDP = PROTO['udp'] as 17;

/** One pair of classes' entries: the segments whose verdict differs from the tenant's default. */
export interface PairOut { port: PortEntry[]; proto: ProtoEntry[] }

/** The rule indexes of the sides this host enforces: undefined where it does not enforce that side. */
export type SideIndex = (k: Klass, d: 'in' | 'out') => RuleIndex | undefined;

/**
 * A pair's entries, or undefined when every flow between them gets the default. The only place a pair
 * is decided, so a cold compile and an incremental one cannot disagree.
 */
export function decidePair(src: Klass, dst: Klass, indexOf: SideIndex, defaultAction: Action, fallback: Verdict): PairOut | undefined {
  const egressIdx = indexOf(src, 'out');
  const ingressIdx = indexOf(dst, 'in');
  if (!egressIdx?.size && !ingressIdx?.size) return undefined; // every enforced side falls back: the default
  const sides = { egress: egressIdx?.matching(dst), ingress: ingressIdx?.matching(src) };
  if (!sides.egress?.length && !sides.ingress?.length) return undefined;
  const out: PairOut = { port: [], proto: [] };
  for (const proto of [TCP, UDP] as const) {
    for (const seg of segmentPorts(sides, proto, defaultAction)) {
      if (seg.verdict !== fallback) out.port.push({ src: src.id, dst: dst.id, proto, ...seg });
    }
  }
  for (const seg of segmentProtos(sides, defaultAction)) {
    if (seg.verdict !== fallback) out.proto.push({ src: src.id, dst: dst.id, ...seg });
  }
  return out.port.length || out.proto.length ? out : undefined;
}

interface Stored { out: PairOut; portAt: number[]; protoAt: number[] }

/**
 * Every pair with entries, by source class then destination class, and the flat lists the datapath
 * renders. The lists are patched, not rebuilt: a pair's entries leave by swapping the last entry into
 * their place (the lists have no order between pairs), so a recompile that decides a few pairs again
 * costs a copy of the lists, not a walk over their million entries.
 */
export class PairStore {
  private readonly bySrc = new Map<number, Map<number, Stored>>();
  portEntries: PortEntry[] = [];
  protoEntries: ProtoEntry[] = [];

  /** New lists for the next compile: the last compile's lists are its result and must not change. */
  detach(): void {
    this.portEntries = withRoom(this.portEntries);
    this.protoEntries = withRoom(this.protoEntries);
  }

  set(src: number, dst: number, out: PairOut | undefined): void {
    let m = this.bySrc.get(src);
    const old = m?.get(dst);
    if (old) this.unlist(old);
    if (out === undefined) {
      m?.delete(dst);
      if (m?.size === 0) this.bySrc.delete(src);
      return;
    }
    if (!m) this.bySrc.set(src, (m = new Map()));
    const stored: Stored = { out, portAt: [], protoAt: [] };
    for (const e of out.port) stored.portAt.push(this.portEntries.push(e) - 1);
    for (const e of out.proto) stored.protoAt.push(this.protoEntries.push(e) - 1);
    m.set(dst, stored);
  }

  /** Drops every pair a class is in (it no longer exists). */
  dropClass(id: number): void {
    for (const dst of [...(this.bySrc.get(id)?.keys() ?? [])]) this.set(id, dst, undefined);
    for (const [src, m] of this.bySrc) if (m.has(id)) this.set(src, id, undefined);
  }

  private unlist(s: Stored): void {
    swapOut(this.portEntries, s.portAt, (e) => this.bySrc.get(e.src)?.get(e.dst)?.portAt);
    swapOut(this.protoEntries, s.protoAt, (e) => this.bySrc.get(e.src)?.get(e.dst)?.protoAt);
  }
}

const ROOM = new Array<never>(4096);

/**
 * A copy with room to grow: a copy is exactly as long as its list, and the first push past it copies
 * the whole list again (measured: a second 1,000,000-entry copy, ~100 ms on this machine). Shortened
 * by a little, V8 keeps the room.
 */
function withRoom<E>(list: readonly E[]): E[] {
  const copy = list.concat(ROOM);
  copy.length = list.length;
  return copy;
}

/**
 * Removes the entries at `at` by moving the list's last entry into each hole (highest hole first, so
 * the last entry is never one still to be removed), and tells the moved entry's pair where it went.
 */
function swapOut<E>(list: E[], at: readonly number[], where: (e: E) => number[] | undefined): void {
  for (const pos of [...at].sort((a, b) => b - a)) {
    const last = list.length - 1;
    const moved = list.pop() as E;
    if (pos === last) continue;
    list[pos] = moved;
    const slots = where(moved) as number[];
    slots[slots.indexOf(last)] = pos;
  }
}
