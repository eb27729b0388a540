// Proves sealing: with tiny volumes (the test-only allowVolumeSizeBelowMinimumForTests option),
// the append that would pass the size limit is rejected with VolumeFull and seals the volume;
// the file then ends with a footer whose whole-file CRC verifies; old needles read after
// reopen; sealed volumes reject appends; tombstones on sealed volumes (also ones queued behind
// the seal) hide needles durably without touching the file; and verifySealedVolume notices rot.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFile, stat } from "node:fs/promises";
import type { VolumeId } from "../base/index.js";
import { ChecksumMismatch, NeedleNotFound, VolumeFull } from "../cluster/index.js";
import { DataNode } from "./index.js";
import { flipByte, makeNeedle, makeTemporaryDisks, TEST_NODE_ID, volumePath, type TemporaryDisks } from "./fixtures.js";
import { decodeSealFooter, needleEncodedSizeBytes, SEAL_FOOTER_SIZE_BYTES, SUPERBLOCK_SIZE_BYTES } from "./needle-codec.js";

const VOLUME = 1 as VolumeId;
const VOLUME_SIZE_BYTES = 64 * 1024;
const DATA_SIZE_BYTES = 4000;
const ENCODED_SIZE_BYTES = needleEncodedSizeBytes({ dataSizeBytes: DATA_SIZE_BYTES });
const NEEDLES_PER_VOLUME = Math.floor((VOLUME_SIZE_BYTES - SUPERBLOCK_SIZE_BYTES - SEAL_FOOTER_SIZE_BYTES) / ENCODED_SIZE_BYTES);

function openNode(disks: TemporaryDisks): Promise<DataNode> {
  return DataNode.open({
    nodeId: TEST_NODE_ID,
    diskDirectories: disks.disks,
    volumeSizeBytes: VOLUME_SIZE_BYTES,
    allowVolumeSizeBelowMinimumForTests: true,
  });
}

async function withTinyVolumes(body: (context: { disks: TemporaryDisks; node: () => DataNode; reopen: () => Promise<DataNode> }) => Promise<void>): Promise<void> {
  const disks = await makeTemporaryDisks(1);
  let node = await openNode(disks);
  try {
    await node.createVolume(VOLUME);
    await body({
      disks,
      node: () => node,
      reopen: async () => {
        await node.close();
        node = await openNode(disks);
        return node;
      },
    });
  } finally {
    await node.close();
    await disks.cleanup();
  }
}

test("volume sizes below the minimum need the explicit test-only option", async () => {
  const disks = await makeTemporaryDisks(1);
  try {
    await assert.rejects(DataNode.open({ nodeId: TEST_NODE_ID, diskDirectories: disks.disks, volumeSizeBytes: VOLUME_SIZE_BYTES }), RangeError);
  } finally {
    await disks.cleanup();
  }
});

test("the append past the size limit is rejected with VolumeFull and seals the volume with a verifiable footer", async () => {
  await withTinyVolumes(async ({ disks, node, reopen }) => {
    assert.equal(NEEDLES_PER_VOLUME, 16);
    const needles = [];
    for (let index = 0; index < NEEDLES_PER_VOLUME; index++) {
      const needle = makeNeedle(VOLUME, DATA_SIZE_BYTES);
      await node().writeNeedle(needle);
      needles.push(needle);
    }
    await assert.rejects(node().writeNeedle(makeNeedle(VOLUME, DATA_SIZE_BYTES)), VolumeFull);
    await assert.rejects(node().writeNeedle(makeNeedle(VOLUME, 1)), VolumeFull, "sealed volumes take no appends at all");

    const path = volumePath(disks.disks[0]!, VOLUME);
    const expectedSizeBytes = SUPERBLOCK_SIZE_BYTES + NEEDLES_PER_VOLUME * ENCODED_SIZE_BYTES + SEAL_FOOTER_SIZE_BYTES;
    assert.ok(expectedSizeBytes <= VOLUME_SIZE_BYTES);
    const file = await readFile(path);
    assert.equal(file.length, expectedSizeBytes);
    const footer = decodeSealFooter(file.subarray(file.length - SEAL_FOOTER_SIZE_BYTES));
    assert.ok(footer.kind === "footer");
    assert.equal(footer.footer.dataEndOffsetBytes, file.length - SEAL_FOOTER_SIZE_BYTES);
    assert.deepEqual((await node().verifySealedVolume(VOLUME)).ok, true);
    const [status] = await node().volumeStatuses();
    assert.deepEqual(status, { volumeId: VOLUME, state: "sealed", sizeBytes: expectedSizeBytes, needleCount: 16, deletedNeedleCount: 0 });

    const reopened = await reopen();
    for (const needle of needles) assert.ok((await reopened.readNeedle(needle)).equals(needle.data));
    await assert.rejects(reopened.writeNeedle(makeNeedle(VOLUME, 8)), VolumeFull);
    const verification = await reopened.verifySealedVolume(VOLUME);
    assert.equal(verification.ok, true);
    assert.equal(verification.actualCrc32, footer.footer.fileCrc32);
    assert.equal((await stat(path)).size, expectedSizeBytes, "reopening a sealed volume changes nothing");
  });
});

test("concurrent writes crossing the limit: those that fit succeed, the rest get VolumeFull", async () => {
  await withTinyVolumes(async ({ node, reopen }) => {
    const needles = Array.from({ length: 40 }, () => makeNeedle(VOLUME, DATA_SIZE_BYTES));
    const results = await Promise.allSettled(needles.map((needle) => node().writeNeedle(needle)));
    const written = needles.filter((_, index) => results[index]?.status === "fulfilled");
    assert.equal(written.length, NEEDLES_PER_VOLUME);
    for (const result of results) {
      if (result.status === "rejected") assert.ok(result.reason instanceof VolumeFull, String(result.reason));
    }
    const reopened = await reopen();
    for (const needle of written) assert.ok((await reopened.readNeedle(needle)).equals(needle.data));
    assert.equal((await reopened.verifySealedVolume(VOLUME)).ok, true);
  });
});

test("tombstones on a sealed volume hide needles durably without touching the file", async () => {
  await withTinyVolumes(async ({ disks, node, reopen }) => {
    const needles = [];
    for (let index = 0; index < 10; index++) {
      const needle = makeNeedle(VOLUME, DATA_SIZE_BYTES);
      await node().writeNeedle(needle);
      needles.push(needle);
    }
    // Ten more writes plus a delete queued behind them: the seal happens while the tombstone
    // waits, so it must be routed to the mapping instead of the now-sealed file.
    const more = Array.from({ length: 10 }, () => makeNeedle(VOLUME, DATA_SIZE_BYTES));
    const results = await Promise.allSettled([...more.map((needle) => node().writeNeedle(needle)), node().deleteNeedle(needles[0]!)]);
    assert.equal(results.at(-1)?.status, "fulfilled");
    await assert.rejects(node().readNeedle(needles[0]!), NeedleNotFound);

    const path = volumePath(disks.disks[0]!, VOLUME);
    const sizeBytes = (await stat(path)).size;
    await node().deleteNeedle(needles[1]!);
    await Promise.all([node().deleteNeedle(needles[2]!), node().deleteNeedle(needles[3]!), node().deleteNeedle(needles[3]!)]);
    const unknown = makeNeedle(VOLUME, 10);
    await node().deleteNeedle(unknown);
    await assert.rejects(node().readNeedle(needles[1]!), NeedleNotFound);
    assert.equal((await stat(path)).size, sizeBytes, "a sealed file is never appended to");
    assert.equal((await node().verifySealedVolume(VOLUME)).ok, true);

    const reopened = await reopen();
    for (const needle of needles.slice(0, 4)) await assert.rejects(reopened.readNeedle(needle), NeedleNotFound);
    for (const needle of needles.slice(4)) assert.ok((await reopened.readNeedle(needle)).equals(needle.data));
    const [status] = await reopened.volumeStatuses();
    assert.equal(status?.state, "sealed");
    assert.equal(status?.needleCount, NEEDLES_PER_VOLUME + 1);
    assert.equal(status?.deletedNeedleCount, 5);
  });
});

test("verifySealedVolume and reads notice a flipped byte in a sealed volume", async () => {
  await withTinyVolumes(async ({ disks, node, reopen }) => {
    const needles = Array.from({ length: 17 }, () => makeNeedle(VOLUME, DATA_SIZE_BYTES));
    await Promise.allSettled(needles.map((needle) => node().writeNeedle(needle)));
    await node().close();
    const victim = needles[0]!;
    // The first needle's data starts right after the superblock and its 28-byte header.
    await flipByte(volumePath(disks.disks[0]!, VOLUME), SUPERBLOCK_SIZE_BYTES + 28 + 100, 0x40);
    const reopened = await reopen();
    const verification = await reopened.verifySealedVolume(VOLUME);
    assert.equal(verification.ok, false);
    assert.notEqual(verification.actualCrc32, verification.expectedCrc32);
    await assert.rejects(reopened.readNeedle(victim), ChecksumMismatch);
    assert.ok((await reopened.readNeedle(needles[1]!)).equals(needles[1]!.data), "other needles still read");
  });
});
