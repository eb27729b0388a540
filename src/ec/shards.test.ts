// Proves the shard layout arithmetic: split then join returns the chunk for sizes around every
// shard boundary (0, 1, k-1, k, k+1, 1 MiB + 3) and several k; padding is zeros; split copies
// (never aliases) its input; join refuses shards of the wrong size; storage classes parse, and
// a split chunk survives losing m shards end to end.
import { test } from "node:test";
import assert from "node:assert/strict";
import { AssertionError, MEBIBYTE } from "../base/index.js";
import { SeededBytes } from "./ec-test-data.js";
import { EC_PRESETS, ReedSolomon, joinDataShards, parseStorageClassEc, shardSizeBytesFor, splitIntoDataShards } from "./index.js";

const random = new SeededBytes("shards.test");

test("split and join round-trip for sizes around the shard boundaries", () => {
  for (const k of [1, 3, 4, 8, 10, 17]) {
    for (const sizeBytes of [0, 1, k - 1, k, k + 1, MEBIBYTE + 3]) {
      const chunk = Buffer.from(random.bytes(sizeBytes));
      const original = Buffer.from(chunk);
      const shards = splitIntoDataShards(chunk, k);
      assert.equal(shards.length, k);
      const shardSizeBytes = shardSizeBytesFor(sizeBytes, k);
      assert.equal(shardSizeBytes, Math.ceil(sizeBytes / k));
      for (const shard of shards) assert.equal(shard.length, shardSizeBytes);
      assert.ok(Buffer.concat(shards).subarray(sizeBytes).every((byte) => byte === 0), "padding is zeros");
      assert.ok(joinDataShards(shards, k, sizeBytes).equals(original), `k=${k} size=${sizeBytes}`);
      chunk.fill(0xaa);
      assert.ok(joinDataShards(shards, k, sizeBytes).equals(original), "shards do not alias the chunk");
    }
  }
});

test("join takes the first k of a full stripe and refuses wrongly sized shards", () => {
  const chunk = random.bytes(10);
  const shards = splitIntoDataShards(chunk, 4);
  assert.ok(joinDataShards([...shards, new Uint8Array(3), new Uint8Array(3)], 4, 10).equals(chunk));
  assert.throws(() => joinDataShards(shards, 4, 13), AssertionError);
  assert.throws(() => joinDataShards(shards.slice(0, 3), 4, 10), AssertionError);
  assert.throws(() => shardSizeBytesFor(-1, 4), AssertionError);
  assert.throws(() => shardSizeBytesFor(10, 0), AssertionError);
});

test("a split chunk survives losing m shards end to end", () => {
  for (const [storageClass, { k, m }] of Object.entries(EC_PRESETS)) {
    const codec = new ReedSolomon(k, m);
    const chunk = random.bytes(100_003);
    const data = splitIntoDataShards(chunk, k);
    const stripe: Array<Uint8Array | undefined> = [...data, ...codec.encode(data)];
    for (let i = 0; i < m; i++) stripe[i * 2] = undefined;
    assert.ok(joinDataShards(codec.reconstruct(stripe), k, chunk.length).equals(chunk), storageClass);
  }
});

test("EC storage classes parse; anything else is undefined", () => {
  assert.deepEqual(parseStorageClassEc("EC:4+2"), { k: 4, m: 2 });
  assert.deepEqual(parseStorageClassEc("EC:8+4"), { k: 8, m: 4 });
  assert.deepEqual(parseStorageClassEc("EC:17+3"), { k: 17, m: 3 });
  for (const [storageClass, scheme] of Object.entries(EC_PRESETS)) assert.deepEqual(parseStorageClassEc(storageClass), scheme);
  for (const bad of ["EC:17+4", "EC:0+2", "EC:4+0", "EC:04+2", "ec:4+2", "EC:4+2 ", " EC:4+2", "EC:4", "STANDARD", "EC:-1+2", "EC:4.0+2", "EC:100+1", ""]) {
    assert.equal(parseStorageClassEc(bad), undefined, bad);
  }
});
