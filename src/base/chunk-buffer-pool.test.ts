// The pool must never hand out a buffer that is still held, and must refuse a double release.
import { test } from "node:test";
import assert from "node:assert/strict";
import { CHUNK_BUFFER_POOL_COUNT_MAX, CHUNK_BUFFER_SIZE_BYTES, CHUNK_SIZE_BYTES, releaseChunkBufferOf, chunkBufferRef, releaseChunkBuffer, resolveChunkBufferRef, takeChunkBuffer, type ChunkBuffer } from "./index.js";

test("a taken chunk buffer is never handed out again until released; past the pool, buffers are ephemeral", () => {
  const held: ChunkBuffer[] = [];
  for (let index = 0; index < CHUNK_BUFFER_POOL_COUNT_MAX + 3; index++) {
    const buffer = takeChunkBuffer();
    assert.equal(buffer.bytes.length, CHUNK_BUFFER_SIZE_BYTES);
    assert.ok(buffer.bytes.length > CHUNK_SIZE_BYTES, "room for a needle's framing");
    buffer.bytes.fill(index & 0xff, 0, 16);
    held.push(buffer);
  }
  assert.equal(new Set(held.map((buffer) => buffer.shared)).size, held.length, "every held buffer is distinct memory");
  assert.equal(held.filter((buffer) => buffer.id === 0).length, 3, "past the pool's size, buffers are not pooled");
  // Release every other one: takes reuse only those, never a held one.
  const released = new Set<SharedArrayBuffer>();
  held.forEach((buffer, index) => {
    if (index % 2 === 0) {
      releaseChunkBuffer(buffer);
      if (buffer.id > 0) released.add(buffer.shared);
    }
  });
  assert.throws(() => releaseChunkBuffer(held[0]!), /released once/, "a double release is refused");
  const retaken: ChunkBuffer[] = [];
  for (let count = 0; count < released.size; count++) retaken.push(takeChunkBuffer());
  for (const buffer of retaken) assert.ok(released.has(buffer.shared), "a reused buffer is one that was released");
  held.forEach((buffer, index) => {
    if (index % 2 === 1) assert.ok(buffer.bytes.subarray(0, 16).every((byte) => byte === (index & 0xff)), `held buffer ${index} untouched`);
  });
  for (const buffer of [...retaken, ...held.filter((_, index) => index % 2 === 1)]) releaseChunkBuffer(buffer);
});

test("a worker is sent a pooled buffer's memory once, then its id", () => {
  const buffer = takeChunkBuffer();
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
  const buffer = takeChunkBuffer();
  assert.equal(releaseChunkBufferOf(Buffer.alloc(16)), false, "plain memory is not a chunk buffer");
  assert.equal(releaseChunkBufferOf(buffer.bytes.subarray(28, 1000)), true);
  assert.equal(buffer.isTaken, false);
  assert.throws(() => releaseChunkBufferOf(buffer.bytes), /released once/, "a second release is refused");
});
