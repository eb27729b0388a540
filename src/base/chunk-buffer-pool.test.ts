// The pool must never hand out a buffer that is still held, and must refuse a double release;
// its buffers are page-aligned memory, or plain shared memory where that cannot be reserved.
import { execFileSync } from "node:child_process";
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  CHUNK_BUFFER_DATA_OFFSET_BYTES,
  CHUNK_BUFFER_POOL_COUNT_MAX,
  CHUNK_BUFFER_RESERVE_COUNT,
  CHUNK_BUFFER_SIZE_BYTES,
  CHUNK_SIZE_BYTES,
  chunkBufferPoolStats,
  chunkBufferRef,
  pageOffsetOf,
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

test("chunk buffers are page-aligned memory, and plain shared memory where the address space for that is refused", () => {
  const buffer = tryTakeChunkBuffer();
  assert.ok(buffer !== undefined);
  try {
    assert.equal(buffer.pageAligned, true);
    assert.equal(pageOffsetOf(buffer.bytes.subarray(CHUNK_BUFFER_DATA_OFFSET_BYTES)), CHUNK_BUFFER_DATA_OFFSET_BYTES);
    assert.equal(pageOffsetOf(Buffer.alloc(16)), undefined, "other memory has no known page offset");
  } finally {
    releaseChunkBuffer(buffer);
  }
  // Under a 4 GB virtual memory limit V8 cannot reserve a WebAssembly memory: the pool falls back.
  const script = `import(${JSON.stringify(new URL("./index.js", import.meta.url).href)}).then((m) => {
    const b = m.tryTakeChunkBuffer();
    console.log(JSON.stringify({ pageAligned: b.pageAligned, pageOffset: m.pageOffsetOf(b.bytes) ?? null, sizeBytes: b.bytes.length }));
  })`;
  const output = execFileSync("bash", ["-c", `ulimit -v 4000000 && exec "${process.execPath}" --input-type=module -e "$0"`, script], { encoding: "utf8" });
  assert.deepEqual(JSON.parse(output), { pageAligned: false, pageOffset: null, sizeBytes: CHUNK_BUFFER_SIZE_BYTES });
});
