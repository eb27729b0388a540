// Proves each checksum against the standard check value of "123456789" and that feeding a
// body in pieces gives the same digest as feeding it whole.
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { crc32, crc32c, crc64nvme, newChecksummer, CHECKSUM_ALGORITHMS } from "./checksum.js";

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
