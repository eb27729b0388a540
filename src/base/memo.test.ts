import { test } from "node:test";
import assert from "node:assert/strict";
import { ByteSlabs, GenerationalCache, rememberLast, setInBoundedCache } from "./memo.js";

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

test("a generational cache hands an entry read from its old generation to `promoted`, and keeps what it returns", () => {
  const promotions: string[] = [];
  const cache = new GenerationalCache<string, { name: string; moves: number }>(4, () => 1, (value) => {
    promotions.push(value.name);
    return { ...value, moves: value.moves + 1 };
  });
  cache.set("a", { name: "a", moves: 0 });
  cache.set("b", { name: "b", moves: 0 }); // young holds half the budget: it turns old
  assert.deepEqual(cache.get("a"), { name: "a", moves: 1 });
  assert.deepEqual(cache.get("a"), { name: "a", moves: 1 }, "now young: read as it is");
  assert.deepEqual(promotions, ["a"]);
});

test("byte slabs copy small byte strings into shared slabs, never writing over an earlier copy", () => {
  const slabs = new ByteSlabs();
  const originals = Array.from({ length: 600 }, (_, index) => Buffer.alloc(4096, index % 251));
  const copies = originals.map((bytes) => slabs.copy(bytes));
  originals.forEach((bytes, index) => {
    assert.ok(copies[index]!.equals(bytes), `copy ${index}`);
    assert.notEqual(copies[index]!.buffer, bytes.buffer, "a copy, not the caller's memory");
  });
  // 600 copies of 4 KiB in 1 MiB slabs: 256 a slab, so three slabs.
  assert.equal(new Set(copies.map((copy) => copy.buffer)).size, 3);
  assert.equal(copies[0]!.buffer, copies[255]!.buffer);
  originals[0]!.fill(255);
  assert.ok(copies[0]!.equals(Buffer.alloc(4096, 0)), "the caller's later writes do not reach the copy");
  const large = Buffer.alloc(ByteSlabs.COPY_BYTES_MAX + 1, 7);
  const largeCopy = slabs.copy(large);
  assert.ok(largeCopy.equals(large));
  assert.equal(largeCopy.buffer.byteLength >= large.length && !copies.some((copy) => copy.buffer === largeCopy.buffer), true, "a large copy has a buffer of its own");
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
