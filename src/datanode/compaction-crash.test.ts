// Proves compaction is crash-safe: for each named crash point of the protocol (compaction.ts),
// a child process compacts a prepared sealed volume and SIGKILLs itself at that point. The parent
// then reopens the data node and checks that exactly one of the old or the new file is the
// volume, that it verifies against its footer, that every surviving needle reads back byte for
// byte and every deleted one stays deleted, that no leftover file remains, and that compaction
// can run (again) to completion afterwards.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { VolumeId } from "../base/index.js";
import { NeedleNotFound } from "../cluster/index.js";
import { COMPACTION_CRASH_POINTS } from "./crash-point.js";
import { DataNode } from "./index.js";
import { fillSealAndDelete, makeTemporaryDisks, SMALL_VOLUME_SIZE_BYTES, TEST_NODE_ID, volumePath, type FilledVolume, type TemporaryDisks } from "./fixtures.js";

const CHILD_PATH = fileURLToPath(new URL("./compaction-crash-child.js", import.meta.url));
const VOLUME = 1 as VolumeId;
/** Crash points after which the new file is the volume. */
const SWITCHED_POINTS = new Set<string>(["datanode.compaction.after-mapping-switch", "datanode.compaction.after-rename"]);

function openNode(disks: TemporaryDisks): Promise<DataNode> {
  return DataNode.open({ nodeId: TEST_NODE_ID, diskDirectories: disks.disks, volumeSizeBytes: SMALL_VOLUME_SIZE_BYTES, allowVolumeSizeBelowMinimumForTests: true });
}

function runChild(disk: string, crashPoint: string | undefined): Promise<{ signal: NodeJS.Signals | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CHILD_PATH, JSON.stringify({ disk, volumeSizeBytes: SMALL_VOLUME_SIZE_BYTES })], {
      env: { ...process.env, CAIRN_LOG_LEVEL: "error", ...(crashPoint === undefined ? {} : { CAIRN_CRASH_POINT: crashPoint }) },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    child.on("error", reject);
    child.on("close", (_code, signal) => resolve({ signal, stdout, stderr }));
  });
}

async function checkVolume(node: DataNode, filled: FilledVolume): Promise<void> {
  for (const needle of filled.live) assert.ok((await node.readNeedle(needle)).equals(needle.data), `survivor ${needle.needleId} reads back exactly`);
  for (const needle of filled.deleted) await assert.rejects(node.readNeedle(needle), NeedleNotFound, `deleted ${needle.needleId} stays deleted`);
  assert.equal((await node.verifySealedVolume(VOLUME)).ok, true, "the volume verifies against its footer");
}

for (const crashPoint of COMPACTION_CRASH_POINTS) {
  test(`a crash at ${crashPoint} leaves the ${SWITCHED_POINTS.has(crashPoint) ? "new" : "old"} volume whole`, async () => {
    const disks = await makeTemporaryDisks(1);
    const disk = disks.disks[0]!;
    const path = volumePath(disk, VOLUME);
    try {
      let node = await openNode(disks);
      const filled = await fillSealAndDelete(node, VOLUME, 0.7);
      const compactedSizeBytes = node.sealedVolumeGarbage()[0]!.compactedSizeBytes;
      await node.close();
      const sizeBytesBefore = (await stat(path)).size;

      const run = await runChild(disk, crashPoint);
      assert.equal(run.signal, "SIGKILL", `the child died at ${crashPoint}: ${run.stdout} ${run.stderr}`);

      node = await openNode(disks);
      try {
        assert.deepEqual(await readdir(join(disk, "volumes")), ["1.vol"], "recovery left no compaction file behind");
        const expectedSizeBytes = SWITCHED_POINTS.has(crashPoint) ? compactedSizeBytes : sizeBytesBefore;
        assert.equal((await stat(path)).size, expectedSizeBytes, "the volume is the expected one of old and new");
        assert.equal((await node.volumeStatuses())[0]?.sizeBytes, expectedSizeBytes);
        await checkVolume(node, filled);
        // Compaction completes afterwards (or has nothing left to do).
        const again = await node.compactVolume(VOLUME, { garbageRatioMin: 0.3 });
        assert.equal(again.outcome, SWITCHED_POINTS.has(crashPoint) ? "skipped" : "compacted", JSON.stringify(again));
        assert.equal((await stat(path)).size, compactedSizeBytes);
        await checkVolume(node, filled);
      } finally {
        await node.close();
      }
      node = await openNode(disks);
      try {
        await checkVolume(node, filled);
      } finally {
        await node.close();
      }
    } finally {
      await disks.cleanup();
    }
  });
}

test("without a crash point the child compacts to the end", async () => {
  const disks = await makeTemporaryDisks(1);
  try {
    const node = await openNode(disks);
    const filled = await fillSealAndDelete(node, VOLUME, 0.7);
    await node.close();
    const run = await runChild(disks.disks[0]!, undefined);
    assert.match(run.stdout, /done compacted/, run.stderr);
    const reopened = await openNode(disks);
    try {
      await checkVolume(reopened, filled);
    } finally {
      await reopened.close();
    }
  } finally {
    await disks.cleanup();
  }
});
