/**
 * Two small caching shapes the request path uses in several layers: a map that starts over once
 * it holds a bound of entries (cheaper than an LRU, and enough for keys that repeat), and a
 * function that remembers its last argument and result (for values that repeat back to back,
 * like every date of the same second).
 */

/** Sets `key` in `cache`, first emptying the cache when it already holds `entriesMax` entries. */
export function setInBoundedCache<K, V>(cache: Map<K, V>, key: K, value: V, entriesMax: number): V {
  if (cache.size >= entriesMax) cache.clear();
  cache.set(key, value);
  return value;
}

/** `compute`, answering from its last result when called again with the same argument. */
export function rememberLast<A, R>(compute: (argument: A) => R): (argument: A) => R {
  let last: { argument: A; result: R } | undefined;
  return (argument) => {
    if (last === undefined || last.argument !== argument) last = { argument, result: compute(argument) };
    return last.result;
  };
}
