// Proves durability across real process crashes. A child process (crash-child.ts) writes needles
// concurrently and prints each one it has been acknowledged; the parent kills it with SIGKILL
// mid-stream, or the child kills itself at a named crash point (CAIRN_CRASH_POINT). The parent
// then reopens the data node and checks that every acknowledged needle reads back byte for byte,
// that no needle ever reads back wrong bytes, and that the volume state (sealed or not) is right.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { crc32, type NeedleId, type VolumeId } from "../base/index.js";
import { NeedleNotFound } from "../cluster/index.js";
import { DataNode } from "./index.js";
import { makeTemporaryDisks, needleBytes, TEST_NODE_ID, type TemporaryDisks } from "./fixtures.js";
import type { DataNodeCrashPoint } from "./crash-point.js";

const CHILD_PATH = fileURLToPath(new URL("./crash-child.js", import.meta.url));

interface NeedleLine {
  volumeId: VolumeId;
  needleId: NeedleId;
  sizeBytes: number;
}

interface ChildRun {
  attempts: NeedleLine[];
  acks: NeedleLine[];
  signal: NodeJS.Signals | null;
  stderr: string;
}

function runChild(input: {
  disk: string;
  writeCount: number;
  concurrency: number;
  sizeBytes: number;
  volumeSizeBytes?: number;
  crashPoint?: DataNodeCrashPoint;
  killAfterAckCount?: number;
}): Promise<ChildRun> {
  const { crashPoint, killAfterAckCount, ...childOptions } = input;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CHILD_PATH, JSON.stringify(childOptions)], {
      env: { ...process.env, CAIRN_LOG_LEVEL: "error", ...(crashPoint === undefined ? {} : { CAIRN_CRASH_POINT: crashPoint }) },
      stdio: ["ignore", "pipe", "pipe"],
    });
    const run: ChildRun = { attempts: [], acks: [], signal: null, stderr: "" };
    let pending = "";
    child.stdout.setEncoding("utf8");
    child.stdout.on("data", (text: string) => {
      pending += text;
      const lines = pending.split("\n");
      pending = lines.pop() ?? "";
      for (const line of lines) {
        const [kind, volumeId, needleId, sizeBytes] = line.split(" ");
        if (kind !== "attempt" && kind !== "ack") continue;
        const parsed = { volumeId: Number(volumeId) as VolumeId, needleId: needleId as NeedleId, sizeBytes: Number(sizeBytes) };
        (kind === "ack" ? run.acks : run.attempts).push(parsed);
      }
      if (killAfterAckCount !== undefined && run.acks.length >= killAfterAckCount) child.kill("SIGKILL");
    });
    child.stderr.on("data", (chunk: Buffer) => {
      run.stderr += chunk.toString();
    });
    child.on("error", reject);
    child.on("close", (_code, signal) => {
      run.signal = signal;
      resolve(run);
    });
  });
}

async function reopen(disks: TemporaryDisks, volumeSizeBytes?: number): Promise<DataNode> {
  return DataNode.open({
    nodeId: TEST_NODE_ID,
    diskDirectories: disks.disks,
    ...(volumeSizeBytes === undefined ? {} : { volumeSizeBytes, allowVolumeSizeBelowMinimumForTests: true }),
  });
}

/** Every acknowledged needle reads back exactly; any other attempt is absent or exact. */
async function checkNeedles(node: DataNode, run: ChildRun): Promise<number> {
  for (const ack of run.acks) {
    const data = await node.readNeedle(ack);
    assert.ok(data.equals(needleBytes(ack.needleId, ack.sizeBytes)), `acknowledged needle ${ack.needleId} reads back exactly`);
  }
  let readable = 0;
  for (const attempt of run.attempts) {
    try {
      const data = await node.readNeedle(attempt);
      assert.ok(data.equals(needleBytes(attempt.needleId, attempt.sizeBytes)), `needle ${attempt.needleId} is never wrong`);
      readable += 1;
    } catch (error) {
      assert.ok(error instanceof NeedleNotFound, `unacknowledged needle is absent, not broken: ${String(error)}`);
    }
  }
  return readable;
}

test("SIGKILL in the middle of concurrent writes loses no acknowledged needle", async () => {
  const disks = await makeTemporaryDisks(1);
  try {
    const run = await runChild({ disk: disks.disks[0]!, writeCount: 1_000_000, concurrency: 32, sizeBytes: 20_000, killAfterAckCount: 400 });
    assert.equal(run.signal, "SIGKILL", run.stderr);
    assert.ok(run.acks.length >= 400);
    assert.ok(run.attempts.length > run.acks.length, "writes were in flight when it died");
    const node = await reopen(disks);
    try {
      await checkNeedles(node, run);
      const fresh = { volumeId: 1 as VolumeId, needleId: "0".repeat(32) as NeedleId, data: Buffer.from("after"), crc32: 0 };
      await node.writeNeedle({ ...fresh, crc32: crc32(fresh.data) });
      assert.ok((await node.readNeedle(fresh)).equals(fresh.data), "writes resume after the crash");
    } finally {
      await node.close();
    }
  } finally {
    await disks.cleanup();
  }
});

for (const crashPoint of ["datanode.after-append-before-fsync", "datanode.after-fsync-before-mapping"] as const) {
  test(`a crash at ${crashPoint} leaves a consistent volume`, async () => {
    const disks = await makeTemporaryDisks(1);
    try {
      const run = await runChild({ disk: disks.disks[0]!, writeCount: 50, concurrency: 16, sizeBytes: 3000, crashPoint });
      assert.equal(run.signal, "SIGKILL", run.stderr);
      assert.equal(run.acks.length, 0, "nothing is acknowledged before its group's fsync and mapping commit");
      const node = await reopen(disks);
      try {
        const readable = await checkNeedles(node, run);
        // A process crash keeps written pages, so the appended group is found by the recovery
        // scan in both cases (before fsync it is still in the page cache).
        assert.ok(readable >= 1, "the group written before the crash was mapped by recovery");
        assert.equal((await node.volumeStatuses())[0]?.needleCount, readable);
      } finally {
        await node.close();
      }
    } finally {
      await disks.cleanup();
    }
  });
}

test("a crash right after the seal footer is written recovers a sealed, verifiable volume", async () => {
  const disks = await makeTemporaryDisks(1);
  const volumeSizeBytes = 64 * 1024;
  try {
    const run = await runChild({
      disk: disks.disks[0]!,
      writeCount: 1000,
      concurrency: 4,
      sizeBytes: 4000,
      volumeSizeBytes,
      crashPoint: "datanode.seal.after-footer",
    });
    assert.equal(run.signal, "SIGKILL", run.stderr);
    assert.ok(run.acks.length > 0);
    const node = await reopen(disks, volumeSizeBytes);
    try {
      await checkNeedles(node, run);
      const [status] = await node.volumeStatuses();
      assert.equal(status?.state, "sealed");
      assert.equal((await node.verifySealedVolume(1 as VolumeId)).ok, true);
    } finally {
      await node.close();
    }
  } finally {
    await disks.cleanup();
  }
});

test("a crash after a new volume's file is in place but before its mapping row adopts the volume", async () => {
  const disks = await makeTemporaryDisks(1);
  try {
    const run = await runChild({ disk: disks.disks[0]!, writeCount: 1, concurrency: 1, sizeBytes: 10, crashPoint: "datanode.create-volume.after-rename" });
    assert.equal(run.signal, "SIGKILL", run.stderr);
    const node = await reopen(disks);
    try {
      assert.deepEqual(await node.volumeStatuses(), [{ volumeId: 1, state: "writable", sizeBytes: 32, needleCount: 0, deletedNeedleCount: 0 }]);
      await node.createVolume(1 as VolumeId);
    } finally {
      await node.close();
    }
  } finally {
    await disks.cleanup();
  }
});
