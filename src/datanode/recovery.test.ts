// Proves recovery on open and verification on read, by damaging files between close and
// reopen: torn tails (garbage, half a needle, a needle with a bad CRC, a cut mid-needle) are cut
// back to the last good needle and writing resumes; needles whose mapping rows were lost (the
// whole mapping database deleted) are mapped again from the volume files, tombstones included;
// a flipped byte in a needle's data or header makes its read fail with ChecksumMismatch; a
// footer written before the seal was recorded seals the volume on open; a sealed volume that
// lost its footer is served read-only and fails verification.
import { test } from "node:test";
import assert from "node:assert/strict";
import { appendFile, open, rm, stat, truncate } from "node:fs/promises";
import { join } from "node:path";
import Database from "better-sqlite3";
import { randomBytes } from "node:crypto";
import { crc32, type VolumeId } from "../base/index.js";
import { ChecksumMismatch, NeedleNotFound, VolumeFull } from "../cluster/index.js";
import { DataNode } from "./index.js";
import { flipByte, makeNeedle, makeTemporaryDisks, TEST_NODE_ID, volumePath, type TemporaryDisks } from "./fixtures.js";
import { encodeNeedle, needleEncodedSizeBytes, SEAL_FOOTER_SIZE_BYTES, SUPERBLOCK_SIZE_BYTES } from "./needle-codec.js";

const VOLUME = 1 as VolumeId;

function openNode(disks: TemporaryDisks, volumeSizeBytes?: number): Promise<DataNode> {
  return DataNode.open({
    nodeId: TEST_NODE_ID,
    diskDirectories: disks.disks,
    ...(volumeSizeBytes === undefined ? {} : { volumeSizeBytes, allowVolumeSizeBelowMinimumForTests: true }),
  });
}

/** Writes `count` needles into a fresh node, closes it, and returns them with the file's size. */
async function writeAndClose(disks: TemporaryDisks, count: number, volumeSizeBytes?: number) {
  const node = await openNode(disks, volumeSizeBytes);
  await node.createVolume(VOLUME);
  const needles = [];
  for (let index = 0; index < count; index++) {
    const needle = makeNeedle(VOLUME, 1000 + index);
    await node.writeNeedle(needle);
    needles.push(needle);
  }
  await node.close();
  const path = volumePath(disks.disks[0]!, VOLUME);
  return { needles, path, sizeBytes: (await stat(path)).size };
}

function encodedNeedle(sizeBytes: number): Buffer {
  const needle = makeNeedle(VOLUME, sizeBytes);
  const header = { needleId: needle.needleId, flags: 0, dataSizeBytes: sizeBytes };
  const target = Buffer.alloc(needleEncodedSizeBytes(header));
  encodeNeedle({ header, data: needle.data }, target);
  return target;
}


const TORN_TAILS: Record<string, () => Buffer> = {
  "random garbage": () => randomBytes(100),
  "a short header": () => encodedNeedle(500).subarray(0, 20),
  "half a needle": () => encodedNeedle(5000).subarray(0, 2500),
  "a whole needle with a bad CRC": () => {
    const bytes = encodedNeedle(300);
    bytes[100] = bytes[100]! ^ 0xff;
    return bytes;
  },
  "a needle header claiming a huge size": () => {
    const bytes = encodedNeedle(0);
    bytes.writeUInt32BE(0xffff_fff0, 24);
    return bytes;
  },
};

for (const [name, makeTail] of Object.entries(TORN_TAILS)) {
  test(`a torn tail of ${name} is cut off on open and writing resumes`, async () => {
    const disks = await makeTemporaryDisks(1);
    try {
      const { needles, path, sizeBytes } = await writeAndClose(disks, 5);
      await appendFile(path, makeTail());
      assert.ok((await stat(path)).size > sizeBytes);
      const node = await openNode(disks);
      try {
        assert.equal((await stat(path)).size, sizeBytes, "the file shrinks to the last good needle");
        for (const needle of needles) assert.ok((await node.readNeedle(needle)).equals(needle.data));
        const fresh = makeNeedle(VOLUME, 777);
        await node.writeNeedle(fresh);
        assert.ok((await node.readNeedle(fresh)).equals(fresh.data));
        const [status] = await node.volumeStatuses();
        assert.equal(status?.needleCount, 6);
      } finally {
        await node.close();
      }
      const again = await openNode(disks);
      try {
        assert.equal(again.stats().fsyncCount, 0, "the second open finds nothing to repair");
        for (const needle of needles) assert.ok((await again.readNeedle(needle)).equals(needle.data));
      } finally {
        await again.close();
      }
    } finally {
      await disks.cleanup();
    }
  });
}

test("a file cut mid-needle below what the mapping knows is re-scanned and cut to the last whole needle", async () => {
  const disks = await makeTemporaryDisks(1);
  try {
    const { needles, path, sizeBytes } = await writeAndClose(disks, 5);
    await truncate(path, sizeBytes - 50);
    const node = await openNode(disks);
    try {
      const lastEncoded = needleEncodedSizeBytes({ dataSizeBytes: needles[4]!.data.length });
      assert.equal((await stat(path)).size, sizeBytes - lastEncoded);
      for (const needle of needles.slice(0, 4)) assert.ok((await node.readNeedle(needle)).equals(needle.data));
      await assert.rejects(node.readNeedle(needles[4]!), NeedleNotFound, "the cut needle's row is gone");
      const fresh = makeNeedle(VOLUME, 10);
      await node.writeNeedle(fresh);
      assert.ok((await node.readNeedle(fresh)).equals(fresh.data));
    } finally {
      await node.close();
    }
  } finally {
    await disks.cleanup();
  }
});

test("needles and writable-volume tombstones are mapped again from the files when the mapping is lost", async () => {
  const disks = await makeTemporaryDisks(1);
  try {
    const node = await openNode(disks);
    await node.createVolume(VOLUME);
    const needles = Array.from({ length: 50 }, (_, index) => makeNeedle(VOLUME, 200 + index));
    await Promise.all(needles.map((needle) => node.writeNeedle(needle)));
    await node.deleteNeedle(needles[7]!);
    await node.close();
    for (const suffix of ["", "-wal", "-shm"]) await rm(join(disks.disks[0]!, `mapping.sqlite${suffix}`), { force: true });
    const reopened = await openNode(disks);
    try {
      for (const [index, needle] of needles.entries()) {
        if (index === 7) await assert.rejects(reopened.readNeedle(needle), NeedleNotFound);
        else assert.ok((await reopened.readNeedle(needle)).equals(needle.data));
      }
      const [status] = await reopened.volumeStatuses();
      assert.deepEqual({ needleCount: status?.needleCount, deletedNeedleCount: status?.deletedNeedleCount }, { needleCount: 50, deletedNeedleCount: 1 });
    } finally {
      await reopened.close();
    }
  } finally {
    await disks.cleanup();
  }
});

test("rows lost with the mapping's progress rolled back (crash before the mapping commit) are re-mapped", async () => {
  const disks = await makeTemporaryDisks(1);
  try {
    const { needles, path } = await writeAndClose(disks, 8);
    // As if the last three groups were fsynced in the volume but their mapping commit was lost.
    const db = new Database(join(disks.disks[0]!, "mapping.sqlite"));
    const keep = db.prepare("SELECT offset_bytes FROM object_mapping ORDER BY offset_bytes").all() as { offset_bytes: number }[];
    const cutOffset = keep[5]!.offset_bytes;
    const file = await open(path, "r");
    const prefix = Buffer.alloc(cutOffset);
    await file.read(prefix, 0, cutOffset, 0);
    await file.close();
    db.prepare("DELETE FROM object_mapping WHERE offset_bytes >= ?").run(cutOffset);
    db.prepare("UPDATE volumes SET mapped_up_to_bytes = ?, file_crc32_up_to = ?").run(cutOffset, crc32(prefix));
    db.close();
    const node = await openNode(disks);
    try {
      for (const needle of needles) assert.ok((await node.readNeedle(needle)).equals(needle.data));
      assert.equal((await node.volumeStatuses())[0]?.needleCount, 8);
    } finally {
      await node.close();
    }
  } finally {
    await disks.cleanup();
  }
});

test("a flipped byte in a needle's data or header fails its read with ChecksumMismatch", async () => {
  const disks = await makeTemporaryDisks(1);
  try {
    const { needles, path } = await writeAndClose(disks, 3);
    const firstOffset = SUPERBLOCK_SIZE_BYTES;
    const secondOffset = firstOffset + needleEncodedSizeBytes({ dataSizeBytes: needles[0]!.data.length });
    await flipByte(path, firstOffset + 28 + 500); // data of needle 0
    await flipByte(path, secondOffset + 10); // needle id of needle 1
    const node = await openNode(disks);
    try {
      await assert.rejects(node.readNeedle(needles[0]!), ChecksumMismatch);
      await assert.rejects(node.readNeedle({ ...needles[0]!, offsetBytes: 0, lengthBytes: 10 }), ChecksumMismatch, "range reads verify too");
      await assert.rejects(node.readNeedle(needles[1]!), ChecksumMismatch);
      assert.ok((await node.readNeedle(needles[2]!)).equals(needles[2]!.data));
    } finally {
      await node.close();
    }
  } finally {
    await disks.cleanup();
  }
});

test("a footer written before the seal was recorded seals the volume on open", async () => {
  const disks = await makeTemporaryDisks(1);
  try {
    const volumeSizeBytes = 16 * 1024;
    const node = await openNode(disks, volumeSizeBytes);
    await node.createVolume(VOLUME);
    const needles = [];
    for (;;) {
      const needle = makeNeedle(VOLUME, 1000);
      try {
        await node.writeNeedle(needle);
      } catch (error) {
        assert.ok(error instanceof VolumeFull);
        break;
      }
      needles.push(needle);
    }
    await node.close();
    const db = new Database(join(disks.disks[0]!, "mapping.sqlite"));
    db.prepare("UPDATE volumes SET state = 'writable'").run();
    db.close();
    const path = volumePath(disks.disks[0]!, VOLUME);
    const sizeBytes = (await stat(path)).size;
    const reopened = await openNode(disks, volumeSizeBytes);
    try {
      assert.equal((await stat(path)).size, sizeBytes, "the footer is kept, not cut as a torn tail");
      assert.equal((await reopened.volumeStatuses())[0]?.state, "sealed");
      assert.equal((await reopened.verifySealedVolume(VOLUME)).ok, true);
      await assert.rejects(reopened.writeNeedle(makeNeedle(VOLUME, 1)), VolumeFull);
      for (const needle of needles) assert.ok((await reopened.readNeedle(needle)).equals(needle.data));
    } finally {
      await reopened.close();
    }
  } finally {
    await disks.cleanup();
  }
});

test("a sealed volume that lost its footer is served read-only and fails verification", async () => {
  const disks = await makeTemporaryDisks(1);
  try {
    const volumeSizeBytes = 16 * 1024;
    const node = await openNode(disks, volumeSizeBytes);
    await node.createVolume(VOLUME);
    const needles = Array.from({ length: 20 }, () => makeNeedle(VOLUME, 1000));
    const results = await Promise.allSettled(needles.map((needle) => node.writeNeedle(needle)));
    await node.close();
    const path = volumePath(disks.disks[0]!, VOLUME);
    await truncate(path, (await stat(path)).size - SEAL_FOOTER_SIZE_BYTES);
    const reopened = await openNode(disks, volumeSizeBytes);
    try {
      const verification = await reopened.verifySealedVolume(VOLUME);
      assert.equal(verification.ok, false);
      await assert.rejects(reopened.writeNeedle(makeNeedle(VOLUME, 1)), VolumeFull);
      const written = needles.filter((_, index) => results[index]?.status === "fulfilled");
      assert.ok(written.length > 0);
      for (const needle of written) assert.ok((await reopened.readNeedle(needle)).equals(needle.data));
    } finally {
      await reopened.close();
    }
  } finally {
    await disks.cleanup();
  }
});
