// Proves compaction in a real cluster (1 placement, 3 data nodes in 3 zones, 1 gateway, each its
// own `cairn` process, 8 MiB volumes): objects written through S3 (AWS SDK v3) fill and seal
// volumes; deleting four fifths of them lets the gateway's garbage collector mark their needles
// deleted on every replica, and each data node's background compactor then rewrites its sealed
// volumes so their files shrink on disk. Survivors are read back (MD5-checked) continuously
// while that happens and once more afterwards; deleted objects stay gone; and a scrub pass
// requested over the data node's RPC finds every compacted volume clean.
//
// The data nodes take their compaction settings from the environment (CAIRN_COMPACTION_*), which
// the test sets before the cluster starts: look every second, compact at 50% garbage, and copy
// slowly (1 MiB/s) so reads overlap every step of the swap.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { statSync } from "node:fs";
import * as path from "node:path";
import { CreateBucketCommand, DeleteObjectCommand, GetObjectCommand, PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { RpcClient, type VolumeStatus } from "../../src/cluster/index.js";
import { s3Client } from "../helpers/cairn-process.js";
import { CLUSTER_SECRET, TestCluster } from "../helpers/cluster.js";

const MIB = 1024 * 1024;
const VOLUME_SIZE_BYTES = 8 * MIB;
const OBJECT_COUNT = 160;
const OBJECT_SIZE_BYTES = 256 * 1024;
const DATA_NODE_NAMES = ["dn-a", "dn-b", "dn-c"] as const;
/** GC (2 s idle passes) plus compaction (1 s interval, 1 MiB/s) of a few volumes per node. */
const COMPACTION_WAIT_MS_MAX = 180_000;

let cluster: TestCluster;
let client: S3Client;
const survivors = new Map<string, string>();
const deleted: string[] = [];

const md5 = (data: Uint8Array): string => createHash("md5").update(data).digest("hex");

function volumeFilePath(nodeName: string, volumeId: number): string {
  return path.join(cluster.root, nodeName, "disk0", "volumes", `${volumeId}.vol`);
}

function dataNodeClient(nodeName: string): RpcClient {
  return new RpcClient(`http://127.0.0.1:${cluster.get(nodeName).port}`, CLUSTER_SECRET);
}

async function sealedVolumes(nodeName: string): Promise<VolumeStatus[]> {
  const rpc = dataNodeClient(nodeName);
  try {
    return (await rpc.call<VolumeStatus[]>("volumeStatuses", {})).filter((status) => status.state === "sealed");
  } finally {
    rpc.close();
  }
}

async function readBack(key: string, expectedMd5: string): Promise<void> {
  const got = await client.send(new GetObjectCommand({ Bucket: "compaction", Key: key }));
  assert.equal(md5(await got.Body!.transformToByteArray()), expectedMd5, `${key} reads back MD5-correct`);
}

before(async () => {
  process.env.CAIRN_COMPACTION_INTERVAL_MS = "1000";
  process.env.CAIRN_COMPACTION_GARBAGE_PERCENT = "50";
  process.env.CAIRN_COMPACTION_BYTES_PER_SECOND = String(1 * MIB);
  cluster = await TestCluster.start({
    dataNodes: DATA_NODE_NAMES.map((name, index) => ({ name, zone: `zone-${index}`, rack: "rack-1" })),
    gatewayCount: 1,
    volumeSizeBytes: VOLUME_SIZE_BYTES,
  });
  client = s3Client(cluster.endpoint("gateway-1"));
  await client.send(new CreateBucketCommand({ Bucket: "compaction" }));
});

after(async () => {
  client?.destroy();
  await cluster?.stop();
});

test("deleting most objects of sealed volumes shrinks their files on every replica; survivors read back during and after", async (t) => {
  const objects = new Map<string, string>();
  for (let index = 0; index < OBJECT_COUNT; index++) {
    const body = randomBytes(OBJECT_SIZE_BYTES - (index % 7) * 1000);
    const key = `object-${String(index).padStart(4, "0")}`;
    await client.send(new PutObjectCommand({ Bucket: "compaction", Key: key, Body: body }));
    objects.set(key, md5(body));
  }
  // Sealed volumes and their sizes on disk, per replica, before any delete.
  const sizesBefore = new Map<string, number>();
  for (const nodeName of DATA_NODE_NAMES) {
    for (const status of await sealedVolumes(nodeName)) {
      const sizeBytes = statSync(volumeFilePath(nodeName, status.volumeId)).size;
      assert.equal(sizeBytes, status.sizeBytes, "the heartbeat size is the file size");
      sizesBefore.set(`${nodeName}/${status.volumeId}`, sizeBytes);
    }
  }
  assert.ok(sizesBefore.size >= DATA_NODE_NAMES.length, `volumes were sealed: ${[...sizesBefore.keys()].join(", ")}`);

  let index = 0;
  for (const [key, expectedMd5] of objects) {
    if (index++ % 5 === 0) survivors.set(key, expectedMd5);
    else deleted.push(key);
  }

  // Readers run from the first delete until every sealed volume has shrunk everywhere.
  let compactionDone = false;
  let readCount = 0;
  const readFailures: string[] = [];
  const reader = (async () => {
    while (!compactionDone) {
      for (const [key, expectedMd5] of survivors) {
        try {
          await readBack(key, expectedMd5);
          readCount += 1;
        } catch (error) {
          readFailures.push(`${key}: ${String(error)}`);
        }
        if (compactionDone) break;
      }
    }
  })();

  try {
    for (const key of deleted) await client.send(new DeleteObjectCommand({ Bucket: "compaction", Key: key }));
    const deadline = Date.now() + COMPACTION_WAIT_MS_MAX;
    let unshrunk = [...sizesBefore.keys()];
    while (unshrunk.length > 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      unshrunk = unshrunk.filter((entry) => {
        const [nodeName, volumeId] = entry.split("/") as [string, string];
        return statSync(volumeFilePath(nodeName, Number(volumeId))).size > sizesBefore.get(entry)! * 0.5;
      });
    }
    assert.deepEqual(unshrunk, [], "every sealed volume file shrank below half its size on every replica");
  } finally {
    compactionDone = true;
    await reader;
  }
  assert.deepEqual(readFailures, [], "no read failed while garbage was collected and volumes compacted");
  assert.ok(readCount >= survivors.size, `survivors were read while compaction ran (${readCount} reads)`);
  const sizesAfter = [...sizesBefore.keys()].map((entry) => {
    const [nodeName, volumeId] = entry.split("/") as [string, string];
    return `${entry}: ${sizesBefore.get(entry)} -> ${statSync(volumeFilePath(nodeName, Number(volumeId))).size}`;
  });
  t.diagnostic(`${readCount} survivor reads during GC and compaction; ${sizesAfter.join("; ")}`);

  // After: every survivor reads back, every deleted object is gone, and the heartbeat sizes agree.
  for (const [key, expectedMd5] of survivors) await readBack(key, expectedMd5);
  for (const key of deleted.slice(0, 20)) {
    await assert.rejects(client.send(new GetObjectCommand({ Bucket: "compaction", Key: key })), (error: unknown) => (error as { name?: string }).name === "NoSuchKey");
  }
  for (const nodeName of DATA_NODE_NAMES) {
    for (const status of await sealedVolumes(nodeName)) {
      assert.equal(statSync(volumeFilePath(nodeName, status.volumeId)).size, status.sizeBytes, `${nodeName} reports volume ${status.volumeId}'s new size`);
    }
  }
});

test("a scrub pass requested over RPC finds the compacted volumes clean", async () => {
  // A volume compacted while deletes were still arriving may pass the threshold again; let the
  // background compactor finish (a scrub of a volume swapped under it reports "superseded").
  const deadline = Date.now() + COMPACTION_WAIT_MS_MAX;
  for (const nodeName of DATA_NODE_NAMES) {
    const rpc = dataNodeClient(nodeName);
    try {
      for (;;) {
        const garbage = await rpc.call<{ volumeId: number; garbageRatio: number }[]>("volumeGarbage", {});
        if (garbage.every((volume) => volume.garbageRatio < 0.5)) break;
        assert.ok(Date.now() < deadline, `${nodeName} settles: ${JSON.stringify(garbage)}`);
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
    } finally {
      rpc.close();
    }
  }
  for (const nodeName of DATA_NODE_NAMES) {
    const rpc = dataNodeClient(nodeName);
    try {
      const results = await rpc.call<{ volumeId: number; outcome: string; fileChecksumOk?: boolean }[]>("scrubVolumes", {}, { timeoutMs: 60_000 });
      assert.ok(results.length >= 1, `${nodeName} scrubbed its sealed volumes`);
      for (const result of results) assert.deepEqual([result.volumeId, result.outcome, result.fileChecksumOk], [result.volumeId, "clean", true]);
      const status = await rpc.call<{ stats: { corruptNeedleCount: number } }>("scrubStatus", {});
      assert.equal(status.stats.corruptNeedleCount, 0);
    } finally {
      rpc.close();
    }
  }
  for (const [key, expectedMd5] of survivors) await readBack(key, expectedMd5);
});
