// The hashing thread must give exactly the digests of hashing inline, whatever the pieces'
// sizes, for bodies spanning several batches and a partial last one, several at once.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { crc32, newChecksummer, MEBIBYTE } from "../base/index.js";
import { HASH_OFFLOAD_SIZE_BYTES_MIN, newBodyHasher } from "./body-hasher.js";

async function hashInPieces(body: Buffer, pieceSizeBytes: number): Promise<{ md5: Buffer; checksum: Buffer | undefined }> {
  const hasher = newBodyHasher({ checksumAlgorithm: "CRC32C", declaredSizeBytes: body.length });
  for (let offset = 0; offset < body.length; offset += pieceSizeBytes) {
    const waiting = hasher.update(body.subarray(offset, offset + pieceSizeBytes));
    if (waiting !== undefined) await waiting;
  }
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

test("the hashing thread's range CRC32s equal zlib's CRC32 of each 4 MiB chunk and of the short last one", async () => {
  const chunkSizeBytes = 4 * MEBIBYTE;
  const body = randomBytes(2 * chunkSizeBytes + 777_777);
  const hasher = newBodyHasher({ checksumAlgorithm: undefined, declaredSizeBytes: body.length });
  const pending: Array<{ startByte: number; lengthBytes: number; crc: Promise<number> | undefined }> = [];
  let received = 0;
  let chunkStart = 0;
  for (let offset = 0; offset < body.length; offset += 65_536) {
    const piece = body.subarray(offset, offset + 65_536);
    const waiting = hasher.update(piece);
    received += piece.length;
    if (received - chunkStart === chunkSizeBytes) {
      pending.push({ startByte: chunkStart, lengthBytes: chunkSizeBytes, crc: hasher.rangeCrc32(chunkStart, chunkSizeBytes) });
      chunkStart = received;
    }
    if (waiting !== undefined) await waiting;
  }
  pending.push({ startByte: chunkStart, lengthBytes: received - chunkStart, crc: hasher.rangeCrc32(chunkStart, received - chunkStart) });
  assert.equal(hasher.rangeCrc32(1, 1000), undefined, "a range off the batch boundaries is left to the caller");
  assert.equal(pending.length, 3);
  for (const range of pending) {
    assert.ok(range.crc !== undefined, `range at ${range.startByte} is known`);
    assert.equal(await range.crc, crc32(body.subarray(range.startByte, range.startByte + range.lengthBytes)), `crc32 of range at ${range.startByte}`);
  }
  const digests = await hasher.digests();
  assert.deepEqual(digests.md5, createHash("md5").update(body).digest(), "md5 still covers the whole body");
});
