// Proves the data node's read/write surface on healthy disks: needles round-trip whole and by
// range; bad input is refused (wrong CRC, oversize, unknown volume, bad range); 200 concurrent
// writes share a handful of fsyncs (group commit) and all read back after close and reopen;
// tombstones hide needles on writable volumes, persist across reopen, and keep late copies dead;
// createVolume is idempotent; new volumes spread over disks; volumeStatuses counts needles.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { chunkBufferPoolStats, isChunkBufferView, NEEDLE_DATA_SIZE_BYTES_MAX, releaseChunkBufferOf, type VolumeId } from "../base/index.js";
import { ChecksumMismatch, NeedleNotFound, VolumeNotFound } from "../cluster/index.js";
import { DataNode, NeedleRangeInvalid, NeedleTooLarge } from "./index.js";
import { flipByte, makeNeedle, makeTemporaryDisks, TEST_NODE_ID, volumePath, type TemporaryDisks } from "./fixtures.js";

const VOLUME = 1 as VolumeId;

async function withNode(
  body: (context: { node: DataNode; disks: TemporaryDisks; reopen: () => Promise<DataNode> }) => Promise<void>,
  diskCount = 1,
): Promise<void> {
  const disks = await makeTemporaryDisks(diskCount);
  let node = await DataNode.open({ nodeId: TEST_NODE_ID, diskDirectories: disks.disks });
  const reopen = async (): Promise<DataNode> => {
    await node.close();
    node = await DataNode.open({ nodeId: TEST_NODE_ID, diskDirectories: disks.disks });
    return node;
  };
  try {
    await node.createVolume(VOLUME);
    await body({ node, disks, reopen });
  } finally {
    await node.close();
    await disks.cleanup();
  }
}

test("a written needle reads back whole and by range", async () => {
  await withNode(async ({ node }) => {
    const needle = makeNeedle(VOLUME, 10_000);
    await node.writeNeedle(needle);
    assert.ok((await node.readNeedle(needle)).equals(needle.data));
    const range = await node.readNeedle({ ...needle, offsetBytes: 1234, lengthBytes: 567 });
    assert.ok(range.equals(needle.data.subarray(1234, 1234 + 567)));
    const tail = await node.readNeedle({ volumeId: VOLUME, needleId: needle.needleId, offsetBytes: 9_990 });
    assert.ok(tail.equals(needle.data.subarray(9_990)));
    const empty = makeNeedle(VOLUME, 0);
    await node.writeNeedle(empty);
    assert.equal((await node.readNeedle(empty)).length, 0);
    const largest = makeNeedle(VOLUME, NEEDLE_DATA_SIZE_BYTES_MAX);
    await node.writeNeedle(largest);
    assert.ok((await node.readNeedle(largest)).equals(largest.data));
  });
});

test("bad writes and reads are refused with typed errors", async () => {
  await withNode(async ({ node }) => {
    const needle = makeNeedle(VOLUME, 100);
    await assert.rejects(node.writeNeedle({ ...needle, crc32: (needle.crc32 + 1) >>> 0 }), ChecksumMismatch);
    await assert.rejects(node.readNeedle(needle), NeedleNotFound, "a refused write leaves nothing behind");
    await assert.rejects(node.writeNeedle({ ...needle, volumeId: 99 as VolumeId }), VolumeNotFound);
    const tooLarge = makeNeedle(VOLUME, NEEDLE_DATA_SIZE_BYTES_MAX + 1);
    await assert.rejects(node.writeNeedle(tooLarge), NeedleTooLarge);
    await node.writeNeedle(needle);
    await assert.rejects(node.readNeedle({ ...needle, offsetBytes: 50, lengthBytes: 51 }), NeedleRangeInvalid);
    await assert.rejects(node.readNeedle({ ...needle, offsetBytes: -1 }), NeedleRangeInvalid);
    await assert.rejects(node.readNeedle({ ...needle, volumeId: 99 as VolumeId }), VolumeNotFound);
  });
});

test("200 concurrent writes share far fewer fsyncs and all read back after reopen", async () => {
  await withNode(async ({ node, reopen }) => {
    const needles = Array.from({ length: 200 }, (_, index) => makeNeedle(VOLUME, 1000 + index * 37));
    const before = node.stats();
    await Promise.all(needles.map((needle) => node.writeNeedle(needle)));
    const after = node.stats();
    const fsyncs = after.fsyncCount - before.fsyncCount;
    assert.ok(fsyncs >= 1);
    assert.ok(fsyncs <= 10, `200 writes took ${fsyncs} fsyncs; group commit should need a few`);
    assert.equal(after.needleAppendCount - before.needleAppendCount, 200);
    const reopened = await reopen();
    for (const needle of needles) assert.ok((await reopened.readNeedle(needle)).equals(needle.data));
    const [status] = await reopened.volumeStatuses();
    assert.equal(status?.needleCount, 200);
    assert.equal(status?.deletedNeedleCount, 0);
    assert.equal(status?.state, "writable");
    assert.equal(reopened.stats().fsyncCount, 0, "a clean reopen writes nothing");
  });
});

test("a deleted needle is not found, stays deleted after reopen, and a late copy stays dead", async () => {
  await withNode(async ({ node, reopen }) => {
    const kept = makeNeedle(VOLUME, 500);
    const deleted = makeNeedle(VOLUME, 600);
    await node.writeNeedle(kept);
    await node.writeNeedle(deleted);
    await node.deleteNeedle(deleted);
    await node.deleteNeedle(deleted); // idempotent
    await assert.rejects(node.readNeedle(deleted), NeedleNotFound);
    await node.writeNeedle(deleted); // a late copy (repair, retry)
    await assert.rejects(node.readNeedle(deleted), NeedleNotFound, "a late copy does not resurrect");

    const neverWritten = makeNeedle(VOLUME, 700);
    await node.deleteNeedle(neverWritten); // unknown needle: tombstone recorded anyway
    await node.writeNeedle(neverWritten);
    await assert.rejects(node.readNeedle(neverWritten), NeedleNotFound);

    const reopened = await reopen();
    assert.ok((await reopened.readNeedle(kept)).equals(kept.data));
    await assert.rejects(reopened.readNeedle(deleted), NeedleNotFound);
    await assert.rejects(reopened.readNeedle(neverWritten), NeedleNotFound);
    const [status] = await reopened.volumeStatuses();
    assert.equal(status?.needleCount, 3);
    assert.equal(status?.deletedNeedleCount, 2);
  });
});

test("a tombstone appended concurrently with the write of the same needle wins", async () => {
  await withNode(async ({ node, reopen }) => {
    const needle = makeNeedle(VOLUME, 300);
    await Promise.all([node.writeNeedle(needle), node.deleteNeedle(needle)]);
    await assert.rejects(node.readNeedle(needle), NeedleNotFound);
    const reopened = await reopen();
    await assert.rejects(reopened.readNeedle(needle), NeedleNotFound);
  });
});

test("createVolume is idempotent, also when called concurrently", async () => {
  await withNode(async ({ node, disks, reopen }) => {
    const needle = makeNeedle(VOLUME, 100);
    await node.writeNeedle(needle);
    await node.createVolume(VOLUME);
    await Promise.all([node.createVolume(2 as VolumeId), node.createVolume(2 as VolumeId)]);
    assert.ok((await node.readNeedle(needle)).equals(needle.data), "re-creating keeps the needles");
    assert.deepEqual((await readdir(join(disks.disks[0]!, "volumes"))).sort(), ["1.vol", "2.vol"]);
    const reopened = await reopen();
    await reopened.createVolume(VOLUME);
    assert.ok((await reopened.readNeedle(needle)).equals(needle.data));
    assert.deepEqual(
      (await reopened.volumeStatuses()).map((status) => status.volumeId),
      [1, 2],
    );
  });
});

test("new volumes spread over the disks", async () => {
  await withNode(async ({ node, disks, reopen }) => {
    for (let volumeId = 2; volumeId <= 6; volumeId++) await node.createVolume(volumeId as VolumeId);
    const perDisk = await Promise.all(disks.disks.map((disk) => readdir(join(disk, "volumes"))));
    assert.equal(perDisk.flat().length, 6);
    for (const files of perDisk) assert.ok(files.length >= 2, `each disk holds volumes: ${JSON.stringify(perDisk)}`);
    const needles = [];
    for (let volumeId = 1; volumeId <= 6; volumeId++) {
      const needle = makeNeedle(volumeId as VolumeId, 64);
      await node.writeNeedle(needle);
      needles.push(needle);
    }
    const reopened = await reopen();
    for (const needle of needles) assert.ok((await reopened.readNeedle(needle)).equals(needle.data));
  }, 3);
});

test("a second data node on the same disks is refused while the first runs, and opens after it closed", async () => {
  await withNode(async ({ node, disks, reopen }) => {
    const needle = makeNeedle(VOLUME, 1000);
    await node.writeNeedle(needle);
    // The mapping's guard file is held exclusively: a second node cannot open the mapping (nor
    // write one beside the first one's), whatever it would do next; it is told so at once.
    const startedMs = Date.now();
    await assert.rejects(DataNode.open({ nodeId: TEST_NODE_ID, diskDirectories: disks.disks }), { name: "MappingInUse", message: /is locked by another data node/ });
    assert.ok(Date.now() - startedMs < 2_000, "refused without waiting out a busy timeout");
    const reopened = await reopen();
    assert.deepEqual(await reopened.readNeedle({ volumeId: VOLUME, needleId: needle.needleId }), needle.data);
  });
});

test("a whole large needle read into a chunk buffer verifies like any read; a corrupt one fails and its buffer goes back to the pool", async () => {
  await withNode(async ({ node, disks }) => {
    const needle = makeNeedle(VOLUME, NEEDLE_DATA_SIZE_BYTES_MAX);
    await node.writeNeedle(needle);
    const read = await node.readNeedle({ volumeId: VOLUME, needleId: needle.needleId, intoChunkBuffer: true });
    assert.ok(read.equals(needle.data), "the needle reads back whole");
    assert.ok(isChunkBufferView(read), "a whole large needle lands in a chunk buffer");
    assert.equal(releaseChunkBufferOf(read), true);
    const ranged = await node.readNeedle({ volumeId: VOLUME, needleId: needle.needleId, offsetBytes: 10, lengthBytes: 1000, intoChunkBuffer: true });
    assert.ok(ranged.equals(needle.data.subarray(10, 1010)));
    assert.equal(isChunkBufferView(ranged), false, "a range is a copy in plain memory");
    // Flip one payload byte on disk, in the middle of the needle.
    const file = volumePath(disks.disks[0]!, VOLUME);
    await flipByte(file, (await stat(file)).size - NEEDLE_DATA_SIZE_BYTES_MAX / 2, 0x40);
    const freeBefore = chunkBufferPoolStats().freeCount;
    for (let attempt = 0; attempt < 3; attempt++) {
      await assert.rejects(node.readNeedle({ volumeId: VOLUME, needleId: needle.needleId, intoChunkBuffer: true }), ChecksumMismatch, "rot is caught before any byte is returned");
    }
    assert.equal(chunkBufferPoolStats().freeCount, freeBefore, "the buffers of failed reads went back to the pool");
  });
});
