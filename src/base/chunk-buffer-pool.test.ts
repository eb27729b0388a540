// The pool must never hand out a buffer that is still held, and must refuse a double release.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  CHUNK_BUFFER_POOL_COUNT_MAX,
  CHUNK_BUFFER_RESERVE_COUNT,
  CHUNK_BUFFER_SIZE_BYTES,
  CHUNK_SIZE_BYTES,
  chunkBufferPoolStats,
  chunkBufferRef,
  releaseChunkBuffer,
  releaseChunkBufferOf,
  resolveChunkBufferRef,
  tryTakeChunkBuffer,
  type ChunkBuffer,
} from "./index.js";

test("a taken chunk buffer is never handed out again until released; the pool is bounded and reads leave a reserve", () => {
  const held: ChunkBuffer[] = [];
  for (let buffer = tryTakeChunkBuffer(); buffer !== undefined; buffer = tryTakeChunkBuffer()) {
    assert.equal(buffer.bytes.length, CHUNK_BUFFER_SIZE_BYTES);
    assert.ok(buffer.bytes.length > CHUNK_SIZE_BYTES, "room for a needle's framing");
    buffer.bytes.fill(held.length & 0xff, 0, 16);
    held.push(buffer);
  }
  assert.equal(held.length, CHUNK_BUFFER_POOL_COUNT_MAX, "the pool is bounded");
  assert.equal(new Set(held.map((buffer) => buffer.shared)).size, held.length, "every held buffer is distinct memory");
  assert.equal(tryTakeChunkBuffer(), undefined, "with every buffer taken, there is none");
  const released = held.pop()!;
  releaseChunkBuffer(released);
  const handed = tryTakeChunkBuffer();
  assert.equal(handed, released, "a released buffer is handed out again");
  const first = held.shift()!;
  releaseChunkBuffer(first);
  assert.throws(() => releaseChunkBuffer(first), /released once/, "a double release is refused");
  for (const buffer of held.splice(0, CHUNK_BUFFER_RESERVE_COUNT - 1)) releaseChunkBuffer(buffer);
  assert.equal(tryTakeChunkBuffer(CHUNK_BUFFER_RESERVE_COUNT), undefined, "an optional taker leaves the reserve");
  const reused = tryTakeChunkBuffer();
  assert.ok(reused !== undefined && !held.includes(reused) && reused !== handed, "a reused buffer is a released one");
  held.forEach((buffer, index) => {
    const fillByte = (index + CHUNK_BUFFER_RESERVE_COUNT) & 0xff;
    assert.ok(buffer.bytes.subarray(0, 16).every((byte) => byte === fillByte), `held buffer ${index} untouched`);
  });
  for (const buffer of [...held, handed!, reused!]) releaseChunkBuffer(buffer);
  assert.equal(chunkBufferPoolStats().freeCount, CHUNK_BUFFER_POOL_COUNT_MAX);
});

test("a worker is sent a pooled buffer's memory once, then its id", () => {
  const buffer = tryTakeChunkBuffer()!;
  const known = new Set<number>();
  const cache = new Map<number, SharedArrayBuffer>();
  const first = chunkBufferRef(buffer, known);
  assert.equal(first.shared, buffer.shared);
  assert.equal(resolveChunkBufferRef(first, cache), buffer.shared);
  const second = chunkBufferRef(buffer, known);
  assert.equal(second.shared, undefined);
  assert.equal(resolveChunkBufferRef(second, cache), buffer.shared);
  releaseChunkBuffer(buffer);
});

test("releaseChunkBufferOf releases the chunk buffer a view belongs to, once, and ignores plain memory", () => {
  const buffer = tryTakeChunkBuffer()!;
  assert.equal(releaseChunkBufferOf(Buffer.alloc(16)), false, "plain memory is not a chunk buffer");
  assert.equal(releaseChunkBufferOf(buffer.bytes.subarray(28, 1000)), true);
  assert.equal(buffer.isTaken, false);
  assert.throws(() => releaseChunkBufferOf(buffer.bytes), /released once/, "a second release is refused");
});
