// Proves each checksum against the standard check value of "123456789" and that feeding a
// body in pieces gives the same digest as feeding it whole.
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import {
  crc32,
  CRC32_IMPLEMENTATION,
  crc32c,
  crc32Combine,
  crc64nvme,
  newChecksummer,
  portableCrc32,
  portableCrc32c,
  CHECKSUM_ALGORITHMS,
} from "./checksum.js";

const CHECK = Buffer.from("123456789");

test("crc32 matches the standard check value", () => {
  assert.equal(crc32(CHECK), 0xcbf43926);
});

test("crc32c matches the standard check value", () => {
  assert.equal(crc32c(CHECK), 0xe3069283);
});

test("the native CRC32 and CRC32C load here and agree with the portable code on any bytes, lengths, alignments and running values", () => {
  // The native module is a dependency with a prebuilt binary for this platform: on Linux x64 and
  // arm64 it must load, or large PUTs and GETs silently run at a fifth of their checksum speed.
  if (process.platform === "linux" && (process.arch === "x64" || process.arch === "arm64")) assert.equal(CRC32_IMPLEMENTATION, "native");
  assert.equal(portableCrc32(CHECK), 0xcbf43926);
  assert.equal(portableCrc32c(CHECK), 0xe3069283);
  const shared = new Uint8Array(new SharedArrayBuffer(300_000)); // chunk buffers are shared memory
  shared.set(randomBytes(shared.length));
  const plain = randomBytes(300_000);
  for (const bytes of [plain, shared]) {
    for (const [start, length] of [[0, 0], [0, 1], [3, 5], [1, 4096], [28, 65_536], [7, 299_993], [0, 300_000]] as const) {
      const piece = bytes.subarray(start, start + length);
      for (const previous of [0, 1, 0xcbf43926, 0xffffffff]) {
        assert.equal(crc32(piece, previous), portableCrc32(piece, previous), `crc32 of ${length} bytes at ${start} after ${previous}`);
        assert.equal(crc32c(piece, previous), portableCrc32c(piece, previous), `crc32c of ${length} bytes at ${start} after ${previous}`);
      }
    }
  }
  // Running values chain: two calls give what one call over both pieces gives.
  assert.equal(crc32(plain.subarray(1000), crc32(plain.subarray(0, 1000))), crc32(plain));
  assert.equal(crc32c(plain.subarray(1000), crc32c(plain.subarray(0, 1000))), crc32c(plain));
});

test("crc64nvme matches the standard check value", () => {
  assert.equal(crc64nvme(CHECK), 0xae8b14860a799888n);
});

test("incremental digests equal one-shot digests for every algorithm", () => {
  const body = randomBytes(100_003);
  for (const algorithm of CHECKSUM_ALGORITHMS) {
    const whole = newChecksummer(algorithm);
    whole.update(body);
    const pieces = newChecksummer(algorithm);
    for (let offset = 0; offset < body.length; offset += 7919) pieces.update(body.subarray(offset, offset + 7919));
    assert.deepEqual(pieces.digest(), whole.digest(), algorithm);
  }
});

test("crc32Combine gives the CRC32 of the concatenation without reading it again", () => {
  const bytes = randomBytes(70_000);
  for (const split of [0, 1, 7, 8, 4095, 65_536, 70_000]) {
    const left = bytes.subarray(0, split);
    const right = bytes.subarray(split);
    assert.equal(crc32Combine(crc32(left), crc32(right), right.length), crc32(bytes), `split at ${split}`);
  }
  // A changed byte on either side changes the combination.
  const flipped = Buffer.from(bytes);
  flipped[69_999] = flipped[69_999]! ^ 1;
  assert.notEqual(crc32Combine(crc32(bytes.subarray(0, 10)), crc32(flipped.subarray(10)), 69_990), crc32(bytes));
});
