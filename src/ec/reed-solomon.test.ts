// Proves the erasure codec correct: GF(2^8) arithmetic is a field (inverses, distributivity);
// for several (k, m), losing ANY set of up to m shards reconstructs every shard byte-for-byte
// (which exercises every decode matrix, i.e. the MDS property); losing m + 1 throws TooFewShards;
// encode and reconstruct never modify their inputs; split/join round-trips; storage classes parse.
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { gfDiv, gfInverse, gfMul, MUL_TABLE } from "./galois.js";
import {
  EC_SHARD_COUNT_MAX,
  ReedSolomon,
  TooFewShards,
  joinDataShards,
  parseErasureCodingClass,
  splitIntoDataShards,
} from "./index.js";

function* subsets(n: number, size: number, start = 0): Generator<number[]> {
  if (size === 0) {
    yield [];
    return;
  }
  for (let i = start; i <= n - size; i++) for (const rest of subsets(n, size - 1, i + 1)) yield [i, ...rest];
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

function randomShards(count: number, size: number): Uint8Array[] {
  return Array.from({ length: count }, () => new Uint8Array(randomBytes(size)));
}

test("GF(2^8): every nonzero element has an inverse and division undoes multiplication", () => {
  for (let a = 1; a < 256; a++) {
    const inverse = gfInverse(a);
    assert.equal(gfMul(a, inverse), 1, `a=${a}`);
    for (let b = 1; b < 256; b++) {
      const product = gfMul(a, b);
      assert.notEqual(product, 0);
      assert.equal(gfDiv(product, b), a);
      assert.equal(MUL_TABLE[a * 256 + b], product);
    }
  }
  for (let a = 0; a < 256; a++) assert.equal(gfMul(a, 0), 0);
  // 0x11d reduction: 2 * 0x80 = 0x100 -> 0x1d.
  assert.equal(gfMul(2, 0x80), 0x1d);
});

test("GF(2^8): multiplication distributes over addition (XOR) and commutes", () => {
  const sample = randomBytes(3 * 2000);
  for (let i = 0; i < sample.length; i += 3) {
    const a = sample[i]!;
    const b = sample[i + 1]!;
    const c = sample[i + 2]!;
    assert.equal(gfMul(a, b ^ c), gfMul(a, b) ^ gfMul(a, c));
    assert.equal(gfMul(a, b), gfMul(b, a));
    assert.equal(gfMul(a, gfMul(b, c)), gfMul(gfMul(a, b), c));
  }
});

function checkEveryLoss(k: number, m: number, shardSize: number): void {
  const codec = new ReedSolomon(k, m);
  const data = randomShards(k, shardSize);
  const parity = codec.encode(data);
  assert.equal(parity.length, m);
  const all = [...data, ...parity];
  for (let lost = 1; lost <= m; lost++) {
    for (const indices of subsets(k + m, lost)) {
      const damaged: Array<Uint8Array | undefined> = all.slice();
      for (const i of indices) damaged[i] = undefined;
      const rebuilt = codec.reconstruct(damaged);
      assert.equal(rebuilt.length, k + m);
      for (let i = 0; i < k + m; i++) assert.ok(equalBytes(rebuilt[i]!, all[i]!), `(${k},${m}) lost ${indices} shard ${i}`);
    }
  }
  for (const indices of [Array.from({ length: m + 1 }, (_, i) => i), Array.from({ length: m + 1 }, (_, i) => k + m - 1 - i)]) {
    const damaged: Array<Uint8Array | undefined> = all.slice();
    for (const i of indices) damaged[i] = undefined;
    assert.throws(() => codec.reconstruct(damaged), TooFewShards);
  }
}

for (const [k, m] of [[4, 2], [8, 4], [6, 3], [10, 4], [3, 1]] as const) {
  test(`(${k},${m}) with 64-byte shards: every set of 1..${m} lost shards reconstructs`, () => checkEveryLoss(k, m, 64));
}
for (const [k, m] of [[4, 2], [8, 4]] as const) {
  test(`(${k},${m}) with 64 KiB shards: every set of 1..${m} lost shards reconstructs`, () => checkEveryLoss(k, m, 64 * 1024));
}

test("the widest stripe works and odd shard lengths (not multiples of 8) reconstruct", () => {
  const codec = new ReedSolomon(EC_SHARD_COUNT_MAX - 4, 4);
  const data = randomShards(EC_SHARD_COUNT_MAX - 4, 1001);
  const all = [...data, ...codec.encode(data)];
  const damaged: Array<Uint8Array | undefined> = all.slice();
  for (const i of [0, 5, 15, 19]) damaged[i] = undefined;
  codec.reconstruct(damaged).forEach((shard, i) => assert.ok(equalBytes(shard, all[i]!), `shard ${i}`));
  assert.throws(() => new ReedSolomon(EC_SHARD_COUNT_MAX, 1));
});

test("encode and reconstruct never modify their inputs, and accept Buffers", () => {
  const codec = new ReedSolomon(4, 2);
  const data = Array.from({ length: 4 }, () => randomBytes(333));
  const dataCopy = data.map((shard) => Buffer.from(shard));
  const parity = codec.encode(data);
  data.forEach((shard, i) => assert.ok(equalBytes(shard, dataCopy[i]!)));
  const shards: Array<Uint8Array | undefined> = [undefined, data[1], undefined, data[3], parity[0], parity[1]];
  const snapshot = shards.map((shard) => (shard === undefined ? undefined : Buffer.from(shard)));
  const rebuilt = codec.reconstruct(shards);
  assert.equal(shards.length, 6);
  shards.forEach((shard, i) => {
    const before = snapshot[i];
    if (before === undefined) assert.equal(shard, undefined);
    else assert.ok(equalBytes(shard!, before));
  });
  rebuilt.slice(0, 4).forEach((shard, i) => assert.ok(equalBytes(shard, dataCopy[i]!)));
});

test("unequal shard lengths are refused", () => {
  const codec = new ReedSolomon(2, 1);
  assert.throws(() => codec.encode([new Uint8Array(4), new Uint8Array(5)]));
  assert.throws(() => codec.reconstruct([new Uint8Array(4), undefined, new Uint8Array(5)]));
});

test("split and join round-trip for sizes around the shard boundaries", () => {
  for (const k of [1, 3, 4, 8, 10]) {
    for (const size of [0, 1, k - 1, k, k + 1, 1024 * 1024 + 3]) {
      const chunk = randomBytes(size);
      const original = Buffer.from(chunk);
      const shards = splitIntoDataShards(chunk, k);
      assert.equal(shards.length, k);
      const shardSize = Math.ceil(size / k);
      for (const shard of shards) assert.equal(shard.length, shardSize);
      const padding = Buffer.concat(shards).subarray(size);
      assert.ok(padding.every((byte) => byte === 0), "padding is zeros");
      assert.ok(chunk.equals(original), "split does not modify its input");
      assert.ok(joinDataShards(shards, size).equals(original), `k=${k} size=${size}`);
    }
  }
});

test("a split chunk survives losing m shards end to end", () => {
  const codec = new ReedSolomon(4, 2);
  const chunk = randomBytes(100_003);
  const data = splitIntoDataShards(chunk, 4);
  const all: Array<Uint8Array | undefined> = [...data, ...codec.encode(data)];
  all[1] = undefined;
  all[2] = undefined;
  assert.ok(joinDataShards(codec.reconstruct(all).slice(0, 4), chunk.length).equals(chunk));
});

test("storage classes parse", () => {
  assert.deepEqual(parseErasureCodingClass("EC:4+2"), { dataShardCount: 4, parityShardCount: 2 });
  assert.deepEqual(parseErasureCodingClass("EC:16+4"), { dataShardCount: 16, parityShardCount: 4 });
  for (const bad of ["EC:17+4", "EC:0+2", "EC:4+0", "EC:04+2", "ec:4+2", "EC:4+2 ", "EC:4", "STANDARD", "EC:-1+2", "EC:4.0+2"]) {
    assert.equal(parseErasureCodingClass(bad), undefined, bad);
  }
});
