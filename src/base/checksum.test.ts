// Proves each checksum against the standard check value of "123456789" and that feeding a
// body in pieces gives the same digest as feeding it whole.
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { crc32, crc32c, crc32Combine, crc64nvme, newChecksummer, CHECKSUM_ALGORITHMS } from "./checksum.js";

const CHECK = Buffer.from("123456789");

test("crc32 matches the standard check value", () => {
  assert.equal(crc32(CHECK), 0xcbf43926);
});

test("crc32c matches the standard check value", () => {
  assert.equal(crc32c(CHECK), 0xe3069283);
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
