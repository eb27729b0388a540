// Proves the gateway side of placement against a real placement RPC server (createRpcServer
// over HTTP on 127.0.0.1:0, a fake clock inside the service) with fake per-node stores:
// writableVolume hands out only volumes whose replicas are all up, round-robin, and asks
// placement to grow when none is; replicasOf orders same-zone first and down last; volumeFull
// stops a volume being handed out; and with the placement server closed, both keep answering
// from the cached map.
import { test } from "node:test";
import assert from "node:assert/strict";
import { GIBIBYTE, type NodeId, type VolumeId } from "../base/index.js";
import { createRpcServer, type HeartbeatRequest, type NeedleStore, type NodeRecord, type VolumeStatus } from "../cluster/index.js";
import { ClusterMapStore } from "./cluster-map-store.js";
import { ClusterPlacement, NoWritableVolume } from "./cluster-placement.js";
import { UnknownVolume } from "./placement.js";
import { createPlacementRpcRoutes, PlacementService } from "./placement-service.js";
import { seededRandom } from "./volume-allocator.js";

const SECRET = "test-cluster-secret";
const DOWN_AFTER_MS = 15_000;

class FakeNeedleStore implements NeedleStore {
  readonly volumes = new Set<VolumeId>();
  constructor(readonly nodeId: NodeId) {}
  async createVolume(volumeId: VolumeId): Promise<void> {
    this.volumes.add(volumeId);
  }
  async writeNeedle(): Promise<void> {}
  async readNeedle(): Promise<Buffer> {
    return Buffer.from(this.nodeId);
  }
  async deleteNeedle(): Promise<void> {}
  async volumeStatuses(): Promise<VolumeStatus[]> {
    return [];
  }
  async close(): Promise<void> {}
}

function heartbeatOf(zone: string, nodeId?: NodeId, writeLatencyMs = 2): HeartbeatRequest {
  return {
    nodeId,
    address: `http://127.0.0.1:${9100 + zone.charCodeAt(0)}`,
    zone,
    rack: "r1",
    disks: [{ path: "/disk0", capacityBytes: 200 * GIBIBYTE, freeBytes: 100 * GIBIBYTE, usedBytes: 0 }],
    volumes: [],
    writeCount: 0,
    writeLatencyMs,
  };
}

async function startCluster(options: { zones: string[]; writableVolumeTarget?: number; grow?: boolean }) {
  let nowMs = 5_000_000;
  const mapStore = ClusterMapStore.open(":memory:");
  const service = new PlacementService({
    clock: { nowMs: () => nowMs },
    store: mapStore,
    storeFor: (node) => new FakeNeedleStore(node.nodeId),
    replicaCount: 3,
    writableVolumeTarget: options.writableVolumeTarget ?? 4,
    nodeDownAfterMs: DOWN_AFTER_MS,
    random: seededRandom(77),
  });
  const nodes: Array<{ nodeId: NodeId; zone: string }> = options.zones.map((zone) => ({ nodeId: service.heartbeat(heartbeatOf(zone)).nodeId, zone }));
  if (options.grow ?? true) await service.growVolumes();
  const server = createRpcServer({ secret: SECRET, routes: createPlacementRpcRoutes(service), blobSizeBytesMax: 1024 });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  assert.ok(typeof address === "object" && address !== null);
  const gatewayStores = new Map<NodeId, FakeNeedleStore>();
  const placement = new ClusterPlacement({
    placementUrls: [`http://127.0.0.1:${address.port}`],
    secret: SECRET,
    zone: "b",
    refreshIntervalMs: 60_000, // tests refresh on purpose
    storeFor: (node: NodeRecord) => {
      assert.ok(!gatewayStores.has(node.nodeId), "one store per node");
      const store = new FakeNeedleStore(node.nodeId);
      gatewayStores.set(node.nodeId, store);
      return store;
    },
  });
  let serverClosed = false;
  const closeServer = async () => {
    if (serverClosed) return;
    serverClosed = true;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  };
  return {
    service,
    placement,
    nodes,
    zoneOf: (nodeId: NodeId) => nodes.find((node) => node.nodeId === nodeId)!.zone,
    /** Let time pass; every node except `silent` heartbeats. */
    advancePast(silent: NodeId[]) {
      nowMs += DOWN_AFTER_MS + 1;
      for (const node of nodes) if (!silent.includes(node.nodeId)) service.heartbeat(heartbeatOf(node.zone, node.nodeId));
    },
    closeServer,
    async close() {
      await placement.close();
      await closeServer();
      await service.close();
      mapStore.close();
    },
  };
}

test("writableVolume hands out, round-robin, only volumes whose replicas are all up", async () => {
  const cluster = await startCluster({ zones: ["a", "a", "b", "b", "c", "c"] });
  try {
    await cluster.placement.refresh();
    const seen = new Set<number>();
    for (let index = 0; index < 8; index++) seen.add((await cluster.placement.writableVolume()).volumeId);
    assert.equal(seen.size, 4, "round-robin covers every writable volume");

    // One node goes silent; placement grows replacements; the gateway avoids its volumes.
    const silent = cluster.nodes[0]!.nodeId;
    cluster.advancePast([silent]);
    await cluster.service.tick();
    const map = await cluster.placement.refresh();
    assert.equal(map.nodes.find((node) => node.nodeId === silent)!.state, "down");
    for (let index = 0; index < 12; index++) {
      const choice = await cluster.placement.writableVolume();
      const volume = map.volumes.find((entry) => entry.volumeId === choice.volumeId)!;
      assert.ok(!volume.replicas.includes(silent), `volume ${choice.volumeId} has a down replica`);
      assert.equal(choice.replicas.length, 3);
    }
  } finally {
    await cluster.close();
  }
});

test("writableVolume avoids excluded volumes while others exist", async () => {
  const cluster = await startCluster({ zones: ["a", "b", "c"], writableVolumeTarget: 3 });
  try {
    const exclude = new Set([1, 2] as VolumeId[]);
    for (let index = 0; index < 5; index++) assert.equal((await cluster.placement.writableVolume({ exclude })).volumeId, 3);
    const all = new Set([1, 2, 3] as VolumeId[]);
    assert.ok(all.has((await cluster.placement.writableVolume({ exclude: all })).volumeId), "falls back rather than failing");
  } finally {
    await cluster.close();
  }
});

test("writableVolume asks placement to grow when the map has no writable volume", async () => {
  const cluster = await startCluster({ zones: ["a", "b", "c"], grow: false });
  try {
    const choice = await cluster.placement.writableVolume();
    assert.equal(choice.replicas.length, 3);
    assert.equal(cluster.placement.currentMap()!.volumes.length, 4);
  } finally {
    await cluster.close();
  }
});

test("writableVolume throws NoWritableVolume when placement cannot grow one", async () => {
  const cluster = await startCluster({ zones: ["a", "b"], grow: false });
  try {
    await assert.rejects(cluster.placement.writableVolume(), NoWritableVolume);
  } finally {
    await cluster.close();
  }
});

test("replicasOf orders the gateway's zone first and down replicas last", async () => {
  const cluster = await startCluster({ zones: ["a", "b", "c"], writableVolumeTarget: 1 });
  try {
    const volumeId = 1 as VolumeId;
    const up = await cluster.placement.replicasOf(volumeId);
    assert.deepEqual(up.replicas.map((store) => cluster.zoneOf(store.nodeId)).slice(0, 1), ["b"]);
    assert.equal(up.replicas.length, 3);

    // Among the other zones, lower write latency first.
    const nodeA = cluster.nodes.find((node) => node.zone === "a")!.nodeId;
    const nodeC = cluster.nodes.find((node) => node.zone === "c")!.nodeId;
    cluster.service.heartbeat(heartbeatOf("a", nodeA, 50));
    cluster.service.heartbeat(heartbeatOf("c", nodeC, 1));
    await cluster.placement.refresh();
    assert.deepEqual((await cluster.placement.replicasOf(volumeId)).replicas.map((store) => cluster.zoneOf(store.nodeId)), ["b", "c", "a"]);

    // The same-zone node goes down: still listed, but last.
    const nodeB = cluster.nodes.find((node) => node.zone === "b")!.nodeId;
    cluster.advancePast([nodeB]);
    cluster.service.heartbeat(heartbeatOf("a", nodeA, 50));
    await cluster.placement.refresh();
    const ordered = (await cluster.placement.replicasOf(volumeId)).replicas.map((store) => store.nodeId);
    assert.deepEqual(ordered, [nodeC, nodeA, nodeB]);
    // One store per node, reused across calls (storeFor asserts it).
    assert.equal((await cluster.placement.replicasOf(volumeId)).replicas[0], (await cluster.placement.replicasOf(volumeId)).replicas[0]);

    await assert.rejects(cluster.placement.replicasOf(999 as VolumeId), UnknownVolume);
  } finally {
    await cluster.close();
  }
});

test("volumeFull stops handing the volume out and placement seals it", async () => {
  const cluster = await startCluster({ zones: ["a", "b", "c"], writableVolumeTarget: 2 });
  try {
    await cluster.placement.refresh();
    await cluster.placement.volumeFull(1 as VolumeId);
    const map = cluster.placement.currentMap()!;
    assert.equal(map.volumes.find((volume) => volume.volumeId === 1)!.state, "sealed");
    for (let index = 0; index < 6; index++) assert.notEqual((await cluster.placement.writableVolume()).volumeId, 1);
  } finally {
    await cluster.close();
  }
});

test("with placement unreachable, reads and writes continue from the cached map", async () => {
  const cluster = await startCluster({ zones: ["a", "b", "c"] });
  try {
    const map = await cluster.placement.refresh();
    await cluster.closeServer();
    await assert.rejects(cluster.placement.refresh());
    const replicas = await cluster.placement.replicasOf(1 as VolumeId);
    assert.equal(replicas.replicas.length, 3);
    const choice = await cluster.placement.writableVolume();
    assert.ok(map.volumes.some((volume) => volume.volumeId === choice.volumeId && volume.state === "writable"));
    // A volume the cache has never seen cannot be found while placement is away.
    await assert.rejects(cluster.placement.replicasOf(999 as VolumeId), UnknownVolume);
    // Reporting a full volume still takes it out of this gateway's rotation.
    await cluster.placement.volumeFull(choice.volumeId);
    for (let index = 0; index < 6; index++) assert.notEqual((await cluster.placement.writableVolume()).volumeId, choice.volumeId);
    assert.equal(cluster.placement.currentMap()!.version, map.version);
  } finally {
    await cluster.close();
  }
});
