// Proves that repair's records in the etcd cluster map (CAIRN_TEST_ETCD_URL) are what the next
// placement leader loads: a task in progress with its chosen target, the draining nodes, and a
// replica swap, which removes its task in the same transaction.
// Skipped with the reason when CAIRN_TEST_ETCD_URL is absent, except under CI=true, where that fails.
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { GIBIBYTE, type NodeId } from "../src/base/index.js";
import { EtcdClient, EtcdElection, type LeaderTerm } from "../src/cluster/index.js";
import { EtcdClusterMapStore, type StoredNode } from "../src/placement/index.js";

const etcdUrl = process.env.CAIRN_TEST_ETCD_URL;
const SKIP_REASON = "CAIRN_TEST_ETCD_URL is not set (scripts/start-etcd.sh starts a local etcd)";

function storedNode(nodeId: string, zone: string): StoredNode {
  return {
    nodeId: nodeId as NodeId,
    address: `http://${nodeId}`,
    zone,
    rack: "r1",
    lastHeartbeatAtMs: 1,
    disks: [{ path: "/disk0", capacityBytes: 200 * GIBIBYTE, freeBytes: 100 * GIBIBYTE, usedBytes: 0 }],
    writeCount: 0,
    writeLatencyMs: 1,
  };
}

async function lead(client: EtcdClient, key: string): Promise<{ term: LeaderTerm; resign: () => Promise<void> }> {
  let elected: (term: LeaderTerm) => void = () => undefined;
  const won = new Promise<LeaderTerm>((resolve) => (elected = resolve));
  const election = new EtcdElection({ client, key, value: "http://test", ttlSeconds: 5, onElected: async (term) => elected(term), onDemoted: async () => undefined });
  election.start();
  return { term: await won, resign: () => election.resign() };
}

if (etcdUrl === undefined) {
  if (process.env.CI === "true") test("repair records in etcd run in CI", () => assert.fail(`CI must run this test, but ${SKIP_REASON}`));
  else test("repair records in etcd", { skip: SKIP_REASON }, () => {});
} else {
  test("the next leader loads repair tasks and draining nodes; a replica swap removes its task", async () => {
    const prefix = `/cairn-test-${randomBytes(6).toString("hex")}`;
    const leaderKey = `${prefix}/placement/leader`;
    const client = new EtcdClient(etcdUrl);
    const leader = await lead(client, leaderKey);
    const load = () => EtcdClusterMapStore.load({ client, prefix, leaderKey, term: leader.term, onLeadershipLost: () => assert.fail("still leading") });
    try {
      const store = await load();
      for (const [nodeId, zone] of [["n-a", "a"], ["n-b", "b"], ["n-c", "c"], ["n-d", "c"]] as const) store.putNode(storedNode(nodeId, zone));
      const volumeId = await store.reserveVolumeId();
      await store.insertVolume({ volumeId, state: "writable", replicas: ["n-a", "n-b", "n-c"] as NodeId[], ec: null });
      const task = { volumeId, kind: "replace" as const, fromNodeId: "n-c" as NodeId, toNodeId: "n-d" as NodeId, createdAtMs: 1234 };
      assert.equal(await store.insertRepairTask(task), true);
      assert.equal(await store.insertRepairTask({ ...task, toNodeId: "n-a" as NodeId }), false, "one task per volume");
      assert.equal(await store.setDraining("n-b" as NodeId, 99), true);
      assert.equal(await store.setDraining("n-b" as NodeId, 100), false, "draining twice changes nothing");

      const next = await load();
      assert.deepEqual(next.repairTasks(), [task], "the task and its target survive a change of leader");
      assert.deepEqual([...next.drainingNodes()], ["n-b"]);

      assert.equal(await next.replaceReplica(volumeId, "n-c" as NodeId, "n-d" as NodeId), true);
      assert.equal(await next.replaceReplica(volumeId, "n-c" as NodeId, "n-d" as NodeId), false, "a second swap is moot");
      const after = await load();
      assert.deepEqual(after.volume(volumeId)?.replicas, ["n-a", "n-b", "n-d"], "the target took the old replica's place");
      assert.deepEqual(after.repairTasks(), [], "the swap removed the task");
      assert.equal(after.node("n-d" as NodeId)?.zone, "c", "the target's record is stored with the volume");
    } finally {
      await leader.resign();
      await client.deleteRange(prefix, { prefix: true });
      client.close();
    }
  });
}
