// Proves the cluster map in etcd against a real etcd (CAIRN_TEST_ETCD_URL): a leader's reserved
// ids, nodes and volumes (with their erasure-coding scheme and seal) are what the next leader
// loads; the placement service grows volumes over it and a second term serves the same volumes
// with a version no lower than the first term's; a deposed leader's writes are refused
// (LeadershipLost) and change nothing in etcd.
// Skipped with the reason when CAIRN_TEST_ETCD_URL is absent, except under CI=true, where that fails.
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { GIBIBYTE, type NodeId, type VolumeId } from "../base/index.js";
import { EtcdClient, EtcdElection, type HeartbeatRequest, type LeaderTerm, type NeedleStore, type NodeRecord } from "../cluster/index.js";
import { clusterMapPrefix, EtcdClusterMapStore, LeadershipLost } from "./etcd-cluster-map-store.js";
import { PlacementService } from "./placement-service.js";
import { seededRandom } from "./volume-allocator.js";
import type { StoredNode } from "./cluster-map-store.js";

const etcdUrl = process.env.CAIRN_TEST_ETCD_URL;
const SKIP_REASON = "CAIRN_TEST_ETCD_URL is not set (scripts/start-etcd.sh starts a local etcd)";

function storedNode(nodeId: string, zone: string): StoredNode {
  return {
    nodeId: nodeId as NodeId,
    address: `http://127.0.0.1:${9100 + zone.charCodeAt(0)}`,
    zone,
    rack: "r1",
    lastHeartbeatAtMs: 1,
    disks: [{ path: "/disk0", capacityBytes: 200 * GIBIBYTE, freeBytes: 100 * GIBIBYTE, usedBytes: 0 }],
    writeCount: 0,
    writeLatencyMs: 1,
  };
}

/** Win an election on `key` in-process; returns the term and a way to end it. */
async function lead(client: EtcdClient, key: string): Promise<{ term: LeaderTerm; resign: () => Promise<void> }> {
  let elected: (term: LeaderTerm) => void = () => undefined;
  const won = new Promise<LeaderTerm>((resolve) => (elected = resolve));
  const election = new EtcdElection({ client, key, value: "http://test", ttlSeconds: 5, onElected: async (term) => elected(term), onDemoted: async () => undefined });
  election.start();
  return { term: await won, resign: () => election.resign() };
}

function fakeNeedleStore(node: NodeRecord, created: Map<NodeId, Set<VolumeId>>): NeedleStore {
  const volumes = created.get(node.nodeId) ?? new Set<VolumeId>();
  created.set(node.nodeId, volumes);
  return {
    nodeId: node.nodeId,
    createVolume: async (volumeId) => void volumes.add(volumeId),
    writeNeedle: async () => undefined,
    readNeedle: async () => Buffer.alloc(0),
    deleteNeedle: async () => undefined,
    volumeStatuses: async () => [],
    close: async () => undefined,
  };
}

if (etcdUrl === undefined) {
  if (process.env.CI === "true") test("cluster map in etcd runs in CI", () => assert.fail(`CI must run this test, but ${SKIP_REASON}`));
  else test("cluster map in etcd", { skip: SKIP_REASON }, () => {});
} else {
  test("the next leader loads reserved ids, nodes and volumes (ec scheme, seal) the last one wrote", async () => {
    const prefix = `/cairn-test-${randomBytes(6).toString("hex")}`;
    const leaderKey = `${prefix}/placement/leader`;
    const client = new EtcdClient(etcdUrl);
    const first = await lead(client, leaderKey);
    try {
      const store = await EtcdClusterMapStore.load({ client, prefix, leaderKey, term: first.term, onLeadershipLost: () => assert.fail("still leading") });
      const loadedVersion = store.version();
      assert.equal(await store.reserveVolumeId(), 1);
      assert.equal(await store.reserveVolumeId(), 2);
      for (const [nodeId, zone] of [["n-a", "a"], ["n-b", "b"], ["n-c", "c"]] as const) store.putNode(storedNode(nodeId, zone));
      await store.insertVolume({ volumeId: 2 as VolumeId, state: "writable", replicas: ["n-a", "n-b", "n-c"] as NodeId[], ec: { k: 2, m: 1 } });
      assert.equal(await store.sealVolume(2 as VolumeId), true);
      assert.equal(await store.sealVolume(2 as VolumeId), false, "sealing twice changes nothing");
      await store.flush();
      assert.ok(store.version() > loadedVersion, "every durable change raises the version");

      const again = await EtcdClusterMapStore.load({ client, prefix, leaderKey, term: first.term, onLeadershipLost: () => assert.fail("still leading") });
      assert.deepEqual(again.volumes(), [{ volumeId: 2, state: "sealed", replicas: ["n-a", "n-b", "n-c"], ec: { k: 2, m: 1 } }]);
      assert.deepEqual(again.nodes().map((node) => [node.nodeId, node.zone]), [["n-a", "a"], ["n-b", "b"], ["n-c", "c"]]);
      assert.equal(await again.reserveVolumeId(), 3, "ids continue after the reserved ones");
      assert.ok(again.version() >= store.version());
    } finally {
      await first.resign();
      await client.deleteRange(prefix, { prefix: true });
      client.close();
    }
  });

  test("a deposed leader's writes are refused and leave etcd unchanged", async () => {
    const prefix = `/cairn-test-${randomBytes(6).toString("hex")}`;
    const leaderKey = `${prefix}/placement/leader`;
    const client = new EtcdClient(etcdUrl);
    const first = await lead(client, leaderKey);
    let lostCount = 0;
    const stale = await EtcdClusterMapStore.load({ client, prefix, leaderKey, term: first.term, onLeadershipLost: () => lostCount++ });
    stale.putNode(storedNode("n-a", "a"));
    await stale.flush();
    await first.resign(); // the lease is revoked: the key goes, a new leader may come
    const second = await lead(client, leaderKey);
    try {
      const before = await client.range(clusterMapPrefix(prefix), { prefix: true });
      await assert.rejects(stale.reserveVolumeId(), LeadershipLost);
      await assert.rejects(stale.insertVolume({ volumeId: 1 as VolumeId, state: "writable", replicas: ["n-a"] as NodeId[], ec: null }), LeadershipLost);
      assert.equal(lostCount, 1, "the owner is told once");
      const after = await client.range(clusterMapPrefix(prefix), { prefix: true });
      assert.deepEqual(after.kvs, before.kvs);
      const current = await EtcdClusterMapStore.load({ client, prefix, leaderKey, term: second.term, onLeadershipLost: () => assert.fail("leads") });
      assert.equal(await current.reserveVolumeId(), 1, "the refused reservation took no id");
    } finally {
      await second.resign();
      await client.deleteRange(prefix, { prefix: true });
      client.close();
    }
  });

  test("placement grows volumes over etcd, and the next term serves them at no lower version", async () => {
    const prefix = `/cairn-test-${randomBytes(6).toString("hex")}`;
    const leaderKey = `${prefix}/placement/leader`;
    const client = new EtcdClient(etcdUrl);
    const created = new Map<NodeId, Set<VolumeId>>();
    let nowMs = 1_000_000;
    const first = await lead(client, leaderKey);
    try {
      const store = await EtcdClusterMapStore.load({ client, prefix, leaderKey, term: first.term, onLeadershipLost: () => assert.fail("leads") });
      const service = new PlacementService({
        clock: { nowMs: () => nowMs },
        store,
        storeFor: (node) => fakeNeedleStore(node, created),
        replicaCount: 3,
        writableVolumeTarget: 4,
        random: seededRandom(7),
      });
      const nodeIds: NodeId[] = [];
      for (const zone of ["a", "b", "c"]) {
        const request: HeartbeatRequest = { ...storedNode("unused", zone), nodeId: undefined, volumes: [] };
        nodeIds.push(service.heartbeat(request).nodeId);
      }
      const map = await service.growVolumes();
      assert.equal(map.volumes.filter((volume) => volume.state === "writable").length, 4);
      for (const volume of map.volumes) for (const nodeId of volume.replicas) assert.ok(created.get(nodeId)?.has(volume.volumeId), "created on each replica before it is in the map");
      await service.close();
      await store.flush();

      nowMs += 60_000;
      const next = await EtcdClusterMapStore.load({ client, prefix, leaderKey, term: first.term, onLeadershipLost: () => assert.fail("leads") });
      const nextService = new PlacementService({ clock: { nowMs: () => nowMs }, store: next, storeFor: (node) => fakeNeedleStore(node, created) });
      const served = nextService.clusterMap();
      assert.deepEqual(served.volumes, map.volumes);
      assert.deepEqual(served.nodes.map((node) => node.nodeId).sort(), [...nodeIds].sort());
      assert.ok(served.nodes.every((node) => node.state === "up"), "a new term gives every node its grace window");
      assert.ok(served.version >= map.version, `version ${served.version} must not go below ${map.version}`);
      await nextService.close();
    } finally {
      await first.resign();
      await client.deleteRange(prefix, { prefix: true });
      client.close();
    }
  });
}
