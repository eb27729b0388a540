// Proves the Reed-Solomon codec correct. For each (k, m) in a spread of shapes, fresh random data
// is encoded and then EVERY set of 1..m lost shards is reconstructed and compared byte for byte
// with the original; that decodes through every k x k submatrix the erasure patterns can select,
// so it checks the MDS property directly. Losing m + 1 shards throws TooFewShards. Both kernels
// (WebAssembly SIMD and plain JS) are run and must agree to the byte, on odd lengths and unaligned
// Buffer views too. Inputs are never modified; unequal shard lengths fail an assertion.
// The data comes from a printed seed (see ec-test-data.ts) so any failure replays.
import { test } from "node:test";
import assert from "node:assert/strict";
import { AssertionError } from "../base/index.js";
import { SeededBytes, sameBytes, subsetsOf } from "./ec-test-data.js";
import { EC_SHARD_COUNT_MAX, type EcKernel, ReedSolomon, TooFewShards } from "./index.js";
import { simdKernelAvailable } from "./simd-kernel.js";

const random = new SeededBytes("reed-solomon.test");
const KERNELS: EcKernel[] = simdKernelAvailable() ? ["simd", "js"] : ["js"];

function checkEveryLoss(codec: ReedSolomon, shardSizeBytes: number): number {
  const { dataShardCount: k, parityShardCount: m } = codec;
  const data = random.shards(k, shardSizeBytes);
  const all = [...data, ...codec.encode(data)];
  let patternCount = 0;
  for (let lostCount = 1; lostCount <= m; lostCount++) {
    for (const lost of subsetsOf(k + m, lostCount)) {
      const damaged: Array<Uint8Array | undefined> = all.slice();
      for (const shardIndex of lost) damaged[shardIndex] = undefined;
      const rebuilt = codec.reconstruct(damaged);
      assert.equal(rebuilt.length, k + m);
      for (let shardIndex = 0; shardIndex < k + m; shardIndex++) {
        if (!sameBytes(rebuilt[shardIndex]!, all[shardIndex]!)) assert.fail(`${k}+${m} ${codec.kernel}: lost [${lost}], shard ${shardIndex} differs`);
      }
      patternCount++;
    }
  }
  for (const lost of [range(0, m + 1), range(k - 1, k + m), subsetsOf(k + m, m + 1).next().value!]) {
    const damaged: Array<Uint8Array | undefined> = all.slice();
    for (const shardIndex of lost) damaged[shardIndex] = undefined;
    assert.throws(() => codec.reconstruct(damaged), TooFewShards);
  }
  assert.throws(() => codec.reconstruct(new Array<undefined>(k + m).fill(undefined)), TooFewShards);
  return patternCount;
}

function range(start: number, end: number): number[] {
  return Array.from({ length: end - start }, (_, i) => start + i);
}

function choose(n: number, r: number): number {
  return r === 0 ? 1 : (choose(n - 1, r - 1) * n) / r;
}

for (const kernel of KERNELS) {
  for (const [k, m] of [[4, 2], [8, 4], [6, 3], [10, 4], [3, 1], [17, 3]] as const) {
    test(`${kernel} kernel, ${k}+${m}, 64-byte shards: every set of 1..${m} lost shards reconstructs`, () => {
      const patternCount = checkEveryLoss(new ReedSolomon(k, m, { kernel }), 64);
      assert.equal(patternCount, range(1, m + 1).reduce((sum, lost) => sum + choose(k + m, lost), 0));
    });
  }
}

for (const [k, m] of [[4, 2], [8, 4]] as const) {
  test(`default kernel, ${k}+${m}, 64 KiB shards: every set of 1..${m} lost shards reconstructs`, () => {
    checkEveryLoss(new ReedSolomon(k, m), 64 * 1024);
  });
}

test("the SIMD and JS kernels agree on odd lengths and unaligned views", { skip: !simdKernelAvailable() && "no WebAssembly SIMD" }, () => {
  for (const [k, m] of [[4, 2], [8, 4], [16, 4], [1, 1]] as const) {
    const simd = new ReedSolomon(k, m, { kernel: "simd" });
    const js = new ReedSolomon(k, m, { kernel: "js" });
    for (const shardSizeBytes of [0, 1, 3, 15, 16, 17, 1001, 16 * 1024 - 1, 16 * 1024 + 1, 3 * 16 * 1024 + 5]) {
      // Views at byte offset 1 of a larger buffer, as a Buffer sliced out of Node's pool would be.
      const data = random.shards(k, shardSizeBytes + 1).map((shard) => Buffer.from(shard.buffer, 1, shardSizeBytes));
      const simdParity = simd.encode(data);
      const jsParity = js.encode(data);
      simdParity.forEach((shard, i) => assert.ok(sameBytes(shard, jsParity[i]!), `${k}+${m} size ${shardSizeBytes} parity ${i}`));
      const damaged: Array<Uint8Array | undefined> = [...data, ...simdParity];
      for (let i = 0; i < m; i++) damaged[(i * 3) % (k + m)] = undefined;
      const fromSimd = simd.reconstruct(damaged);
      const fromJs = js.reconstruct(damaged);
      fromSimd.forEach((shard, i) => assert.ok(sameBytes(shard, fromJs[i]!), `${k}+${m} size ${shardSizeBytes} shard ${i}`));
      data.forEach((shard, i) => assert.ok(sameBytes(fromSimd[i]!, shard)));
    }
  }
});

test("the widest stripe encodes and reconstructs; a wider one is refused", () => {
  const k = EC_SHARD_COUNT_MAX - 4;
  const codec = new ReedSolomon(k, 4);
  const data = random.shards(k, 1001);
  const all = [...data, ...codec.encode(data)];
  const damaged: Array<Uint8Array | undefined> = all.slice();
  for (const shardIndex of [0, 5, k, EC_SHARD_COUNT_MAX - 1]) damaged[shardIndex] = undefined;
  codec.reconstruct(damaged).forEach((shard, i) => assert.ok(sameBytes(shard, all[i]!), `shard ${i}`));
  assert.throws(() => new ReedSolomon(EC_SHARD_COUNT_MAX, 1), AssertionError);
  assert.throws(() => new ReedSolomon(0, 2), AssertionError);
  assert.throws(() => new ReedSolomon(4, 0), AssertionError);
});

test("encode and reconstruct never modify their inputs", () => {
  for (const kernel of KERNELS) {
    const codec = new ReedSolomon(4, 2, { kernel });
    const data = random.shards(4, 333).map((shard) => Buffer.from(shard));
    const dataBefore = data.map((shard) => Buffer.from(shard));
    const parity = codec.encode(data);
    data.forEach((shard, i) => assert.ok(shard.equals(dataBefore[i]!)));
    const shards: Array<Uint8Array | undefined> = [undefined, data[1], data[2], data[3], parity[0], undefined];
    const snapshot = shards.map((shard) => (shard === undefined ? undefined : Buffer.from(shard)));
    const rebuilt = codec.reconstruct(shards);
    assert.deepEqual(shards.map((shard) => shard === undefined), [true, false, false, false, false, true], "slots untouched");
    shards.forEach((shard, i) => assert.ok(shard === undefined || sameBytes(shard, snapshot[i]!), `shard ${i} unchanged`));
    assert.equal(rebuilt[1], data[1], "present shards are returned as given");
    rebuilt.slice(0, 4).forEach((shard, i) => assert.ok(sameBytes(shard, dataBefore[i]!)));
    assert.ok(sameBytes(rebuilt[5]!, parity[1]!));
  }
});

test("unequal shard lengths and wrong shard counts fail assertions", () => {
  const codec = new ReedSolomon(2, 1);
  assert.throws(() => codec.encode([new Uint8Array(4), new Uint8Array(5)]), AssertionError);
  assert.throws(() => codec.encode([new Uint8Array(4)]), AssertionError);
  assert.throws(() => codec.reconstruct([new Uint8Array(4), undefined, new Uint8Array(5)]), AssertionError);
  assert.throws(() => codec.reconstruct([new Uint8Array(4), new Uint8Array(4)]), AssertionError);
});

test("the decode cache stays correct past its bound (8+4 has 793 loss patterns)", () => {
  const codec = new ReedSolomon(8, 4);
  const data = random.shards(8, 48);
  const all = [...data, ...codec.encode(data)];
  for (let round = 0; round < 2; round++) {
    for (const lost of subsetsOf(12, 4)) {
      const damaged: Array<Uint8Array | undefined> = all.slice();
      for (const shardIndex of lost) damaged[shardIndex] = undefined;
      codec.reconstruct(damaged).forEach((shard, i) => assert.ok(sameBytes(shard, all[i]!), `round ${round} lost [${lost}] shard ${i}`));
    }
  }
});
