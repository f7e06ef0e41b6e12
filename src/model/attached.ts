/**
 * A value kept with an object for as long as the object lives, like a WeakMap entry, but stored on the
 * object itself (a non-enumerable property under a private symbol): invisible to JSON, deepEqual and
 * iteration, gone with the object.
 *
 * Why not a WeakMap: V8 marks a WeakMap's value only once its key is found live (an "ephemeron"). Values
 * found that way late in a major collection are marked in its final, stop-the-world pause. The agent kept
 * its compile engine, its render state and its chain book (~200 MB at 50,000 rules) in WeakMaps keyed by
 * the current compile, and its slowest rule changes waited for pauses of 220-300 ms that were
 * `mark.ephemeron.marking` (--trace-gc-nvp, docs/benchmarks.md, session 20). A property is an ordinary
 * edge: marked concurrently, like the rest of the heap.
 *
 * Each instance is its own symbol, so an instance made per short-lived owner (one per compile) and keyed
 * by long-lived objects leaves a property on them per owner, for as long as they live: there, use a WeakMap.
 */
export class Attached<K extends object, V> {
  private readonly key: symbol;

  constructor(what: string) {
    this.key = Symbol(what);
  }

  get(o: K): V | undefined {
    return (o as Record<symbol, V | undefined>)[this.key];
  }

  has(o: K): boolean {
    return this.get(o) !== undefined;
  }

  set(o: K, v: V): this {
    if (Object.prototype.hasOwnProperty.call(o, this.key)) (o as Record<symbol, V | undefined>)[this.key] = v;
    else Object.defineProperty(o, this.key, { value: v, writable: true, enumerable: false, configurable: true });
    return this;
  }

  /** Drops the value (the property stays, empty: deleting it would slow every later access to the object). */
  delete(o: K): boolean {
    const had = this.has(o);
    if (had) (o as Record<symbol, V | undefined>)[this.key] = undefined;
    return had;
  }
}
