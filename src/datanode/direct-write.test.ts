// Proves large appends around the page cache (direct-write.ts): with directIo, a chunk in a
// pooled buffer is written with O_DIRECT where the disk allows it, its needle lands at a page
// boundary behind a padding needle, the padding is checksummed but never mapped, and a recovery
// scan over the whole file (mapping lost) finds every needle again; without directIo (the
// default) or in a version 1 volume nothing goes around the cache and no padding is written; and
// the padding needle and superblock versions decode as the format table says; such a chunk is read
// back with O_DIRECT into a pooled buffer, and rot on the disk under it is still caught.
import { test } from "node:test";
import assert from "node:assert/strict";
import { open, rm } from "node:fs/promises";
import { join } from "node:path";
import {
  CHUNK_BUFFER_DATA_OFFSET_BYTES,
  crc32,
  MEBIBYTE,
  newNeedleId,
  pageOffsetOf,
  releaseChunkBuffer,
  releaseChunkBufferOf,
  tryTakeChunkBuffer,
  type NeedleId,
  type VolumeId,
} from "../base/index.js";
import { ChecksumMismatch } from "../cluster/index.js";
import { DIRECT_IO_ALIGNMENT_BYTES, DIRECT_WRITE_BYTES_MIN, directReadLengthBytes, directWritesAllowedIn, linesUpForDirectRead } from "./direct-write.js";
import { makeNeedle, makeTemporaryDisks, needleBytes, needlesInVolumeFile, TEST_NODE_ID, volumePath, type TemporaryDisks } from "./fixtures.js";
import { DataNode } from "./index.js";
import {
  decodeNeedle,
  decodeNeedleHeader,
  decodeSuperblock,
  encodeNeedle,
  encodePaddingNeedle,
  encodeSuperblock,
  NEEDLE_FLAG_PADDING,
  NEEDLE_FLAG_TOMBSTONE,
  needleEncodedSizeBytes,
  PADDING_NEEDLE_SIZE_BYTES_MIN,
  VOLUME_FORMAT_VERSION,
} from "./needle-codec.js";

const VOLUME = 1 as VolumeId;
const LARGE_SIZE_BYTES = 4 * MEBIBYTE;

/**
 * A small needle (so the volume's end is off a page boundary), then a 4 MiB one whose data sits in
 * a pooled chunk buffer where a PUT body's chunk does.
 */
async function writeSmallThenChunk(node: DataNode): Promise<{ small: ReturnType<typeof makeNeedle>; large: { needleId: NeedleId } }> {
  const small = makeNeedle(VOLUME, 4000);
  await node.writeNeedle(small);
  const buffer = tryTakeChunkBuffer();
  assert.ok(buffer !== undefined, "a chunk buffer is free");
  try {
    const needleId = newNeedleId();
    const data = buffer.bytes.subarray(CHUNK_BUFFER_DATA_OFFSET_BYTES, CHUNK_BUFFER_DATA_OFFSET_BYTES + LARGE_SIZE_BYTES);
    needleBytes(needleId, LARGE_SIZE_BYTES).copy(data);
    await node.writeNeedle({ volumeId: VOLUME, needleId, data, crc32: crc32(data) });
    return { small, large: { needleId } };
  } finally {
    releaseChunkBuffer(buffer);
  }
}

async function withNode(
  directIo: boolean,
  body: (context: { disks: TemporaryDisks; node: () => DataNode; reopen: () => Promise<DataNode> }) => Promise<void>,
): Promise<void> {
  const disks = await makeTemporaryDisks(1);
  let node = await DataNode.open({ nodeId: TEST_NODE_ID, diskDirectories: disks.disks, directIo });
  try {
    await body({
      disks,
      node: () => node,
      reopen: async () => {
        await node.close();
        node = await DataNode.open({ nodeId: TEST_NODE_ID, diskDirectories: disks.disks, directIo });
        return node;
      },
    });
  } finally {
    await node.close();
    await disks.cleanup();
  }
}

test("with directIo, a chunk in a pooled buffer goes around the page cache, page-aligned behind a padding needle, and a full recovery scan finds it", async () => {
  await withNode(true, async ({ disks, node, reopen }) => {
    await node().createVolume(VOLUME);
    const direct = await directWritesAllowedIn(disks.disks[0]!);
    const { small, large } = await writeSmallThenChunk(node());
    const rows = node().scrubAccess(VOLUME)!.needlesInFileOrder(-1, 10)!;
    assert.deepEqual(
      rows.map((row) => row.needleId),
      [small.needleId, large.needleId],
      "padding is never mapped",
    );
    const largeOffset = rows[1]!.offsetBytes;
    const inFile = await needlesInVolumeFile(volumePath(disks.disks[0]!, VOLUME));
    if (direct) {
      assert.ok(node().stats().directWriteBytes >= LARGE_SIZE_BYTES - DIRECT_IO_ALIGNMENT_BYTES, `most of the chunk went around the cache: ${node().stats().directWriteBytes}`);
      assert.equal(largeOffset % DIRECT_IO_ALIGNMENT_BYTES, 0, "the chunk's needle starts at a page boundary, as its data's memory does (28 bytes in)");
      assert.deepEqual(
        inFile.map((needle) => needle.flags),
        [0, NEEDLE_FLAG_PADDING, 0],
        "a padding needle fills the gap",
      );
    } else {
      // The disk refuses O_DIRECT (tmpfs): the same needles, written through the page cache.
      assert.equal(node().stats().directWriteBytes, 0);
      assert.deepEqual(
        inFile.map((needle) => needle.flags),
        [0, 0],
      );
    }

    // Lose the mapping: reopening scans the whole file, skipping the padding.
    await node().close();
    for (const suffix of ["", "-wal", "-shm"]) await rm(join(disks.disks[0]!, `mapping.sqlite${suffix}`), { force: true });
    const reopened = await reopen();
    assert.deepEqual(
      reopened.scrubAccess(VOLUME)!.needlesInFileOrder(-1, 10)!.map((row) => [row.needleId, row.offsetBytes]),
      [
        [small.needleId, rows[0]!.offsetBytes],
        [large.needleId, largeOffset],
      ],
    );
    assert.ok((await reopened.readNeedle({ volumeId: VOLUME, needleId: large.needleId })).equals(needleBytes(large.needleId, LARGE_SIZE_BYTES)));
    assert.ok((await reopened.readNeedle({ volumeId: VOLUME, needleId: small.needleId })).equals(small.data));
    // Appends go on behind it, and the volume still seals with a whole-file checksum that holds.
    const after = makeNeedle(VOLUME, 100);
    await reopened.writeNeedle(after);
    assert.ok((await reopened.readNeedle({ volumeId: VOLUME, needleId: after.needleId })).equals(after.data));
  });
});

test("by default, and in a version 1 volume, chunks go through the page cache and no padding needle is written", async () => {
  for (const [directIo, formatVersion] of [
    [false, 2],
    [true, 1],
  ] as const) {
    await withNode(directIo, async ({ disks, node, reopen }) => {
      await node().createVolume(VOLUME);
      const path = volumePath(disks.disks[0]!, VOLUME);
      if (formatVersion === 1) {
        // Rewrite the superblock as version 1 wrote it.
        await node().close();
        const superblock = encodeSuperblock(VOLUME);
        superblock.writeUInt32BE(1, 8);
        superblock.writeUInt32BE(crc32(superblock.subarray(0, 24)), 24);
        const file = await open(path, "r+");
        await file.write(superblock, 0, superblock.length, 0);
        await file.close();
        await reopen();
      }
      const { large } = await writeSmallThenChunk(node());
      assert.equal(node().stats().directWriteBytes, 0, `directIo ${directIo}, version ${formatVersion}`);
      assert.deepEqual(
        (await needlesInVolumeFile(path)).map((needle) => needle.flags),
        [0, 0],
      );
      assert.ok((await node().readNeedle({ volumeId: VOLUME, needleId: large.needleId })).equals(needleBytes(large.needleId, LARGE_SIZE_BYTES)));
    });
  }
});

test("padding needles decode as the format says; a needle cannot be tombstone and padding at once", () => {
  for (const sizeBytes of [PADDING_NEEDLE_SIZE_BYTES_MIN, 40, DIRECT_IO_ALIGNMENT_BYTES + 24]) {
    const padding = encodePaddingNeedle(sizeBytes);
    assert.equal(padding.bytes.length, sizeBytes);
    assert.equal(padding.crc32, crc32(padding.bytes));
    const decoded = decodeNeedle(padding.bytes);
    assert.equal(decoded.kind, "needle");
    if (decoded.kind !== "needle") continue;
    assert.equal(decoded.header.flags, NEEDLE_FLAG_PADDING);
    assert.equal(decoded.header.needleId, "0".repeat(32));
    assert.ok(decoded.data.every((byte) => byte === 0));
  }
  assert.throws(() => encodePaddingNeedle(24), "smaller than a needle");
  assert.throws(() => encodePaddingNeedle(36), "not a multiple of 8");
  const both = Buffer.alloc(32);
  assert.throws(() => encodeNeedle({ header: { needleId: newNeedleId(), flags: NEEDLE_FLAG_TOMBSTONE | NEEDLE_FLAG_PADDING, dataSizeBytes: 0 }, data: Buffer.alloc(0) }, both));
  const padding = encodePaddingNeedle(32).bytes;
  padding.writeUInt16BE(NEEDLE_FLAG_TOMBSTONE | NEEDLE_FLAG_PADDING, 4);
  assert.deepEqual(decodeNeedleHeader(padding), { kind: "invalid", reason: "flags" });
});

test("superblocks are written as version 2; versions 1 and 2 are read, others refused", () => {
  const superblock = encodeSuperblock(VOLUME);
  assert.equal(VOLUME_FORMAT_VERSION, 2);
  assert.deepEqual(decodeSuperblock(superblock), { kind: "superblock", volumeId: VOLUME, formatVersion: 2 });
  for (const [version, expected] of [
    [1, "superblock"],
    [3, "invalid"],
    [0, "invalid"],
  ] as const) {
    const other = Buffer.from(superblock);
    other.writeUInt32BE(version, 8);
    other.writeUInt32BE(crc32(other.subarray(0, 24)), 24);
    assert.equal(decodeSuperblock(other).kind, expected, `version ${version}`);
  }
});

test("with directIo, a chunk written around the page cache is read back through O_DIRECT into a pooled buffer, and rot on disk is still caught", async () => {
  await withNode(true, async ({ disks, node }) => {
    await node().createVolume(VOLUME);
    const { large } = await writeSmallThenChunk(node());
    const row = node().scrubAccess(VOLUME)!.needlesInFileOrder(-1, 10)!.find((candidate) => candidate.needleId === large.needleId)!;
    const buffer = tryTakeChunkBuffer();
    assert.ok(buffer !== undefined);
    try {
      // The rule the read path follows: page-aligned start and memory, whole pages that fit.
      const encodedSizeBytes = LARGE_SIZE_BYTES + 64;
      assert.equal(linesUpForDirectRead(buffer, row.offsetBytes, encodedSizeBytes), row.offsetBytes % DIRECT_IO_ALIGNMENT_BYTES === 0 && pageOffsetOf(buffer.bytes) === 0);
      assert.equal(linesUpForDirectRead(buffer, row.offsetBytes + 8, encodedSizeBytes), false, "a start off a page is read through the cache");
      assert.equal(linesUpForDirectRead(buffer, 0, buffer.bytes.length + 1), false, "more pages than the buffer holds");
      assert.equal(linesUpForDirectRead(buffer, 0, DIRECT_WRITE_BYTES_MIN - 1), false, "a needle too small to have been written around the cache");
      assert.equal(directReadLengthBytes(1), 4096);
      assert.equal(directReadLengthBytes(8192), 8192);
    } finally {
      releaseChunkBuffer(buffer);
    }
    const direct = await directWritesAllowedIn(disks.disks[0]!);
    const read = await node().readNeedle({ volumeId: VOLUME, needleId: large.needleId, intoChunkBuffer: true });
    assert.ok(read.equals(needleBytes(large.needleId, LARGE_SIZE_BYTES)), "the bytes read back are the bytes written");
    releaseChunkBufferOf(read);
    if (direct) {
      const needleSizeBytes = needleEncodedSizeBytes({ dataSizeBytes: LARGE_SIZE_BYTES });
      assert.equal(node().stats().directReadBytes, needleSizeBytes, "the whole needle came through the O_DIRECT descriptor");
    } else {
      assert.equal(node().stats().directReadBytes, 0, "the disk refuses O_DIRECT (tmpfs): read through the cache");
    }
    // A flipped byte in the middle of the data on disk is caught on the next read.
    const file = await open(volumePath(disks.disks[0]!, VOLUME), "r+");
    try {
      const at = row.offsetBytes + 1 + LARGE_SIZE_BYTES / 2;
      const byte = Buffer.alloc(1);
      await file.read(byte, 0, 1, at);
      await file.write(Buffer.from([byte[0]! ^ 0xff]), 0, 1, at);
      await file.datasync();
    } finally {
      await file.close();
    }
    await assert.rejects(node().readNeedle({ volumeId: VOLUME, needleId: large.needleId, intoChunkBuffer: true }), ChecksumMismatch);
  });
});
