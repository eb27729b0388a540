// Proves compaction on a real DataNode over temporary disks with 64 KiB volumes: a sealed volume
// past the garbage threshold is rewritten smaller with a verifying footer, survivors read back
// byte for byte (also after reopen), deleted needles stay deleted (also when the mapping database
// is lost, because the tombstones were written into the new file), a volume under the threshold
// is left alone, and reads running while compaction swaps the file never fail or return wrong
// bytes, nor does a delete that lands mid-compaction get lost.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdir, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import type { VolumeId } from "../base/index.js";
import { NeedleNotFound, VolumeFull } from "../cluster/index.js";
import { Compactor, DataNode } from "./index.js";
import {
  fillSealAndDelete,
  makeNeedle,
  makeTemporaryDisks,
  SMALL_VOLUME_SIZE_BYTES,
  TEST_NODE_ID,
  volumePath,
  type FilledVolume,
  type TemporaryDisks,
} from "./fixtures.js";

const VOLUME = 1 as VolumeId;

function openNode(disks: TemporaryDisks): Promise<DataNode> {
  return DataNode.open({ nodeId: TEST_NODE_ID, diskDirectories: disks.disks, volumeSizeBytes: SMALL_VOLUME_SIZE_BYTES, allowVolumeSizeBelowMinimumForTests: true });
}

async function checkVolume(node: DataNode, filled: FilledVolume): Promise<void> {
  for (const needle of filled.live) assert.ok((await node.readNeedle(needle)).equals(needle.data), `survivor ${needle.needleId} reads back exactly`);
  for (const needle of filled.deleted) await assert.rejects(node.readNeedle(needle), NeedleNotFound, `deleted ${needle.needleId} stays deleted`);
}

test("a sealed volume past the threshold shrinks on disk; survivors read back; deletes stay deleted, even without the mapping", async () => {
  const disks = await makeTemporaryDisks(1);
  let node = await openNode(disks);
  try {
    const filled = await fillSealAndDelete(node, VOLUME, 0.75);
    assert.ok(filled.live.length >= 3, "some needles survive");
    const path = volumePath(disks.disks[0]!, VOLUME);
    const sizeBytesBefore = (await stat(path)).size;
    const [garbage] = node.sealedVolumeGarbage();
    assert.ok(garbage !== undefined && garbage.garbageRatio > 0.6, `garbage ratio ${garbage?.garbageRatio}`);

    const result = await node.compactVolume(VOLUME, { garbageRatioMin: 0.5 });
    assert.equal(result.outcome, "compacted", JSON.stringify(result));
    const sizeBytesAfter = (await stat(path)).size;
    assert.ok(sizeBytesAfter < sizeBytesBefore / 2, `file shrank from ${sizeBytesBefore} to ${sizeBytesAfter}`);
    assert.equal(result.outcome === "compacted" && result.sizeBytesAfter, sizeBytesAfter);
    assert.equal(garbage.compactedSizeBytes, sizeBytesAfter, "the garbage estimate predicts the compacted size");
    assert.deepEqual(await readdir(join(disks.disks[0]!, "volumes")), ["1.vol"], "no leftover file");
    assert.equal((await node.verifySealedVolume(VOLUME)).ok, true, "the new footer's checksum verifies");
    const [status] = await node.volumeStatuses();
    assert.deepEqual(status, { volumeId: VOLUME, state: "sealed", sizeBytes: sizeBytesAfter, needleCount: filled.live.length + filled.deleted.length, deletedNeedleCount: filled.deleted.length });
    await checkVolume(node, filled);
    await assert.rejects(node.writeNeedle(makeNeedle(VOLUME, 10)), VolumeFull, "the compacted volume stays sealed");
    assert.equal(node.sealedVolumeGarbage()[0]?.reclaimableBytes, 0);
    assert.equal((await node.compactVolume(VOLUME, { garbageRatioMin: 0.01 })).outcome, "skipped", "nothing left to give back");

    await node.close();
    node = await openNode(disks);
    await checkVolume(node, filled);
    assert.equal((await node.verifySealedVolume(VOLUME)).ok, true);

    // Lose the mapping: the volume is rebuilt from its file, tombstones included.
    await node.close();
    for (const name of await readdir(disks.disks[0]!)) if (name.startsWith("mapping.sqlite")) await rm(join(disks.disks[0]!, name));
    node = await openNode(disks);
    await checkVolume(node, filled);
    assert.equal((await node.volumeStatuses())[0]?.state, "sealed");
  } finally {
    await node.close();
    await disks.cleanup();
  }
});

test("a volume under the garbage threshold is left alone", async () => {
  const disks = await makeTemporaryDisks(1);
  const node = await openNode(disks);
  try {
    const filled = await fillSealAndDelete(node, VOLUME, 0.1);
    const path = volumePath(disks.disks[0]!, VOLUME);
    const sizeBytesBefore = (await stat(path)).size;
    const compactor = new Compactor(node, { garbageRatioMin: 0.5 });
    assert.deepEqual(await compactor.runOnce(), [], "no volume passes the threshold");
    const result = await node.compactVolume(VOLUME, { garbageRatioMin: 0.5 });
    assert.equal(result.outcome, "skipped");
    assert.equal((await stat(path)).size, sizeBytesBefore);
    await checkVolume(node, filled);
    // The same volume with a low threshold is compacted by the compactor's pass.
    const results = await compactor.runOnce({ garbageRatioMin: 0.05 });
    assert.equal(results[0]?.outcome, "compacted");
    assert.ok((await stat(path)).size < sizeBytesBefore);
    assert.ok(compactor.reclaimedBytes > 0);
    await checkVolume(node, filled);
    await compactor.stop();
  } finally {
    await node.close();
    await disks.cleanup();
  }
});

test("reads and deletes while compaction runs and swaps the file never fail, return wrong bytes, or get lost", async () => {
  const disks = await makeTemporaryDisks(1);
  const node = await openNode(disks);
  try {
    const filled = await fillSealAndDelete(node, VOLUME, 0.6);
    const lateVictim = filled.live.pop()!;
    // Slow enough (about a second for a 64 KiB volume) that many reads overlap every step.
    const compaction = node.compactVolume(VOLUME, { garbageRatioMin: 0.3, rateBytesPerSecond: 48 * 1024 });
    let done = false;
    void compaction.finally(() => (done = true));
    let readCount = 0;
    const readers = Array.from({ length: 4 }, async () => {
      while (!done) {
        for (const needle of filled.live) {
          assert.ok((await node.readNeedle(needle)).equals(needle.data), `read of ${needle.needleId} during compaction`);
          readCount += 1;
        }
        await new Promise((resolve) => setImmediate(resolve));
      }
    });
    await new Promise((resolve) => setTimeout(resolve, 200));
    await node.deleteNeedle(lateVictim);
    filled.deleted.push(lateVictim);
    const [result] = await Promise.all([compaction, ...readers]);
    assert.equal(result.outcome, "compacted", JSON.stringify(result));
    assert.ok(readCount > filled.live.length * 4, `reads overlapped the compaction (${readCount})`);
    await checkVolume(node, filled);
    assert.equal((await node.verifySealedVolume(VOLUME)).ok, true);
  } finally {
    await node.close();
    await disks.cleanup();
  }
});

test("the background compactor finds and compacts a volume past the threshold on its own", async () => {
  const disks = await makeTemporaryDisks(1);
  const node = await openNode(disks);
  const compactor = new Compactor(node, { garbageRatioMin: 0.5, intervalMs: 50 });
  try {
    const filled = await fillSealAndDelete(node, VOLUME, 0.8);
    const path = volumePath(disks.disks[0]!, VOLUME);
    const sizeBytesBefore = (await stat(path)).size;
    compactor.start();
    const deadlineMs = Date.now() + 10_000;
    while ((await stat(path)).size === sizeBytesBefore && Date.now() < deadlineMs) await new Promise((resolve) => setTimeout(resolve, 20));
    assert.ok((await stat(path)).size < sizeBytesBefore / 2, "compacted without being asked");
    await checkVolume(node, filled);
  } finally {
    await compactor.stop();
    await node.close();
    await disks.cleanup();
  }
});
