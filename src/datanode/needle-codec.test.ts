// Proves the volume byte formats: needles, superblocks and seal footers round-trip; sizes follow
// the layout table (28-byte header, 4-byte CRC, padding to 8); encoding never mutates its input;
// and a change to any byte of a needle (header, data, CRC or padding) is caught on decode.
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { crc32, newNeedleId, NEEDLE_DATA_SIZE_BYTES_MAX, type VolumeId } from "../base/index.js";
import {
  decodeNeedle,
  decodeNeedleHeader,
  decodeSealFooter,
  decodeSuperblock,
  encodeNeedle,
  encodeSealFooter,
  encodeSuperblock,
  frameNeedle,
  NEEDLE_FLAG_TOMBSTONE,
  NEEDLE_HEADER_SIZE_BYTES,
  needleEncodedSizeBytes,
  SEAL_FOOTER_SIZE_BYTES,
  SUPERBLOCK_SIZE_BYTES,
  VOLUME_FORMAT_VERSION,
  type Needle,
} from "./needle-codec.js";

function encode(needle: Needle): Buffer {
  const target = Buffer.alloc(needleEncodedSizeBytes(needle.header));
  encodeNeedle(needle, target);
  return target;
}

test("layout sizes match the table", () => {
  assert.equal(NEEDLE_HEADER_SIZE_BYTES, 28);
  assert.equal(SUPERBLOCK_SIZE_BYTES, 32);
  assert.equal(SEAL_FOOTER_SIZE_BYTES, 32);
  assert.equal(needleEncodedSizeBytes({ dataSizeBytes: 0 }), 32);
  assert.equal(needleEncodedSizeBytes({ dataSizeBytes: 1 }), 40);
  assert.equal(needleEncodedSizeBytes({ dataSizeBytes: 4 }), 40);
  assert.equal(needleEncodedSizeBytes({ dataSizeBytes: 5 }), 40);
  assert.equal(needleEncodedSizeBytes({ dataSizeBytes: 100 }), 136);
  assert.equal(needleEncodedSizeBytes({ dataSizeBytes: NEEDLE_DATA_SIZE_BYTES_MAX }), NEEDLE_DATA_SIZE_BYTES_MAX + 32);
});

test("every encoded size is 8-aligned and the smallest that holds header, data and CRC", () => {
  for (let dataSizeBytes = 0; dataSizeBytes <= 80; dataSizeBytes++) {
    const size = needleEncodedSizeBytes({ dataSizeBytes });
    assert.equal(size % 8, 0, `size ${size} for ${dataSizeBytes} is aligned`);
    assert.ok(size >= 28 + dataSizeBytes + 4);
    assert.ok(size - 8 < 28 + dataSizeBytes + 4, "no more than 7 padding bytes");
  }
});

test("needles round-trip, including empty and tombstone needles, and padding is zero", () => {
  for (const dataSizeBytes of [0, 1, 3, 4, 7, 8, 9, 100, 4096, 65_537]) {
    const data = randomBytes(dataSizeBytes);
    const needle: Needle = { header: { needleId: newNeedleId(), flags: 0, dataSizeBytes }, data };
    const encoded = encode(needle);
    const decoded = decodeNeedle(encoded);
    assert.equal(decoded.kind, "needle");
    assert.ok(decoded.kind === "needle");
    assert.deepEqual(decoded.header, needle.header);
    assert.ok(decoded.data.equals(data));
    const header = decodeNeedleHeader(encoded.subarray(0, NEEDLE_HEADER_SIZE_BYTES));
    assert.ok(header.kind === "header");
    assert.equal(header.encodedSizeBytes, encoded.length);
    for (let index = 28 + dataSizeBytes + 4; index < encoded.length; index++) assert.equal(encoded[index], 0);
  }
  const tombstone: Needle = { header: { needleId: newNeedleId(), flags: NEEDLE_FLAG_TOMBSTONE, dataSizeBytes: 0 }, data: Buffer.alloc(0) };
  const decoded = decodeNeedle(encode(tombstone));
  assert.ok(decoded.kind === "needle");
  assert.equal(decoded.header.flags, NEEDLE_FLAG_TOMBSTONE);
});

test("encoding does not mutate its input", () => {
  const data = randomBytes(77);
  const dataCopy = Buffer.from(data);
  const header = { needleId: newNeedleId(), flags: 0, dataSizeBytes: 77 };
  const headerCopy = { ...header };
  encode({ header, data });
  assert.deepEqual(header, headerCopy);
  assert.ok(data.equals(dataCopy));
});

test("a changed byte anywhere in a needle is caught, in header, data, CRC or padding", () => {
  const needle: Needle = { header: { needleId: newNeedleId(), flags: 0, dataSizeBytes: 21 }, data: randomBytes(21) };
  const encoded = encode(needle);
  assert.equal(encoded.length, 56);
  for (let index = 0; index < encoded.length; index++) {
    const damaged = Buffer.from(encoded);
    damaged[index] = damaged[index]! ^ 0x01;
    assert.equal(decodeNeedle(damaged).kind, "invalid", `flip at byte ${index} detected`);
  }
  assert.deepEqual(decodeNeedle(encoded.subarray(0, 40)), { kind: "invalid", reason: "short" });
  assert.deepEqual(decodeNeedleHeader(encoded.subarray(0, 27)), { kind: "invalid", reason: "short" });
});

test("a header with a size past the needle limit is rejected without reading further", () => {
  const encoded = encode({ header: { needleId: newNeedleId(), flags: 0, dataSizeBytes: 0 }, data: Buffer.alloc(0) });
  encoded.writeUInt32BE(NEEDLE_DATA_SIZE_BYTES_MAX + 1, 24);
  assert.deepEqual(decodeNeedleHeader(encoded), { kind: "invalid", reason: "size" });
});

test("superblock and seal footer round-trip and detect damage", () => {
  const volumeId = 4_000_000_123 as VolumeId;
  const superblock = encodeSuperblock(volumeId);
  assert.deepEqual(decodeSuperblock(superblock), { kind: "superblock", volumeId, formatVersion: VOLUME_FORMAT_VERSION });
  const damagedSuperblock = Buffer.from(superblock);
  damagedSuperblock[17] = damagedSuperblock[17]! ^ 0xff;
  assert.equal(decodeSuperblock(damagedSuperblock).kind, "invalid");

  const footer = { volumeId, dataEndOffsetBytes: 1_048_576, fileCrc32: 0xdeadbeef };
  const encoded = encodeSealFooter(footer);
  assert.equal(encoded.length, SEAL_FOOTER_SIZE_BYTES);
  assert.deepEqual(decodeSealFooter(encoded), { kind: "footer", footer });
  for (let index = 0; index < encoded.length; index++) {
    const damaged = Buffer.from(encoded);
    damaged[index] = damaged[index]! ^ 0x10;
    assert.equal(decodeSealFooter(damaged).kind, "invalid", `flip at footer byte ${index} detected`);
  }
});

test("a framed needle (head + data + tail, data not copied) has exactly encodeNeedle's bytes and CRC", () => {
  for (const dataSizeBytes of [0, 1, 5, 8, 65_536, 65_539, 4 * 1024 * 1024]) {
    const data = randomBytes(dataSizeBytes);
    const needle: Needle = { header: { needleId: newNeedleId(), flags: 0, dataSizeBytes }, data };
    const target = Buffer.alloc(needleEncodedSizeBytes(needle.header));
    const encodedCrc32 = encodeNeedle(needle, target);
    for (const frame of [frameNeedle(needle), frameNeedle(needle, crc32(data))]) {
      assert.ok(Buffer.concat([frame.head, data, frame.tail]).equals(target), `bytes for ${dataSizeBytes}`);
      assert.equal(frame.encodedCrc32, encodedCrc32, `crc for ${dataSizeBytes}`);
      assert.equal(frame.encodedCrc32, crc32(target));
    }
  }
});
