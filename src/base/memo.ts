/**
 * Small caching shapes the request path uses in several layers: a map that starts over once it
 * holds a bound of entries (cheaper than an LRU, and enough for keys that repeat), a cache in two
 * generations under a budget (for a working set that should stay), and a function that remembers
 * its last argument and result (for values that repeat back to back, like every date of the same
 * second).
 */

/** Sets `key` in `cache`, first emptying the cache when it already holds `entriesMax` entries. */
export function setInBoundedCache<K, V>(cache: Map<K, V>, key: K, value: V, entriesMax: number): V {
  if (cache.size >= entriesMax) cache.clear();
  cache.set(key, value);
  return value;
}

/**
 * A cache whose entries cost at most `costMax` together (an entry costs `costOf(value)`), kept
 * in two generations: entries are set in the young one, and when the young one has cost half the
 * budget, the old generation is dropped and the young one becomes old. A hit in the old
 * generation moves the entry back to the young one, so what is read again and again stays.
 * Every operation is O(1). A map emptied whenever it is full (setInBoundedCache) held half its
 * bound on average and lost the hot entries with the cold; a Map can drop its oldest entry
 * only by iterating past the holes of those dropped before (5.9 us per entry measured at
 * 10,000 entries, against 0.75 us to set one).
 */
export class GenerationalCache<K, V> {
  private young = new Map<K, V>();
  private old = new Map<K, V>();
  private youngCost = 0;

  constructor(
    private readonly costMax: number,
    private readonly costOf: (value: V) => number,
    /**
     * What an entry read from the old generation becomes in the young one (by default itself):
     * an owner that packs values into memory per generation (see ByteSlabs) moves it there.
     */
    private readonly promoted: (value: V) => V = (value) => value,
  ) {}

  get(key: K): V | undefined {
    const value = this.young.get(key);
    if (value !== undefined) return value;
    const aged = this.old.get(key);
    if (aged === undefined) return undefined;
    this.old.delete(key);
    const renewed = this.promoted(aged);
    this.setYoung(key, renewed);
    return renewed;
  }

  /** Sets `key` (in the young generation) and returns `value`. */
  set(key: K, value: V): V {
    this.delete(key);
    this.setYoung(key, value);
    return value;
  }

  delete(key: K): void {
    const value = this.young.get(key);
    if (value !== undefined) {
      this.young.delete(key);
      this.youngCost -= this.costOf(value);
    }
    this.old.delete(key);
  }

  get size(): number {
    return this.young.size + this.old.size;
  }

  private setYoung(key: K, value: V): void {
    this.young.set(key, value);
    this.youngCost += this.costOf(value);
    if (this.youngCost * 2 < this.costMax) return;
    this.old = this.young;
    this.young = new Map();
    this.youngCost = 0;
  }
}

/**
 * Copies of small byte strings packed into shared slabs of SLAB_BYTES, for memory kept long
 * (cached objects' bytes): each copy is a view, not a buffer of its own. V8 tracks every
 * ArrayBuffer's memory as an extension that each mark-compact sweeps, and ten thousand cached
 * 4 KiB buffers in the old generation (the SQLite engine's latest versions with their inline
 * bytes) made V8 run a mark-compact every 100-150 ms during 64 MiB PUTs, 98 of them in 16 s where
 * a server without them ran 2 (`--trace-gc`), 10-20 ms each. Slabs are never written twice: a
 * slab lives as long as one of its views does, so a cache re-copies the values it keeps into the
 * current slab as they move to its young generation (GenerationalCache's `promoted`), and the
 * slabs of a dropped generation become garbage.
 */
export class ByteSlabs {
  static readonly SLAB_BYTES = 1024 * 1024;
  /** Larger byte strings get a buffer of their own: a slab holds at least eight. */
  static readonly COPY_BYTES_MAX = ByteSlabs.SLAB_BYTES / 8;
  private slab: Buffer | undefined;
  private usedBytes = 0;

  /** A copy of `bytes` that no one writes into. */
  copy(bytes: Uint8Array): Buffer {
    if (bytes.length > ByteSlabs.COPY_BYTES_MAX) return Buffer.from(bytes);
    if (this.slab === undefined || this.usedBytes + bytes.length > this.slab.length) {
      this.slab = Buffer.allocUnsafeSlow(ByteSlabs.SLAB_BYTES);
      this.usedBytes = 0;
    }
    const view = this.slab.subarray(this.usedBytes, this.usedBytes + bytes.length);
    view.set(bytes);
    this.usedBytes += bytes.length;
    return view;
  }
}

/** `compute`, answering from its last result when called again with the same argument. */
export function rememberLast<A, R>(compute: (argument: A) => R): (argument: A) => R {
  let last: { argument: A; result: R } | undefined;
  return (argument) => {
    if (last === undefined || last.argument !== argument) last = { argument, result: compute(argument) };
    return last.result;
  };
}
