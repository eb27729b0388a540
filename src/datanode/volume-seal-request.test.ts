// Proves sealVolume (repair and drain seal a volume on its data nodes): with writes queued in the
// volume's group-commit writer, the seal goes in after them; every write queued before the
// request is acknowledged and durable, every later one gets VolumeFull; the file ends with a
// footer whose whole-file CRC verifies (verifySealedVolume); a second request changes nothing;
// the sealed state and the needles survive a restart; the scrubber and the compactor see the
// volume as sealed; a volume that is already full-sealed answers at once.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFile, stat } from "node:fs/promises";
import type { VolumeId } from "../base/index.js";
import { VolumeFull, VolumeNotFound } from "../cluster/index.js";
import { DataNode } from "./index.js";
import { makeNeedle, makeTemporaryDisks, TEST_NODE_ID, volumePath } from "./fixtures.js";
import { decodeSealFooter, needleEncodedSizeBytes, SEAL_FOOTER_SIZE_BYTES, SUPERBLOCK_SIZE_BYTES } from "./needle-codec.js";

const VOLUME = 1 as VolumeId;
const VOLUME_SIZE_BYTES = 1024 * 1024;
const DATA_SIZE_BYTES = 4000;
const QUEUED_WRITES_COUNT = 40;
const LATER_WRITES_COUNT = 10;

function openNode(disks: string[], volumeSizeBytes = VOLUME_SIZE_BYTES): Promise<DataNode> {
  return DataNode.open({ nodeId: TEST_NODE_ID, diskDirectories: disks, volumeSizeBytes, allowVolumeSizeBelowMinimumForTests: true });
}

test("sealVolume seals after the queued writes: they are durable, later ones get VolumeFull, the file verifies, a restart keeps it", async () => {
  const disks = await makeTemporaryDisks(1);
  let node = await openNode(disks.disks);
  try {
    await node.createVolume(VOLUME);
    const first = makeNeedle(VOLUME, DATA_SIZE_BYTES);
    await node.writeNeedle(first);
    // All started in one tick: each write is queued before the seal request, which is queued
    // before the later writes.
    const queued = Array.from({ length: QUEUED_WRITES_COUNT }, () => makeNeedle(VOLUME, DATA_SIZE_BYTES));
    const queuedWrites = queued.map((needle) => node.writeNeedle(needle));
    const sealing = node.sealVolume({ volumeId: VOLUME });
    const later = Array.from({ length: LATER_WRITES_COUNT }, () => makeNeedle(VOLUME, DATA_SIZE_BYTES));
    const laterWrites = later.map((needle) => node.writeNeedle(needle));

    const queuedResults = await Promise.allSettled(queuedWrites);
    for (const result of queuedResults) assert.equal(result.status, "fulfilled", result.status === "rejected" ? String(result.reason) : "");
    const laterResults = await Promise.allSettled(laterWrites);
    for (const result of laterResults) {
      assert.equal(result.status, "rejected");
      assert.ok(result.status === "rejected" && result.reason instanceof VolumeFull, "a write after the seal request is refused as by a full volume");
    }
    const status = await sealing;
    const expectedSizeBytes = SUPERBLOCK_SIZE_BYTES + (1 + QUEUED_WRITES_COUNT) * needleEncodedSizeBytes({ dataSizeBytes: DATA_SIZE_BYTES }) + SEAL_FOOTER_SIZE_BYTES;
    assert.deepEqual(status, { volumeId: VOLUME, state: "sealed", sizeBytes: expectedSizeBytes, needleCount: 1 + QUEUED_WRITES_COUNT, deletedNeedleCount: 0 });
    assert.ok(expectedSizeBytes < VOLUME_SIZE_BYTES / 2, "sealed well before full: the unused tail is not held");

    const path = volumePath(disks.disks[0]!, VOLUME);
    const file = await readFile(path);
    assert.equal(file.length, expectedSizeBytes);
    const footer = decodeSealFooter(file.subarray(file.length - SEAL_FOOTER_SIZE_BYTES));
    assert.ok(footer.kind === "footer");
    assert.equal(footer.footer.dataEndOffsetBytes, file.length - SEAL_FOOTER_SIZE_BYTES);
    assert.equal((await node.verifySealedVolume(VOLUME)).ok, true);
    assert.deepEqual(node.scrubbableVolumeIds(), [VOLUME]);
    assert.deepEqual(
      node.sealedVolumeGarbage().map((garbage) => garbage.volumeId),
      [VOLUME],
      "the compactor sees it",
    );

    assert.deepEqual(await node.sealVolume({ volumeId: VOLUME }), status, "a second seal is a no-op");
    assert.equal((await stat(path)).size, expectedSizeBytes, "and writes nothing");
    await assert.rejects(node.writeNeedle(makeNeedle(VOLUME, 8)), VolumeFull);
    await assert.rejects(node.sealVolume({ volumeId: 7 as VolumeId }), VolumeNotFound);

    await node.close();
    node = await openNode(disks.disks);
    const [reopened] = await node.volumeStatuses();
    assert.deepEqual(reopened, status, "sealed state survives a restart");
    for (const needle of [first, ...queued]) assert.ok((await node.readNeedle(needle)).equals(needle.data));
    await assert.rejects(node.writeNeedle(makeNeedle(VOLUME, 8)), VolumeFull);
    assert.equal((await node.verifySealedVolume(VOLUME)).ok, true);
    assert.equal((await stat(path)).size, expectedSizeBytes, "reopening changes nothing");
    assert.deepEqual(await node.sealVolume({ volumeId: VOLUME }), status);
  } finally {
    await node.close();
    await disks.cleanup();
  }
});

test("sealVolume on an empty writable volume seals it; deletes still work after", async () => {
  const disks = await makeTemporaryDisks(1);
  const node = await openNode(disks.disks);
  try {
    await node.createVolume(VOLUME);
    const status = await node.sealVolume({ volumeId: VOLUME });
    assert.equal(status.state, "sealed");
    assert.equal(status.sizeBytes, SUPERBLOCK_SIZE_BYTES + SEAL_FOOTER_SIZE_BYTES);
    assert.equal((await node.verifySealedVolume(VOLUME)).ok, true);
    await assert.rejects(node.writeNeedle(makeNeedle(VOLUME, 8)), VolumeFull);
    await node.deleteNeedle(makeNeedle(VOLUME, 8)); // a sealed volume's tombstones go to the mapping
  } finally {
    await node.close();
    await disks.cleanup();
  }
});

test("sealVolume with a seal request and a full volume racing: the volume seals once and verifies", async () => {
  const disks = await makeTemporaryDisks(1);
  const smallVolumeSizeBytes = 64 * 1024;
  const node = await openNode(disks.disks, smallVolumeSizeBytes);
  try {
    await node.createVolume(VOLUME);
    // More queued writes than fit: the size limit seals the volume before the request's turn.
    const needles = Array.from({ length: 30 }, () => makeNeedle(VOLUME, DATA_SIZE_BYTES));
    const writes = Promise.allSettled(needles.map((needle) => node.writeNeedle(needle)));
    const [first, second] = await Promise.all([node.sealVolume({ volumeId: VOLUME }), node.sealVolume({ volumeId: VOLUME })]);
    const results = await writes;
    const written = results.filter((result) => result.status === "fulfilled").length;
    for (const result of results) if (result.status === "rejected") assert.ok(result.reason instanceof VolumeFull, String(result.reason));
    assert.ok(written > 0 && written < needles.length);
    assert.deepEqual(first, second);
    assert.equal(first.state, "sealed");
    assert.equal(first.needleCount, written);
    assert.equal((await node.verifySealedVolume(VOLUME)).ok, true);
  } finally {
    await node.close();
    await disks.cleanup();
  }
});
