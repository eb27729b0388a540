// Proves EcWorkerPool keeps the codec's contract across threads: its parity and reconstructions
// equal the synchronous codec's byte for byte (4+2 and 8+4, concurrent requests over two
// workers); it rejects with TooFewShards and fails the same assertions before sending anything;
// callers' shards (including Buffers from Node's shared pool) are neither detached nor modified.
// encodeChunk cuts a chunk as splitIntoDataShards does, with the codec's parity and each shard's
// CRC32, and never aliases the chunk.
// A smoke test checks that timers fire while a worker codes (timing-based, so it asserts little).
import { test } from "node:test";
import assert from "node:assert/strict";
import { AssertionError, crc32 } from "../base/index.js";
import { SeededBytes, sameBytes } from "./ec-test-data.js";
import { EcWorkerPool, ReedSolomon, splitIntoDataShards, TooFewShards } from "./index.js";

const random = new SeededBytes("ec-worker-pool.test");

test("the pool encodes and reconstructs exactly as the synchronous codec does", async () => {
  const pool = new EcWorkerPool({ workerCount: 2 });
  try {
    await Promise.all(
      ([[4, 2], [8, 4], [4, 2], [8, 4]] as const).map(async ([k, m], round) => {
        const codec = new ReedSolomon(k, m);
        const data = random.shards(k, 64 * 1024 + round);
        const parity = await pool.encode({ k, m }, data);
        const expected = codec.encode(data);
        assert.equal(parity.length, m);
        parity.forEach((shard, i) => assert.ok(sameBytes(shard, expected[i]!), `${k}+${m} parity ${i}`));
        const stripe: Array<Uint8Array | undefined> = [...data, ...parity];
        for (let i = 0; i < m; i++) stripe[i + round] = undefined;
        const rebuilt = await pool.reconstruct({ k, m }, stripe);
        rebuilt.forEach((shard, i) => assert.ok(sameBytes(shard, i < k ? data[i]! : parity[i - k]!), `${k}+${m} shard ${i}`));
        assert.equal(rebuilt[k + m - 1], stripe[k + m - 1], "present shards are returned as given");
      }),
    );
  } finally {
    await pool.close();
  }
});

test("encodeChunk gives the data shards split, the codec's parity and every shard's CRC32", async () => {
  const pool = new EcWorkerPool({ workerCount: 2 });
  try {
    // Sizes a multiple of k, with padding in the last shard, smaller than k, and empty.
    for (const [k, m, sizeBytes] of [[4, 2, 1024 * 1024], [4, 2, 1024 * 1024 + 3], [8, 4, 100_001], [4, 2, 3], [4, 2, 0]] as const) {
      // Chunks of large bodies live in shared memory, 28 bytes into a pooled buffer.
      const shared = Buffer.from(new SharedArrayBuffer(sizeBytes + 28), 28, sizeBytes);
      const chunk = sizeBytes % 2 === 1 ? shared : Buffer.alloc(sizeBytes);
      chunk.set(random.bytes(sizeBytes));
      const original = Buffer.from(chunk);
      const shards = await pool.encodeChunk({ k, m }, chunk);
      const expectedData = splitIntoDataShards(original, k);
      const expected = [...expectedData, ...new ReedSolomon(k, m).encode(expectedData)];
      assert.equal(shards.length, k + m, `${k}+${m} of ${sizeBytes} bytes: k + m shards`);
      shards.forEach((shard, i) => {
        assert.ok(sameBytes(shard.data, expected[i]!), `${k}+${m} of ${sizeBytes} bytes: shard ${i}`);
        assert.equal(shard.crc32, crc32(expected[i]!), `${k}+${m} of ${sizeBytes} bytes: CRC32 of shard ${i}`);
      });
      chunk.fill(0xee);
      assert.ok(shards.every((shard, i) => sameBytes(shard.data, expected[i]!)), "the shards do not alias the chunk");
    }
    await assert.rejects(pool.encodeChunk({ k: 19, m: 2 }, Buffer.alloc(10)), AssertionError);
  } finally {
    await pool.close();
  }
});

test("released shards' memory holds the next stripe of their size, encoded right; other sizes get their own", async () => {
  const pool = new EcWorkerPool({ workerCount: 1 });
  try {
    const encodeAndCheck = async (sizeBytes: number) => {
      const chunk = Buffer.from(random.bytes(sizeBytes));
      const shards = await pool.encodeChunk({ k: 4, m: 2 }, chunk);
      const expectedData = splitIntoDataShards(chunk, 4);
      const expected = [...expectedData, ...new ReedSolomon(4, 2).encode(expectedData)];
      shards.forEach((shard, i) => {
        assert.ok(sameBytes(shard.data, expected[i]!), `${sizeBytes} bytes: shard ${i}`);
        assert.equal(shard.crc32, crc32(expected[i]!), `${sizeBytes} bytes: CRC32 of shard ${i}`);
      });
      return shards;
    };
    const first = await encodeAndCheck(256 * 1024 + 5);
    const firstMemory = first[0]!.data.buffer;
    const stripeBytes = firstMemory.byteLength;
    pool.releaseShards(first);
    // The same size reuses the memory: the worker computes over it again (its bytes were overwritten).
    const second = await encodeAndCheck(256 * 1024 + 7);
    assert.equal(second[0]!.data.buffer.byteLength, stripeBytes);
    assert.equal(firstMemory.byteLength, 0, "the released memory went to the worker (transferred), not a copy");
    // A different size gets new memory, and the one kept stays for its own size.
    const other = await encodeAndCheck(1024 * 1024);
    assert.notEqual(other[0]!.data.buffer.byteLength, second[0]!.data.buffer.byteLength);
    pool.releaseShards(second);
    pool.releaseShards(other);
    await encodeAndCheck(1024 * 1024);
    await encodeAndCheck(256 * 1024 + 8);
    // Empty shards release nothing and encode as before.
    const empty = await pool.encodeChunk({ k: 4, m: 2 }, Buffer.alloc(0));
    pool.releaseShards(empty);
    assert.ok(empty.every((shard) => shard.data.length === 0));
  } finally {
    await pool.close();
  }
});

test("the pool rejects what the codec rejects, and leaves inputs usable and unchanged", async () => {
  const pool = new EcWorkerPool({ workerCount: 1 });
  try {
    const data = [Buffer.from("abcd"), Buffer.from("efgh"), Buffer.from("ijkl"), Buffer.from("mnop")]; // pooled Buffers
    const before = data.map((shard) => Buffer.from(shard));
    const parity = await pool.encode({ k: 4, m: 2 }, data);
    data.forEach((shard, i) => assert.ok(shard.equals(before[i]!), `shard ${i} intact and attached`));
    await assert.rejects(pool.reconstruct({ k: 4, m: 2 }, [undefined, undefined, undefined, data[3], parity[0], parity[1]]), TooFewShards);
    await assert.rejects(pool.encode({ k: 4, m: 2 }, [data[0]!, data[1]!, data[2]!, Buffer.from("x")]), AssertionError);
    await assert.rejects(pool.encode({ k: 19, m: 2 }, []), AssertionError);
    const whole = await pool.reconstruct({ k: 4, m: 2 }, [...data, ...parity]);
    whole.forEach((shard, i) => assert.equal(shard, [...data, ...parity][i]));
  } finally {
    await pool.close();
  }
});

test("timers fire while a worker encodes (smoke test)", async () => {
  const pool = new EcWorkerPool({ workerCount: 1 });
  try {
    const data = random.shards(8, 2 * 1024 * 1024);
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    const encodes = Promise.all([1, 2, 3, 4].map(() => pool.encode({ k: 8, m: 4 }, data)));
    await encodes;
    clearInterval(timer);
    assert.ok(ticks > 0, "timers fired during the encodes");
  } finally {
    await pool.close();
  }
});
