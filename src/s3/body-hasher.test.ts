// The hashing thread must give exactly the digests of hashing inline, whatever the pieces'
// sizes, for bodies spanning several batches and a partial last one, several at once.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { CHUNK_SIZE_BYTES, chunkBufferPoolStats, crc32, newChecksummer, MEBIBYTE, isChunkBufferView, releaseChunkBuffer, tryTakeChunkBuffer, type ChecksumAlgorithm, type ChunkBuffer } from "../base/index.js";
import { HASH_OFFLOAD_SIZE_BYTES_MIN, newBodyHasher } from "./body-hasher.js";

/** Feed `body` in pieces, checking each chunk the hasher assembles against the body, then release it. */
async function hashInPieces(body: Buffer, pieceSizeBytes: number, checksumAlgorithm: ChecksumAlgorithm = "CRC32C"): Promise<{ md5: Buffer; checksum: Buffer | undefined }> {
  const hasher = newBodyHasher({ checksumAlgorithm, declaredSizeBytes: body.length });
  let chunkStart = 0;
  const check = async (chunk: Buffer) => {
    assert.ok(chunk.equals(body.subarray(chunkStart, chunkStart + chunk.length)), `chunk at ${chunkStart} holds the body's bytes`);
    assert.equal(await hasher.chunkCrc32(chunk), crc32(chunk), `crc32 of the chunk at ${chunkStart}`);
    chunkStart += chunk.length;
    hasher.releaseChunk(chunk);
  };
  for (let offset = 0; offset < body.length; offset += pieceSizeBytes) {
    const waiting = hasher.update(body.subarray(offset, offset + pieceSizeBytes));
    if (waiting !== undefined) await waiting;
    for (let chunk = hasher.takeChunk(false); chunk !== undefined; chunk = hasher.takeChunk(false)) await check(chunk);
  }
  for (let chunk = hasher.takeChunk(true); chunk !== undefined; chunk = hasher.takeChunk(true)) await check(chunk);
  assert.equal(chunkStart, hasher.assemblesChunks ? body.length : 0, "the chunks cover the body");
  return hasher.digests();
}

test("offloaded MD5 and CRC32C equal inline hashing, for several bodies at once", async () => {
  const bodies = [HASH_OFFLOAD_SIZE_BYTES_MIN, 3 * MEBIBYTE + 12_345, 20 * MEBIBYTE + 1].map((size) => randomBytes(size));
  const pieceSizes = [65_536, 1_000_003, 7];
  const results = await Promise.all(bodies.map((body, index) => hashInPieces(body, index === 0 ? pieceSizes[2]! * 10_000 : pieceSizes[index % 2]!)));
  bodies.forEach((body, index) => {
    const crc32c = newChecksummer("CRC32C");
    crc32c.update(body);
    assert.deepEqual(results[index]!.md5, createHash("md5").update(body).digest(), `md5 of body ${index}`);
    assert.deepEqual(results[index]!.checksum, crc32c.digest(), `crc32c of body ${index}`);
  });
});

test("a small body is hashed inline with the same result", async () => {
  const body = randomBytes(4096);
  const result = await hashInPieces(body, 1000);
  assert.deepEqual(result.md5, createHash("md5").update(body).digest());
});

test("chunks are full 4 MiB pooled buffers and a short last one; a chunk held is never handed to another body", async () => {
  const body = randomBytes(2 * CHUNK_SIZE_BYTES + 777_777);
  const hasher = newBodyHasher({ checksumAlgorithm: undefined, declaredSizeBytes: body.length });
  const held: Buffer[] = [];
  for (let offset = 0; offset < body.length; offset += 65_536) {
    const waiting = hasher.update(body.subarray(offset, offset + 65_536));
    if (waiting !== undefined) await waiting;
    for (let chunk = hasher.takeChunk(false); chunk !== undefined; chunk = hasher.takeChunk(false)) held.push(chunk);
  }
  for (let chunk = hasher.takeChunk(true); chunk !== undefined; chunk = hasher.takeChunk(true)) held.push(chunk);
  assert.deepEqual(held.map((chunk) => chunk.length), [CHUNK_SIZE_BYTES, CHUNK_SIZE_BYTES, 777_777]);
  const crcs = await Promise.all(held.map((chunk) => hasher.chunkCrc32(chunk)));
  held.forEach((chunk, index) => assert.equal(crcs[index], crc32(body.subarray(index * CHUNK_SIZE_BYTES, index * CHUNK_SIZE_BYTES + chunk.length))));
  // Other bodies fill and release many chunks meanwhile: none may land in the held buffers.
  for (let round = 0; round < 3; round++) await hashInPieces(randomBytes(5 * CHUNK_SIZE_BYTES), 1_000_003);
  held.forEach((chunk, index) => assert.ok(chunk.equals(body.subarray(index * CHUNK_SIZE_BYTES, index * CHUNK_SIZE_BYTES + chunk.length)), `held chunk ${index} unchanged`));
  assert.throws(() => hasher.releaseChunk(Buffer.alloc(10)), /released once/, "a buffer this hasher never handed out is refused");
  const freeBefore = chunkBufferPoolStats().freeCount;
  for (const chunk of held) hasher.releaseChunk(chunk);
  assert.ok(chunkBufferPoolStats().freeCount >= freeBefore + 2, "released chunks go back to the pool once hashed");
  assert.throws(() => hasher.releaseChunk(held[0]!), /released once/, "a second release is refused");
  const digests = await hasher.digests();
  assert.deepEqual(digests.md5, createHash("md5").update(body).digest(), "md5 covers the whole body");
});

test("a requested CRC32 (the SDKs' default) is combined from the hashing thread's range CRC32s and equals a CRC32 of the body", async () => {
  for (const sizeBytes of [HASH_OFFLOAD_SIZE_BYTES_MIN, 2 * CHUNK_SIZE_BYTES + 3 * MEBIBYTE + 17]) {
    const body = randomBytes(sizeBytes);
    const result = await hashInPieces(body, 65_536, "CRC32");
    const expected = newChecksummer("CRC32");
    expected.update(body);
    assert.deepEqual(result.checksum, expected.digest(), `crc32 of a ${sizeBytes}-byte body`);
    assert.deepEqual(result.md5, createHash("md5").update(body).digest());
  }
});

test("with every chunk buffer taken, a large body goes on in plain memory, hashed from copies, its CRC left to the caller", async () => {
  const held: ChunkBuffer[] = [];
  for (let buffer = tryTakeChunkBuffer(); buffer !== undefined; buffer = tryTakeChunkBuffer()) held.push(buffer);
  try {
    const body = randomBytes(CHUNK_SIZE_BYTES + 5);
    const hasher = newBodyHasher({ checksumAlgorithm: "CRC32", declaredSizeBytes: body.length });
    for (let offset = 0; offset < body.length; offset += 65_536) {
      const waiting = hasher.update(body.subarray(offset, offset + 65_536));
      if (waiting !== undefined) await waiting;
    }
    const chunks: Buffer[] = [];
    for (let chunk = hasher.takeChunk(true); chunk !== undefined; chunk = hasher.takeChunk(true)) chunks.push(chunk);
    assert.ok(Buffer.concat(chunks).equals(body), "the chunks hold the body");
    for (const chunk of chunks) {
      assert.equal(isChunkBufferView(chunk), false, "plain memory");
      assert.equal(hasher.chunkCrc32(chunk), undefined, "no CRC over these bytes: the caller computes it");
      hasher.releaseChunk(chunk);
    }
    const digests = await hasher.digests();
    assert.deepEqual(digests.md5, createHash("md5").update(body).digest());
    assert.equal(digests.checksum?.readUInt32BE(0), crc32(body), "the requested CRC32 still covers the body");
  } finally {
    for (const buffer of held) releaseChunkBuffer(buffer);
  }
});
