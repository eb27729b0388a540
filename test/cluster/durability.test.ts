// Proves repair, mark-delete and drain on a cluster of real processes (1 placement, 6 data
// nodes in 3 zones, 1 gateway, 8 MiB volumes so that some are sealed and some writable), with
// short timeouts (down after 3 s, out after 15 s):
// - a data node killed for good has every replica it held re-created on another node in the
//   same failure-domain spread; a second node killed after that loses nothing;
// - objects deleted while one replica's node is stopped stay deleted when it comes back, and
//   its copies of their needles get tombstones;
// - a node drained while a client writes and reads leaves every replica set with no request
//   failing, and takes no new volumes;
// - bytes flipped in a needle of a sealed volume file are found by the data node's scrubber,
//   reported to placement, and rewritten in place by repair from a healthy replica.
// Each test ends with every object MD5-correct and every volume at full redundancy: all
// replicas up, in distinct zones, and each replica holding the same live needles (each read
// and CRC-checked on every replica) and the same tombstones.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { closeSync, openSync, readFileSync, writeSync } from "node:fs";
import * as path from "node:path";
import { promisify } from "node:util";
import { CreateBucketCommand, DeleteObjectCommand, GetObjectCommand, PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import type { NodeId, VolumeId } from "../../src/base/index.js";
import { RemoteNeedleStore, RpcClient, type ClusterMap, type NeedleListEntry, type RepairStatus } from "../../src/cluster/index.js";
import { CAIRN_BIN, s3Client } from "../helpers/cairn-process.js";
import { CLUSTER_SECRET, TestCluster } from "../helpers/cluster.js";

const run = promisify(execFile);
const MIB = 1024 * 1024;
const NODE_DOWN_AFTER_MS = 3_000;
const NODE_OUT_AFTER_MS = 15_000;
/** Out-timeout + settle + copying a few tens of MiB on a busy 2-core machine, with margin. */
const REPAIR_WAIT_MS_MAX = 150_000;
const BUCKET = "durable";

let cluster: TestCluster;
let client: S3Client;
const written = new Map<string, string>();
const deleted = new Set<string>();
/** Nodes killed for good: no replica may stay on them. */
const gone = new Set<NodeId>();

const md5 = (data: Buffer) => createHash("md5").update(data).digest("hex");
const nodeIdOf = (name: string) => cluster.get(name).nodeId as NodeId;

async function putObject(key: string, size: number): Promise<void> {
  const body = randomBytes(size);
  await client.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: body }));
  written.set(key, md5(body));
}

async function getMd5(key: string): Promise<string> {
  const got = await client.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
  return md5(Buffer.from(await got.Body!.transformToByteArray()));
}

async function readAll(label: string): Promise<void> {
  for (const [key, expected] of written) assert.equal(await getMd5(key), expected, `${label}: ${key}`);
  for (const key of deleted) await assertNotFound(key, label);
}

async function assertNotFound(key: string, label: string): Promise<void> {
  await assert.rejects(
    client.send(new GetObjectCommand({ Bucket: BUCKET, Key: key })),
    (error: unknown) => (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404,
    `${label}: deleted ${key} answers 404`,
  );
}

function storeOf(map: ClusterMap, nodeId: NodeId): RemoteNeedleStore {
  const node = map.nodes.find((candidate) => candidate.nodeId === nodeId);
  assert.ok(node !== undefined, `node ${nodeId} is in the map`);
  return new RemoteNeedleStore({ nodeId, address: node.address, secret: CLUSTER_SECRET });
}

async function listAll(store: RemoteNeedleStore, volumeId: VolumeId): Promise<NeedleListEntry[]> {
  const entries: NeedleListEntry[] = [];
  for (;;) {
    const last = entries[entries.length - 1];
    const page = await store.listNeedles(last === undefined ? { volumeId, countMax: 1000 } : { volumeId, afterNeedleId: last.needleId, countMax: 1000 });
    entries.push(...page);
    if (page.length < 1000) return entries;
  }
}

/**
 * Every volume has replicaCount replicas, all up, in distinct zones, none on `excluded`; every
 * replica of a volume lists the same live needles and the same tombstones, and serves each live
 * needle with its CRC verified. Returns the tombstone count per node.
 */
async function assertFullRedundancy(
  label: string,
  excluded: ReadonlySet<NodeId> = new Set(),
): Promise<{ tombstones: Map<NodeId, number>; live: Map<NodeId, number> }> {
  const map = await cluster.clusterMap();
  const nodes = new Map(map.nodes.map((node) => [node.nodeId, node]));
  const tombstonesPerNode = new Map<NodeId, number>();
  const livePerNode = new Map<NodeId, number>();
  for (const volume of map.volumes) {
    assert.equal(volume.replicas.length, map.replicaCount, `${label}: volume ${volume.volumeId} has ${map.replicaCount} replicas`);
    for (const nodeId of volume.replicas) {
      assert.equal(nodes.get(nodeId)?.state, "up", `${label}: volume ${volume.volumeId} replica ${nodeId} is up`);
      assert.ok(!excluded.has(nodeId), `${label}: volume ${volume.volumeId} has no replica on ${nodeId}`);
    }
    assert.equal(new Set(volume.replicas.map((nodeId) => nodes.get(nodeId)!.zone)).size, volume.replicas.length, `${label}: volume ${volume.volumeId} spans distinct zones`);
    let reference: { live: string; dead: string } | undefined;
    for (const nodeId of volume.replicas) {
      const store = storeOf(map, nodeId);
      try {
        const entries = await listAll(store, volume.volumeId);
        const live = entries.filter((entry) => !entry.tombstone).map((entry) => entry.needleId);
        const dead = entries.filter((entry) => entry.tombstone).map((entry) => entry.needleId);
        tombstonesPerNode.set(nodeId, (tombstonesPerNode.get(nodeId) ?? 0) + dead.length);
        livePerNode.set(nodeId, (livePerNode.get(nodeId) ?? 0) + live.length);
        for (const needleId of live) await store.readNeedle({ volumeId: volume.volumeId, needleId });
        const summary = { live: live.join(","), dead: dead.join(",") };
        if (reference === undefined) reference = summary;
        else {
          assert.equal(summary.live, reference.live, `${label}: volume ${volume.volumeId} replica ${nodeId} holds the same live needles`);
          assert.equal(summary.dead, reference.dead, `${label}: volume ${volume.volumeId} replica ${nodeId} holds the same tombstones`);
        }
      } finally {
        await store.close();
      }
    }
  }
  return { tombstones: tombstonesPerNode, live: livePerNode };
}

async function repairStatus(): Promise<RepairStatus> {
  const rpc = new RpcClient(cluster.placementUrl, CLUSTER_SECRET);
  try {
    return await rpc.call<RepairStatus>("repairStatus", {});
  } finally {
    rpc.close();
  }
}

const noVolumeOn = (nodeId: NodeId) => (map: ClusterMap) => map.volumes.every((volume) => !volume.replicas.includes(nodeId));

before(async () => {
  cluster = await TestCluster.start({
    dataNodes: [
      { name: "dn-a1", zone: "zone-a", rack: "rack-1" },
      { name: "dn-a2", zone: "zone-a", rack: "rack-2" },
      { name: "dn-b1", zone: "zone-b", rack: "rack-1" },
      { name: "dn-b2", zone: "zone-b", rack: "rack-2" },
      { name: "dn-c1", zone: "zone-c", rack: "rack-1" },
      { name: "dn-c2", zone: "zone-c", rack: "rack-2" },
    ],
    gatewayCount: 1,
    nodeDownAfterMs: NODE_DOWN_AFTER_MS,
    volumeSizeBytes: 8 * MIB,
    placementFlags: ["--node-out-after-ms", String(NODE_OUT_AFTER_MS)],
  });
  client = s3Client(cluster.endpoint("gateway-1"));
  await client.send(new CreateBucketCommand({ Bucket: BUCKET }));
  for (let index = 0; index < 40; index++) await putObject(`first/${index}`, index % 4 === 3 ? 5 * MIB + 17 : 1 + index * 7_000);
});

after(async () => {
  client?.destroy();
  await cluster?.stop();
});

test("a data node killed for good has its replicas re-created; a second node killed after that loses nothing", async () => {
  const first = nodeIdOf("dn-a1");
  const before = await cluster.clusterMap();
  const held = before.volumes.filter((volume) => volume.replicas.includes(first)).length;
  assert.ok(held > 0, "the killed node held replicas");
  assert.ok(before.volumes.some((volume) => volume.state === "sealed"), "some volumes are sealed (8 MiB volumes)");

  await cluster.kill("dn-a1");
  gone.add(first);
  await readAll("first node down");
  await cluster.waitFor(noVolumeOn(first), "every replica on the killed node re-created elsewhere", REPAIR_WAIT_MS_MAX);
  const status = await repairStatus();
  assert.ok(status.totals.replicasReplaced >= held, `repair replaced ${status.totals.replicasReplaced} replicas, ${held} were on the node`);
  assert.ok(status.totals.needlesCopied > 0, "repair copied needles");
  assert.equal(status.totals.needlesLost, 0);
  await assertFullRedundancy("after the first repair", gone);

  // From here, only the re-created replicas (in zone a: dn-a2) and zone c hold the data that
  // had a replica on dn-a1 and on dn-b1.
  const second = nodeIdOf("dn-b1");
  await cluster.kill("dn-b1");
  gone.add(second);
  await readAll("second node down");
  await cluster.waitFor(noVolumeOn(second), "every replica on the second killed node re-created", REPAIR_WAIT_MS_MAX);
  await readAll("after the second repair");
  await assertFullRedundancy("after the second repair", gone);
});

test("objects deleted while a replica's node is stopped stay deleted when it comes back, and it gets the tombstones", async () => {
  const liveBefore = (await assertFullRedundancy("before the writes", gone)).live;
  for (let index = 0; index < 16; index++) await putObject(`doomed/${index}`, 20_000 + index);
  // The node to stop holds replicas of doomed objects. It is in zone c, the one zone with two
  // nodes left (stopping the last node of a zone would leave new volumes short of a zone), and
  // which of the two holds them depends on the volumes placement handed out: read it off the
  // nodes' new needles.
  const afterWrites = await assertFullRedundancy("before the deletes", gone);
  const candidates = ["dn-c1", "dn-c2"].map((name) => ({
    name,
    gained: (afterWrites.live.get(nodeIdOf(name)) ?? 0) - (liveBefore.get(nodeIdOf(name)) ?? 0),
  }));
  const chosen = candidates.sort((left, right) => right.gained - left.gained)[0]!;
  assert.ok(chosen.gained > 0, `a zone-c node holds replicas of doomed objects (${JSON.stringify(candidates)})`);
  const stoppedName = chosen.name;
  const stopped = nodeIdOf(stoppedName);
  const tombstonesBefore = afterWrites.tombstones.get(stopped) ?? 0;

  await cluster.kill(stoppedName);
  await cluster.waitFor((map) => map.nodes.find((node) => node.nodeId === stopped)?.state === "down", "the stopped node seen down");
  for (let index = 0; index < 16; index++) {
    await client.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: `doomed/${index}` }));
    written.delete(`doomed/${index}`);
    deleted.add(`doomed/${index}`);
  }
  for (const key of deleted) await assertNotFound(key, "while the node is stopped");

  // Back well before the out-timeout, with its old copies of the deleted needles still live.
  await cluster.restart(stoppedName);
  await cluster.waitFor((map) => map.nodes.every((node) => node.state === "up" || gone.has(node.nodeId)), "the node up again");
  const deadline = Date.now() + REPAIR_WAIT_MS_MAX;
  for (;;) {
    try {
      const { tombstones } = await assertFullRedundancy("after the node came back", gone);
      assert.ok((tombstones.get(stopped) ?? 0) > tombstonesBefore, "the returned node got tombstones for the deleted needles");
      break;
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 1_000));
    }
  }
  await readAll("after the node came back");
});

test("a node drained while a client writes and reads leaves every replica set, with no request failing", async () => {
  // A new, empty node joins first, so the drained node's replicas have somewhere to go in zone c.
  const joined = await cluster.addDataNode({ name: "dn-c3", zone: "zone-c", rack: "rack-3" });
  await cluster.waitFor((map) => map.nodes.some((node) => node.nodeId === joined.nodeId && node.state === "up"), "the new node up");
  const drained = nodeIdOf("dn-c2");
  const failures: string[] = [];
  let stop = false;
  let operations = 0;
  const load = (async () => {
    for (let index = 0; !stop; index++) {
      const key = `during-drain/${index}`;
      try {
        await putObject(key, 1_000 + (index % 5) * 50_000);
        const keys = [...written.keys()];
        const probe = keys[(index * 7919) % keys.length]!;
        assert.equal(await getMd5(probe), written.get(probe), `read of ${probe}`);
        assert.equal(await getMd5(key), written.get(key), `read of ${key}`);
        operations += 3;
      } catch (error) {
        failures.push(`${key}: ${(error as Error).message}`);
      }
    }
  })();
  try {
    const { stdout } = await run(process.execPath, [CAIRN_BIN, "admin", "node", "drain", drained, "--placement", cluster.placementUrl, "--cluster-secret", CLUSTER_SECRET]);
    assert.match(stdout, /draining/);
    await cluster.waitFor(noVolumeOn(drained), "every replica moved off the drained node", REPAIR_WAIT_MS_MAX);
    // Writes go on for a while after: new volumes must not land on the drained node.
    await new Promise((resolve) => setTimeout(resolve, 3_000));
  } finally {
    stop = true;
    await load;
  }
  assert.deepEqual(failures, [], "no request failed during the drain");
  assert.ok(operations > 30, `the client kept working during the drain (${operations} requests)`);
  const map = await cluster.clusterMap();
  assert.ok(noVolumeOn(drained)(map), "the drained node took no new volume");
  assert.ok(map.volumes.some((volume) => volume.replicas.includes(joined.nodeId as NodeId)), "the new node holds replicas");
  const { stdout } = await run(process.execPath, [CAIRN_BIN, "admin", "repair", "status", "--placement", cluster.placementUrl, "--cluster-secret", CLUSTER_SECRET]);
  assert.match(stdout, new RegExp(`${drained}\\s+zone-c\\s+up, drained\\s+0`));
  await readAll("after the drain");
  await assertFullRedundancy("after the drain", new Set([...gone, drained]));
});

test("bytes flipped in a sealed volume file: the scrubber finds the needle and repair rewrites it from a peer", async () => {
  // A volume sealed on the node itself (repair seals volumes only in the map; the scrubber reads
  // what the node has sealed).
  const map = await cluster.clusterMap();
  let choice: { volume: ClusterMap["volumes"][number]; nodeId: NodeId } | undefined;
  for (const volume of map.volumes) {
    const nodeId = volume.replicas[0]!;
    const probe = storeOf(map, nodeId);
    try {
      const statuses = await probe.volumeStatuses();
      if (statuses.some((status) => status.volumeId === volume.volumeId && status.state === "sealed")) choice = { volume, nodeId };
    } finally {
      await probe.close();
    }
    if (choice !== undefined) break;
  }
  assert.ok(choice !== undefined, "a volume is sealed on a node");
  const { volume, nodeId } = choice;
  const nodeName = [...cluster.processes.values()].find((process) => process.nodeId === nodeId)!.name;
  const store = storeOf(map, nodeId);
  const rpc = new RpcClient(store.address, CLUSTER_SECRET);
  try {
    // A sealed volume is full by size, not by count of live needles: pick one that is live.
    const live = (await listAll(store, volume.volumeId)).filter((entry) => !entry.tombstone && entry.dataSizeBytes > 64);
    const victim = live[Math.floor(live.length / 2)]!;
    const file = path.join(cluster.root, nodeName, "disk0", "volumes", `${volume.volumeId}.vol`);
    const bytes = readFileSync(file);
    const at = bytes.indexOf(Buffer.from(victim.needleId, "hex"));
    assert.ok(at > 0, "the needle is in the file");
    const position = at + 16 + 4 + 32; // into the payload
    const handle = openSync(file, "r+");
    try {
      writeSync(handle, Buffer.from([bytes[position]! ^ 0x5a]), 0, 1, position);
    } finally {
      closeSync(handle);
    }
    await assert.rejects(store.readNeedle({ volumeId: volume.volumeId, needleId: victim.needleId }), (error: unknown) => (error as Error).name === "ChecksumMismatch");

    const first = await rpc.call<Array<{ volumeId: number; outcome: string }>>("scrubVolumes", { volumeId: volume.volumeId }, { timeoutMs: 60_000 });
    assert.deepEqual(first.map((result) => result.outcome), ["damaged"], "the scrubber finds the flipped needle");
    const deadline = Date.now() + 60_000;
    for (;;) {
      try {
        await store.readNeedle({ volumeId: volume.volumeId, needleId: victim.needleId });
        break;
      } catch (error) {
        if (Date.now() > deadline) throw error;
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
    }
    const again = await rpc.call<Array<{ volumeId: number; outcome: string; fileChecksumOk?: boolean }>>("scrubVolumes", { volumeId: volume.volumeId }, { timeoutMs: 60_000 });
    assert.deepEqual(again.map((result) => [result.outcome, result.fileChecksumOk]), [["clean", true]], "the rewritten file verifies whole again");
    assert.ok((await repairStatus()).totals.needlesRewritten >= 1);
  } finally {
    rpc.close();
    await store.close();
  }
  await readAll("after the scrubber and repair");
  await assertFullRedundancy("after the scrubber and repair", gone);
});
