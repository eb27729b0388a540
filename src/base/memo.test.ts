import { test } from "node:test";
import assert from "node:assert/strict";
import { GenerationalCache, rememberLast, setInBoundedCache } from "./memo.js";

test("a bounded cache starts over when it is full, and keeps the entry just set", () => {
  const cache = new Map<number, string>();
  for (let key = 0; key < 3; key++) assert.equal(setInBoundedCache(cache, key, `v${key}`, 3), `v${key}`);
  assert.equal(cache.size, 3);
  setInBoundedCache(cache, 3, "v3", 3);
  assert.deepEqual([...cache], [[3, "v3"]]);
});

test("a generational cache stays within its budget and keeps what is read again", () => {
  const cache = new GenerationalCache<string, number>(10, (value) => value);
  assert.equal(cache.set("hot", 2), 2);
  cache.set("a", 2);
  // Young cost 4 < 5; the next set reaches half the budget and the young generation turns old.
  cache.set("b", 1);
  assert.equal(cache.size, 3);
  assert.equal(cache.get("hot"), 2); // from the old generation, back to the young one
  cache.set("c", 3); // young: hot 2 + c 3 = 5: turns old, and a and b are dropped
  assert.equal(cache.get("a"), undefined);
  assert.equal(cache.get("b"), undefined);
  assert.equal(cache.get("hot"), 2);
  assert.equal(cache.get("c"), 3);
  cache.delete("hot");
  assert.equal(cache.get("hot"), undefined);
  // Replacing an entry counts its new cost only.
  cache.set("c", 1);
  cache.set("c", 1);
  assert.equal(cache.get("c"), 1);
  assert.equal(cache.size, 1);
  // Whatever is set and read, the entries held never cost more than the budget.
  const units = new GenerationalCache<number, number>(10, () => 1);
  for (let index = 0; index < 1000; index++) {
    units.set(index % 37, index);
    units.get((index * 7) % 37);
    assert.ok(units.size <= 10, `${units.size} entries`);
  }
});

test("rememberLast computes again only for a different argument", () => {
  const calls: number[] = [];
  const double = rememberLast((value: number) => {
    calls.push(value);
    return value * 2;
  });
  assert.equal(double(2), 4);
  assert.equal(double(2), 4);
  assert.equal(double(3), 6);
  assert.equal(double(2), 4);
  assert.deepEqual(calls, [2, 3, 2]);
});
