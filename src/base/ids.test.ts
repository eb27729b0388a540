// UUIDv7 needle ids: version and variant bits, strictly increasing within a process, and
// random bits that differ from id to id, also across a refill of the random pool.
import { test } from "node:test";
import assert from "node:assert/strict";
import { isNeedleId, newNeedleId, uuidV7Bytes } from "./ids.js";

test("uuidV7Bytes carries the time, version 7, the RFC 9562 variant and fresh random bits", () => {
  const nowMs = Date.UTC(2026, 11, 1);
  const ids = Array.from({ length: 2000 }, () => uuidV7Bytes(nowMs)); // 16 KB of random bytes: several pool refills
  for (const id of ids) {
    assert.equal(id.length, 16);
    assert.ok(id.readUIntBE(0, 6) >= nowMs);
    assert.equal(id[6]! >> 4, 7);
    assert.equal(id[8]! >> 6, 0b10);
  }
  const randomParts = new Set(ids.map((id) => id.subarray(8).toString("hex")));
  assert.equal(randomParts.size, ids.length, "no two ids share their random bits");
  const hex = ids.map((id) => id.toString("hex"));
  for (let i = 1; i < hex.length; i++) assert.ok(hex[i - 1]! < hex[i]!, "ids minted in one process increase");
});

test("newNeedleId gives 32 lowercase hex characters", () => {
  const id = newNeedleId();
  assert.ok(isNeedleId(id), id);
  assert.notEqual(newNeedleId(), id);
});
