// Proves that repair survives a change of placement leader, on a control plane of real processes
// (2 placement instances electing a leader in etcd, metadata in PostgreSQL, 7 data nodes in 3
// zones, zone a with three, 1 gateway): the data node of zone a with the most replicas is killed for good; once the
// leader has persisted its repair tasks (each with the node it chose as target, one of zone a's
// two others) the leader is SIGKILLed; the next leader loads the tasks from etcd and finishes
// each onto the target chosen before, and every replica of the dead node is re-created. Ends with every object MD5-correct and every volume at full
// redundancy (3 up replicas in 3 zones).
// Skipped with the reason when etcd or PostgreSQL is missing, except under CI=true, where that fails.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import pg from "pg";
import { CreateBucketCommand, GetObjectCommand, PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import type { NodeId } from "../../src/base/index.js";
import { RpcClient, type ClusterMap, type RepairStatus } from "../../src/cluster/index.js";
import { s3Client, TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY } from "../helpers/cairn-process.js";
import { CLUSTER_SECRET, TestCluster } from "../helpers/cluster.js";

const postgresUrl = process.env.CAIRN_TEST_POSTGRES_URL;
const etcdUrl = process.env.CAIRN_TEST_ETCD_URL;
const missing = [
  postgresUrl === undefined ? "CAIRN_TEST_POSTGRES_URL is not set (scripts/start-postgres.sh starts a local PostgreSQL)" : undefined,
  etcdUrl === undefined ? "CAIRN_TEST_ETCD_URL is not set (scripts/start-etcd.sh starts a local etcd)" : undefined,
].filter((reason): reason is string => reason !== undefined);
const SKIP_REASON = missing.join("; ");

const NODE_DOWN_AFTER_MS = 3_000;
const NODE_OUT_AFTER_MS = 10_000;
/** Out-timeout (counted again from the new leader's start) + settle + copies, with margin for 2 cores. */
const REPAIR_WAIT_MS_MAX = 150_000;
const BUCKET = "failover";

const md5 = (data: Uint8Array) => createHash("md5").update(data).digest("hex");

if (missing.length > 0) {
  if (process.env.CI === "true") test("repair across a placement failover runs in CI", () => assert.fail(`CI must run this test, but ${SKIP_REASON}`));
  else test("repair across a placement failover", { skip: SKIP_REASON }, () => {});
} else {
  const schema = `rf_${randomBytes(6).toString("hex")}`;
  let cluster: TestCluster;
  let client: S3Client;
  const written = new Map<string, string>();

  /** Ask whichever placement leads (standbys answer NotLeader). */
  async function leaderCall<T>(method: string): Promise<T> {
    let lastError: unknown;
    for (const placement of cluster.placements()) {
      if (placement.child.exitCode !== null || placement.child.signalCode !== null) continue;
      const rpc = new RpcClient(`http://127.0.0.1:${placement.port}`, CLUSTER_SECRET);
      try {
        return await rpc.call<T>(method, {});
      } catch (error) {
        lastError = error;
      } finally {
        rpc.close();
      }
    }
    throw lastError;
  }

  before(async () => {
    cluster = await TestCluster.start({
      etcdUrl: etcdUrl!,
      placementCount: 2,
      dataNodes: [
        ...["a", "b", "c"].flatMap((zone) => [1, 2].map((rack) => ({ name: `dn-${zone}${rack}`, zone: `zone-${zone}`, rack: `rack-${rack}` }))),
        { name: "dn-a3", zone: "zone-a", rack: "rack-3" },
      ],
      gatewayCount: 1,
      nodeDownAfterMs: NODE_DOWN_AFTER_MS,
      volumeSizeBytes: 8 * 1024 * 1024,
      placementFlags: ["--node-out-after-ms", String(NODE_OUT_AFTER_MS)],
      gatewayArgs: ["--meta", postgresUrl!, "--meta-schema", schema],
      gatewayEnv: { CAIRN_ROOT_ACCESS_KEY: TEST_ACCESS_KEY_ID, CAIRN_ROOT_SECRET_KEY: TEST_SECRET_ACCESS_KEY },
    });
    client = s3Client(cluster.endpoint("gateway-1"));
    await client.send(new CreateBucketCommand({ Bucket: BUCKET }));
    for (let index = 0; index < 36; index++) {
      const body = randomBytes(index % 3 === 2 ? 3 * 1024 * 1024 + 7 : 1 + index * 9_000);
      await client.send(new PutObjectCommand({ Bucket: BUCKET, Key: `k/${index}`, Body: body }));
      written.set(`k/${index}`, md5(body));
    }
  });

  after(async () => {
    client?.destroy();
    await cluster?.stop();
    const admin = new pg.Client({ connectionString: postgresUrl });
    await admin.connect();
    await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await admin.end();
  });

  test("repair tasks persisted by one leader are finished onto the same targets by the next", async () => {
    // The zone-a node holding the most replicas, so that several tasks are in flight.
    const before = await cluster.clusterMap();
    const [victim] = ["dn-a1", "dn-a2", "dn-a3"]
      .map((name) => ({ name, count: before.volumes.filter((volume) => volume.replicas.includes(cluster.get(name).nodeId as NodeId)).length }))
      .sort((left, right) => right.count - left.count);
    const dead = cluster.get(victim!.name).nodeId as NodeId;
    await cluster.kill(victim!.name);
    // Wait until the leader has written a task (it is durable in etcd before any copy starts).
    const deadline = Date.now() + REPAIR_WAIT_MS_MAX;
    let tasks: Array<{ volumeId: number; toNodeId: NodeId }> = [];
    let seenAtMs: number | undefined;
    // The leader writes a pass's tasks one after another: read them again a second after the first.
    while (seenAtMs === undefined || Date.now() - seenAtMs < 1_000) {
      assert.ok(Date.now() < deadline, "the leader planned a repair task in time");
      try {
        const status = await leaderCall<RepairStatus>("repairStatus");
        const entries = status.volumes.filter((volume) => volume.task !== undefined);
        for (const entry of entries) {
          // Caught while they wait out the settle time: copies and swaps are the next leader's.
          assert.ok(entry.task!.phase === "settling" || entry.task!.phase === "queued", `task caught before copying (${entry.task!.phase})`);
        }
        tasks = entries.map((entry) => ({ volumeId: entry.volumeId, toNodeId: entry.task!.toNodeId }));
        if (tasks.length > 0) seenAtMs ??= Date.now();
      } catch (error) {
        if (error instanceof assert.AssertionError) throw error;
        // No leader this instant; ask again.
      }
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    const leader = await cluster.leaderName();
    assert.ok(leader !== undefined);
    await cluster.kill(leader);

    const map = await cluster.waitFor((candidate) => candidate.volumes.every((volume) => !volume.replicas.includes(dead)), "every replica of the dead node re-created", REPAIR_WAIT_MS_MAX);
    assert.notEqual(await cluster.leaderName(), leader, "another placement leads");
    assert.ok(new Set(tasks.map((task) => task.toNodeId)).size >= 1);
    for (const task of tasks) {
      const repaired = map.volumes.find((volume) => volume.volumeId === task.volumeId)!;
      assert.ok(repaired.replicas.includes(task.toNodeId), `volume ${task.volumeId} went to ${task.toNodeId}, the target chosen before the failover`);
    }
    assert.ok(tasks.length >= 2, `several tasks were in flight at the failover (${tasks.length})`);
    assertFullRedundancy(map);
    for (const [key, expected] of written) {
      const got = await client.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
      assert.equal(md5(await got.Body!.transformToByteArray()), expected, key);
    }
  });

  function assertFullRedundancy(map: ClusterMap): void {
    const nodes = new Map(map.nodes.map((node) => [node.nodeId, node]));
    for (const volume of map.volumes) {
      assert.equal(volume.replicas.length, map.replicaCount, `volume ${volume.volumeId} has every replica`);
      for (const nodeId of volume.replicas) assert.equal(nodes.get(nodeId)?.state, "up", `volume ${volume.volumeId}: ${nodeId} is up`);
      assert.equal(new Set(volume.replicas.map((nodeId) => nodes.get(nodeId)!.zone)).size, volume.replicas.length, `volume ${volume.volumeId} spans distinct zones`);
    }
  }
}
