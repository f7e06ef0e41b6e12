// A map written in place whose snapshots stay as they were taken (roles.ts: a class's role, handed to each
// compile's result). Copy-on-write copied the whole map at the first write after a snapshot: 38,000
// classes whose destination role is another class's (bench:policy-compile `nested`) were a 12.7 ms copy
// (`new Map(map)` goes entry by entry) in every compile that moved a class, an endpoint's ADD among them.
// Here a write first keeps the value it replaces in the newest snapshot's `kept`; a snapshot reads its
// own kept values, then those of each newer snapshot, then the live map. Snapshots hold no older ones, so
// a compile's result nobody holds any more is collected with what it kept.

const ABSENT = Symbol('absent');
type Kept<V> = V | typeof ABSENT;

class Snapshot<K, V> implements ReadonlyMap<K, V> {
  /** The values of the keys written after this snapshot was taken and before the next one, as they were. */
  readonly kept = new Map<K, Kept<V>>();
  /** The next snapshot, once taken: what this one did not keep reads as it does. */
  next: Snapshot<K, V> | undefined;

  constructor(private readonly live: ReadonlyMap<K, V>, readonly size: number) {}

  get(key: K): V | undefined {
    for (let s: Snapshot<K, V> | undefined = this; s; s = s.next) {
      if (s.kept.has(key)) {
        const v = s.kept.get(key) as Kept<V>;
        return v === ABSENT ? undefined : v;
      }
    }
    return this.live.get(key);
  }

  has(key: K): boolean {
    for (let s: Snapshot<K, V> | undefined = this; s; s = s.next) if (s.kept.has(key)) return s.kept.get(key) !== ABSENT;
    return this.live.has(key);
  }

  /** The map as it was (for iteration: tests, dumps; lookups go through get). */
  private whole(): Map<K, V> {
    const chain: Snapshot<K, V>[] = [];
    for (let s: Snapshot<K, V> | undefined = this; s; s = s.next) chain.push(s);
    const out = new Map(this.live);
    // Newest first, so that the oldest kept value of a key (this snapshot's view of it) is the one left.
    for (const s of chain.reverse()) for (const [k, v] of s.kept) { if (v === ABSENT) out.delete(k); else out.set(k, v); }
    return out;
  }

  forEach(f: (value: V, key: K, map: ReadonlyMap<K, V>) => void, self?: unknown): void {
    for (const [k, v] of this.whole()) f.call(self, v, k, this);
  }

  entries(): MapIterator<[K, V]> {
    return this.whole().entries();
  }

  keys(): MapIterator<K> {
    return this.whole().keys();
  }

  values(): MapIterator<V> {
    return this.whole().values();
  }

  [Symbol.iterator](): MapIterator<[K, V]> {
    return this.entries();
  }
}

/** The live map: read and written by its owner, handed out only as snapshots. */
export class VersionedMap<K, V> {
  private readonly live = new Map<K, V>();
  private newest: Snapshot<K, V> | undefined;
  /** Written since `newest` was taken: the next snapshot is a new one. */
  private written = true;

  get(key: K): V | undefined {
    return this.live.get(key);
  }

  has(key: K): boolean {
    return this.live.has(key);
  }

  get size(): number {
    return this.live.size;
  }

  set(key: K, value: V): void {
    this.keep(key);
    this.live.set(key, value);
  }

  delete(key: K): void {
    if (!this.live.has(key)) return;
    this.keep(key);
    this.live.delete(key);
  }

  /** The map as it is now, unchanged by later writes; the same object until the next write. */
  snapshot(): ReadonlyMap<K, V> {
    if (this.newest && !this.written) return this.newest;
    const s = new Snapshot<K, V>(this.live, this.live.size);
    if (this.newest) this.newest.next = s;
    this.newest = s;
    this.written = false;
    return s;
  }

  private keep(key: K): void {
    this.written = true;
    const s = this.newest;
    if (s && !s.kept.has(key)) s.kept.set(key, this.live.has(key) ? (this.live.get(key) as V) : ABSENT);
  }
}
