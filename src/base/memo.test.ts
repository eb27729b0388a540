import { test } from "node:test";
import assert from "node:assert/strict";
import { rememberLast, setInBoundedCache } from "./memo.js";

test("a bounded cache starts over when it is full, and keeps the entry just set", () => {
  const cache = new Map<number, string>();
  for (let key = 0; key < 3; key++) assert.equal(setInBoundedCache(cache, key, `v${key}`, 3), `v${key}`);
  assert.equal(cache.size, 3);
  setInBoundedCache(cache, 3, "v3", 3);
  assert.deepEqual([...cache], [[3, "v3"]]);
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
