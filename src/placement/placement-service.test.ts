// Proves the placement service on an in-memory cluster map, a fake clock and in-memory fake
// NeedleStores: heartbeats register nodes and keep their ids; a silent node turns down once the
// clock passes the threshold; growth keeps the target of writable volumes with replicas in
// distinct zones, creating each volume on every replica first; a full volume is sealed and
// replaced; heartbeats that report a sealed volume seal it; the map version only grows; and
// the map survives a reopen of its SQLite file.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { GIBIBYTE, type NeedleId, type NodeId, type VolumeId } from "../base/index.js";
import type { HeartbeatRequest, NeedleStore, NodeRecord, VolumeStatus } from "../cluster/index.js";
import { ClusterMapStore } from "./cluster-map-store.js";
import { PlacementService, parseHeartbeatRequest } from "./placement-service.js";
import { seededRandom } from "./volume-allocator.js";

const DOWN_AFTER_MS = 15_000;

class FakeNeedleStore implements NeedleStore {
  readonly volumes = new Set<VolumeId>();
  failCreate = false;
  closed = false;
  constructor(readonly nodeId: NodeId) {}
  async createVolume(volumeId: VolumeId): Promise<void> {
    if (this.failCreate) throw new Error(`node ${this.nodeId} refuses createVolume`);
    this.volumes.add(volumeId);
  }
  async writeNeedle(): Promise<void> {}
  async readNeedle(input: { needleId: NeedleId }): Promise<Buffer> {
    return Buffer.from(`${this.nodeId}:${input.needleId}`);
  }
  async deleteNeedle(): Promise<void> {}
  async volumeStatuses(): Promise<VolumeStatus[]> {
    return [];
  }
  async close(): Promise<void> {
    this.closed = true;
  }
}

function heartbeatOf(options: { nodeId?: string; zone: string; rack?: string; port?: number; volumes?: VolumeStatus[]; freeBytes?: number }): HeartbeatRequest {
  return {
    nodeId: options.nodeId as NodeId | undefined,
    address: `http://127.0.0.1:${options.port ?? 9100}`,
    zone: options.zone,
    rack: options.rack ?? "r1",
    disks: [{ path: "/disk0", capacityBytes: 200 * GIBIBYTE, freeBytes: options.freeBytes ?? 100 * GIBIBYTE, usedBytes: 0 }],
    volumes: options.volumes ?? [],
    writeCount: 0,
    writeLatencyMs: 2,
  };
}

function harness(options: { storePath?: string; replicaCount?: number; writableVolumeTarget?: number } = {}) {
  let nowMs = 1_000_000;
  const clock = { nowMs: () => nowMs };
  const stores = new Map<NodeId, FakeNeedleStore>();
  const storeFor = (node: NodeRecord): FakeNeedleStore => {
    let store = stores.get(node.nodeId);
    if (store === undefined) {
      store = new FakeNeedleStore(node.nodeId);
      stores.set(node.nodeId, store);
    }
    return store;
  };
  const mapStore = ClusterMapStore.open(options.storePath ?? ":memory:");
  const service = new PlacementService({
    clock,
    store: mapStore,
    storeFor,
    replicaCount: options.replicaCount ?? 3,
    writableVolumeTarget: options.writableVolumeTarget ?? 4,
    nodeDownAfterMs: DOWN_AFTER_MS,
    random: seededRandom(1234),
  });
  return {
    service,
    mapStore,
    stores,
    storeFor,
    advance: (ms: number) => (nowMs += ms),
    async close() {
      await service.close();
      mapStore.close();
    },
  };
}

/** Six nodes: two per zone a, b, c; returns their ids in order. */
function registerSixNodes(service: PlacementService): NodeId[] {
  const ids: NodeId[] = [];
  for (const [index, zone] of ["a", "a", "b", "b", "c", "c"].entries()) {
    ids.push(service.heartbeat(heartbeatOf({ zone, rack: `r${index % 2}`, port: 9100 + index })).nodeId);
  }
  return ids;
}

test("a first heartbeat assigns a node id and later heartbeats keep it", async () => {
  const h = harness();
  try {
    const first = h.service.heartbeat(heartbeatOf({ zone: "a" }));
    assert.match(first.nodeId, /^node-[0-9a-f]{16}$/);
    const again = h.service.heartbeat({ ...heartbeatOf({ zone: "a", port: 9999 }), nodeId: first.nodeId });
    assert.equal(again.nodeId, first.nodeId);
    assert.ok(again.mapVersion > first.mapVersion);
    const map = h.service.clusterMap();
    assert.equal(map.nodes.length, 1);
    assert.equal(map.nodes[0]!.address, "http://127.0.0.1:9999", "a known id updates the address");
    // A node that kept its id while placement lost its map is adopted under that id.
    const adopted = h.service.heartbeat(heartbeatOf({ nodeId: "node-feedfacefeedface", zone: "b" }));
    assert.equal(adopted.nodeId, "node-feedfacefeedface");
    assert.equal(h.service.clusterMap().nodes.length, 2);
  } finally {
    await h.close();
  }
});

test("a node that misses heartbeats past the threshold is down, and up again when it returns", async () => {
  const h = harness();
  try {
    const [quiet, chatty] = [h.service.heartbeat(heartbeatOf({ zone: "a" })).nodeId, h.service.heartbeat(heartbeatOf({ zone: "b" })).nodeId];
    const stateOf = (nodeId: NodeId) => h.service.clusterMap().nodes.find((node) => node.nodeId === nodeId)!.state;
    assert.equal(stateOf(quiet), "up");
    h.advance(DOWN_AFTER_MS - 1);
    h.service.heartbeat({ ...heartbeatOf({ zone: "b" }), nodeId: chatty });
    assert.equal(stateOf(quiet), "up");
    const versionBefore = h.service.clusterMap().version;
    h.advance(2);
    assert.equal(stateOf(quiet), "down");
    assert.equal(stateOf(chatty), "up");
    assert.ok(h.service.clusterMap().version > versionBefore, "going down is a map change");
    h.service.heartbeat({ ...heartbeatOf({ zone: "a" }), nodeId: quiet });
    assert.equal(stateOf(quiet), "up");
  } finally {
    await h.close();
  }
});

test("growth creates the target of writable volumes on every replica, in distinct zones", async () => {
  const h = harness();
  try {
    const ids = registerSixNodes(h.service);
    const versionBefore = h.service.clusterMap().version;
    const map = await h.service.growVolumes();
    assert.ok(map.version > versionBefore);
    const writable = map.volumes.filter((volume) => volume.state === "writable");
    assert.equal(writable.length, 4);
    assert.deepEqual(writable.map((volume) => volume.volumeId), [1, 2, 3, 4]);
    const zoneOf = new Map(map.nodes.map((node) => [node.nodeId, node.zone]));
    for (const volume of writable) {
      assert.equal(volume.replicas.length, 3);
      assert.equal(new Set(volume.replicas.map((nodeId) => zoneOf.get(nodeId))).size, 3, `volume ${volume.volumeId}`);
      for (const nodeId of volume.replicas) assert.ok(h.stores.get(nodeId)!.volumes.has(volume.volumeId), `created on ${nodeId}`);
    }
    assert.ok(ids.length === 6);
    // Nothing to do a second time.
    assert.equal((await h.service.growVolumes()).volumes.length, 4);
  } finally {
    await h.close();
  }
});

test("growth refuses to create under-replicated volumes and resumes when nodes arrive", async () => {
  const h = harness();
  try {
    h.service.heartbeat(heartbeatOf({ zone: "a" }));
    h.service.heartbeat(heartbeatOf({ zone: "b" }));
    assert.equal((await h.service.growVolumes()).volumes.length, 0);
    h.service.heartbeat(heartbeatOf({ zone: "c" }));
    await h.service.tick();
    assert.equal(h.service.clusterMap().volumes.length, 0, "no background growth while nodes may still be registering");
    h.advance(DOWN_AFTER_MS);
    for (const zone of ["a", "b", "c"]) h.service.heartbeat(heartbeatOf({ zone }));
    await h.service.tick();
    assert.ok(h.service.clusterMap().volumes.length >= 4);
  } finally {
    await h.close();
  }
});

test("a replica that fails createVolume is replaced by another node", async () => {
  const h = harness({ writableVolumeTarget: 1 });
  try {
    const ids = registerSixNodes(h.service);
    const broken = ids[0]!;
    const node = h.service.clusterMap().nodes.find((entry) => entry.nodeId === broken)!;
    h.storeFor(node).failCreate = true;
    // Make the broken node by far the most attractive so the first draw picks it.
    h.service.heartbeat({ ...heartbeatOf({ zone: "a", rack: "r0", freeBytes: 1_000_000 * GIBIBYTE }), nodeId: broken });
    const map = await h.service.growVolumes();
    assert.equal(map.volumes.length, 1);
    assert.ok(!map.volumes[0]!.replicas.includes(broken));
    assert.equal(new Set(map.volumes[0]!.replicas.map((id) => map.nodes.find((entry) => entry.nodeId === id)!.zone)).size, 3);
  } finally {
    await h.close();
  }
});

test("volumeFull seals the volume and grows a replacement", async () => {
  const h = harness();
  try {
    registerSixNodes(h.service);
    await h.service.growVolumes();
    const versionBefore = h.service.clusterMap().version;
    await h.service.volumeFull(2 as VolumeId);
    const map = h.service.clusterMap();
    assert.ok(map.version > versionBefore);
    assert.equal(map.volumes.find((volume) => volume.volumeId === 2)!.state, "sealed");
    assert.equal(map.volumes.filter((volume) => volume.state === "writable").length, 4);
    assert.equal(Math.max(...map.volumes.map((volume) => volume.volumeId)), 5);
  } finally {
    await h.close();
  }
});

test("a heartbeat reporting a sealed volume seals it, only from a replica of it", async () => {
  const h = harness({ writableVolumeTarget: 1 });
  try {
    const ids = registerSixNodes(h.service);
    const [volume] = (await h.service.growVolumes()).volumes;
    const outsider = ids.find((nodeId) => !volume!.replicas.includes(nodeId))!;
    const sealedStatus: VolumeStatus = { volumeId: volume!.volumeId, state: "sealed", sizeBytes: 1, needleCount: 1, deletedNeedleCount: 0 };
    const outsiderZone = h.service.clusterMap().nodes.find((node) => node.nodeId === outsider)!.zone;
    h.service.heartbeat({ ...heartbeatOf({ zone: outsiderZone, volumes: [sealedStatus] }), nodeId: outsider });
    assert.equal(h.service.clusterMap().volumes[0]!.state, "writable", "an orphan elsewhere does not seal the volume");
    const replica = volume!.replicas[1]!;
    const replicaZone = h.service.clusterMap().nodes.find((node) => node.nodeId === replica)!.zone;
    h.service.heartbeat({ ...heartbeatOf({ zone: replicaZone, volumes: [sealedStatus] }), nodeId: replica });
    assert.equal(h.service.clusterMap().volumes[0]!.state, "sealed");
  } finally {
    await h.close();
  }
});

test("writable volumes with a down replica do not count toward the target", async () => {
  const h = harness();
  try {
    const ids = registerSixNodes(h.service);
    await h.service.growVolumes();
    // Everyone but the first node keeps heartbeating.
    h.advance(DOWN_AFTER_MS + 1);
    for (const [index, nodeId] of ids.entries()) {
      if (index === 0) continue;
      h.service.heartbeat({ ...heartbeatOf({ zone: ["a", "a", "b", "b", "c", "c"][index]!, rack: `r${index % 2}` }), nodeId });
    }
    await h.service.tick();
    const map = h.service.clusterMap();
    const up = new Set(map.nodes.filter((node) => node.state === "up").map((node) => node.nodeId));
    const healthy = map.volumes.filter((volume) => volume.state === "writable" && volume.replicas.every((nodeId) => up.has(nodeId)));
    assert.equal(healthy.length, 4);
    for (const volume of map.volumes.filter((entry) => entry.volumeId > 4)) assert.ok(!volume.replicas.includes(ids[0]!));
  } finally {
    await h.close();
  }
});

test("reportDamage keeps the report for repair", async () => {
  const h = harness();
  try {
    h.service.reportDamage({ volumeId: 1 as VolumeId, needleId: "ab", nodeId: "node-1" as NodeId, reason: "checksum-mismatch" });
    assert.equal(h.service.damageReports().length, 1);
  } finally {
    await h.close();
  }
});

test("the cluster map and volume ids survive a reopen", async () => {
  const directory = await mkdtemp(path.join(tmpdir(), "cairn-placement-"));
  const storePath = path.join(directory, "cluster-map.sqlite");
  try {
    let h = harness({ storePath, writableVolumeTarget: 2 });
    registerSixNodes(h.service);
    const before = await h.service.growVolumes();
    await h.close();
    h = harness({ storePath, writableVolumeTarget: 2 });
    const after = h.service.clusterMap();
    assert.deepEqual(after.volumes, before.volumes);
    assert.equal(after.nodes.length, 6);
    assert.ok(after.version >= before.version);
    // Reopened nodes get a grace window rather than all showing down at once.
    assert.ok(after.nodes.every((node) => node.state === "up"));
    await h.service.volumeFull(1 as VolumeId);
    assert.equal(Math.max(...h.service.clusterMap().volumes.map((volume) => volume.volumeId)), 3, "ids are never reused");
    await h.close();
  } finally {
    await rm(directory, { recursive: true, force: true });
  }
});

test("heartbeat bodies are validated at the edge", () => {
  assert.throws(() => parseHeartbeatRequest({ address: "x" }), { name: "InvalidPlacementRequest" });
  assert.throws(() => parseHeartbeatRequest({ ...heartbeatOf({ zone: "a" }), nodeId: "bad id!" }), { name: "InvalidPlacementRequest" });
  const parsed = parseHeartbeatRequest(JSON.parse(JSON.stringify(heartbeatOf({ zone: "a" }))));
  assert.equal(parsed.nodeId, undefined);
  assert.equal(parsed.zone, "a");
});
