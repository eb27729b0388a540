// The hashing thread must give exactly the digests of hashing inline, whatever the pieces'
// sizes, for bodies spanning several batches and a partial last one, several at once.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { newChecksummer, MEBIBYTE } from "../base/index.js";
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
