// Proves the repair planner on real data-node engines (DataNode over temporary disks, called
// in-process) and a real placement service on a SQLite cluster map, with a hand-driven clock:
// - a node out past the out-timeout has its replica re-created on a node of the missing zone,
//   with every live needle copied, tombstones copied, and deleted needles never copied back
//   (also those only one replica had the tombstone for, which the others then get);
// - a replica that missed deletes while it was down gets their tombstones when it comes back;
// - a rotted needle in a sealed replica is rewritten in place from a healthy replica (the
//   sealed file's whole checksum holds again); a second rotted copy is never used as a source;
// - a placement restarted mid-task resumes it onto the node it chose;
// - a drained node leaves every replica set and takes no new volume;
// - repair and drain seal the volume on the data nodes of every reachable replica and of the
//   target (its footer verifies), and skip a down replica;
// - a replica whose volume file is gone from its node (a replaced disk) is re-created elsewhere
//   once the node comes back;
// - copies are paced to the configured bytes per second;
// - a new, empty node in a cluster of nearly full ones receives the new volumes first;
// - an erasure-coded volume whose shard node is out has that shard rebuilt by decoding on a node
//   of the same zone, and a rotted shard is rebuilt in place.
import { test } from "node:test";
import assert from "node:assert/strict";
import { open, rm } from "node:fs/promises";
import { join } from "node:path";
import { crc32, GIBIBYTE, newNeedleId, type NeedleId, type NodeId, type VolumeId } from "../src/base/index.js";
import { ChecksumMismatch, type NeedleListEntry, type NodeRecord } from "../src/cluster/index.js";
import { DataNode } from "../src/datanode/index.js";
import { ReedSolomon, splitIntoDataShards } from "../src/ec/index.js";
import { ClusterMapStore, PlacementService, REPAIR_SETTLE_MS, seededRandom } from "../src/placement/index.js";
import { makeDataDirectory, removeDataDirectory } from "./helpers/cairn-process.js";

const DOWN_AFTER_MS = 3_000;
const OUT_AFTER_MS = 20_000;
const ZONES: Record<string, string> = { "node-a": "zone-a", "node-b": "zone-b", "node-c": "zone-c", "node-d": "zone-c", "node-e": "zone-c" };
/** Tiny volumes (test-only option) so a handful of needles seals one. */
const VOLUME_SIZE_BYTES = 64 * 1024;

interface Harness {
  nodes: Map<NodeId, DataNode>;
  service: PlacementService;
  advance(ms: number): void;
  /** Heartbeat every node not in `silent` (with its real volume statuses). */
  heartbeat(silent?: ReadonlySet<NodeId>): Promise<void>;
  /** The disk directory of a node's engine. */
  diskOf(nodeId: NodeId): string;
  /** `count` passes of heartbeat + tick + repair, one second apart. */
  passes(count: number, silent?: ReadonlySet<NodeId>): Promise<void>;
  /** Heartbeat and tick until `done` holds (bounded passes), waiting for each repair pass. */
  settle(done: () => boolean, silent?: ReadonlySet<NodeId>): Promise<void>;
  reopenPlacement(): Promise<void>;
  /** Close a node's engine, run `change` on its disk, open it again. */
  reopenNode(nodeId: NodeId, change: (disk: string) => Promise<void>): Promise<void>;
  close(): Promise<void>;
}

/** The data node sealed the volume too (footer verifies), so its scrubber and compactor take it. */
async function assertSealedOnNode(node: DataNode, volumeId: VolumeId, nodeId: NodeId): Promise<void> {
  const status = (await node.volumeStatuses()).find((candidate) => candidate.volumeId === volumeId);
  assert.equal(status?.state, "sealed", `volume ${volumeId} sealed on ${nodeId}'s data node`);
  assert.ok(node.scrubbableVolumeIds().includes(volumeId), `${nodeId}'s scrubber reads volume ${volumeId}`);
  assert.equal((await node.verifySealedVolume(volumeId)).ok, true, `volume ${volumeId}'s footer verifies on ${nodeId}`);
}

async function harness(
  options: { nodeIds?: string[]; writableVolumeTarget?: number; freeBytesOf?: (nodeId: NodeId) => number; repairCopyBytesPerSecond?: number } = {},
): Promise<Harness> {
  const root = makeDataDirectory("repair");
  let nowMs = 1_000_000;
  const clock = { nowMs: () => nowMs };
  const nodes = new Map<NodeId, DataNode>();
  for (const nodeId of options.nodeIds ?? ["node-a", "node-b", "node-c", "node-d"]) {
    nodes.set(
      nodeId as NodeId,
      await DataNode.open({ nodeId: nodeId as NodeId, diskDirectories: [join(root, nodeId)], volumeSizeBytes: VOLUME_SIZE_BYTES, allowVolumeSizeBelowMinimumForTests: true }),
    );
  }
  const mapPath = join(root, "cluster-map.sqlite");
  // The engines are shared by every placement instance: closing a placement must not close them.
  // (looked up at each call, so a test may reopen a node's engine).
  const storeFor = (node: NodeRecord) =>
    new Proxy({} as DataNode, {
      get: (_target, name) => {
        if (name === "close") return async () => undefined;
        const engine = nodes.get(node.nodeId)!;
        const value: unknown = Reflect.get(engine, name, engine);
        return typeof value === "function" ? value.bind(engine) : value;
      },
    });
  const open = () =>
    new PlacementService({
      clock,
      store: ClusterMapStore.open(mapPath),
      storeFor,
      replicaCount: 3,
      writableVolumeTarget: options.writableVolumeTarget ?? 1,
      nodeDownAfterMs: DOWN_AFTER_MS,
      nodeOutAfterMs: OUT_AFTER_MS,
      ...(options.repairCopyBytesPerSecond !== undefined ? { repairCopyBytesPerSecond: options.repairCopyBytesPerSecond } : {}),
      random: seededRandom(7),
    });
  let service = open();
  const heartbeat = async (silent: ReadonlySet<NodeId> = new Set()) => {
    for (const [nodeId, node] of nodes) {
      if (silent.has(nodeId)) continue;
      service.heartbeat({
        nodeId,
        address: `http://${nodeId}`,
        zone: ZONES[nodeId]!,
        rack: "rack-1",
        disks: [{ path: "/disk0", capacityBytes: 100 * GIBIBYTE, freeBytes: options.freeBytesOf?.(nodeId) ?? 50 * GIBIBYTE, usedBytes: 0 }],
        volumes: await node.volumeStatuses(),
        writeCount: 0,
        writeLatencyMs: 1,
      });
    }
  };
  const h: Harness = {
    nodes,
    get service() {
      return service;
    },
    advance: (ms) => (nowMs += ms),
    heartbeat,
    diskOf: (nodeId) => join(root, nodeId),
    async passes(count, silent = new Set()) {
      for (let pass = 0; pass < count; pass++) {
        nowMs += 1_000;
        await heartbeat(silent);
        await service.tick();
        await service.repair.idle();
      }
    },
    async settle(done, silent = new Set()) {
      for (let pass = 0; pass < 40 && !done(); pass++) {
        nowMs += 1_000;
        await heartbeat(silent);
        await service.tick();
        await service.repair.idle();
      }
      assert.ok(done(), "repair reached the expected state within 40 passes");
    },
    async reopenNode(nodeId, change) {
      await nodes.get(nodeId)!.close();
      await change(join(root, nodeId));
      nodes.set(nodeId, await DataNode.open({ nodeId, diskDirectories: [join(root, nodeId)], volumeSizeBytes: VOLUME_SIZE_BYTES, allowVolumeSizeBelowMinimumForTests: true }));
    },
    async reopenPlacement() {
      await service.close();
      service = open();
    },
    async close() {
      await service.close();
      for (const node of nodes.values()) await node.close();
      removeDataDirectory(root);
    },
  };
  // Growth waits one down-window after start, with every node heartbeating.
  await heartbeat();
  nowMs += DOWN_AFTER_MS + 1;
  await heartbeat();
  await service.tick();
  return h;
}

function needle(volumeId: VolumeId, sizeBytes: number) {
  const needleId = newNeedleId();
  const data = Buffer.alloc(sizeBytes, needleId.slice(-2));
  data.write(needleId);
  return { volumeId, needleId, data, crc32: crc32(data) };
}

async function listing(node: DataNode, volumeId: VolumeId): Promise<{ live: Set<NeedleId>; dead: Set<NeedleId> }> {
  const entries: NeedleListEntry[] = await node.listNeedles({ volumeId, countMax: 10_000 });
  return {
    live: new Set(entries.filter((entry) => !entry.tombstone).map((entry) => entry.needleId)),
    dead: new Set(entries.filter((entry) => entry.tombstone).map((entry) => entry.needleId)),
  };
}

function firstVolume(h: Harness) {
  const volume = h.service.clusterMap().volumes[0];
  assert.ok(volume !== undefined, "growth created a volume");
  return volume;
}

/** Flip one byte inside the payload of `needleId` in a node's volume file. */
async function flipByte(root: string, volumeId: VolumeId, needleId: NeedleId): Promise<void> {
  const file = await open(join(root, "volumes", `${volumeId}.vol`), "r+");
  try {
    const bytes = await file.readFile();
    const at = bytes.indexOf(Buffer.from(needleId, "hex"));
    assert.ok(at > 0, "needle found in the file");
    const position = at + 16 + 4 + 10; // past the id and the size field, into the data
    const original = Buffer.alloc(1);
    await file.read(original, 0, 1, position);
    await file.write(Buffer.from([original[0]! ^ 0xff]), 0, 1, position);
  } finally {
    await file.close();
  }
}

test("a node out past the out-timeout has its replica re-created in the missing zone; tombstones travel, deleted needles never do", async () => {
  const h = await harness();
  try {
    const volume = firstVolume(h);
    const victim = volume.replicas.find((nodeId) => ZONES[nodeId] === "zone-c")!;
    const spare = (["node-c", "node-d"] as NodeId[]).find((nodeId) => nodeId !== victim)!;
    const replicas = volume.replicas.map((nodeId) => h.nodes.get(nodeId)!);
    const kept = [needle(volume.volumeId, 3000), needle(volume.volumeId, 1), needle(volume.volumeId, 2000)];
    const deletedEverywhere = needle(volume.volumeId, 1500);
    const deletedOnOne = needle(volume.volumeId, 1200);
    for (const item of [...kept, deletedEverywhere, deletedOnOne]) for (const node of replicas) await node.writeNeedle(item);
    for (const node of replicas) await node.deleteNeedle(deletedEverywhere);
    await h.nodes.get(volume.replicas[0]!)!.deleteNeedle(deletedOnOne); // the others missed this delete

    const silent = new Set([victim]);
    h.advance(OUT_AFTER_MS + 1);
    await h.settle(() => {
      const now = h.service.clusterMap().volumes.find((candidate) => candidate.volumeId === volume.volumeId)!;
      return now.replicas.includes(spare) && !now.replicas.includes(victim);
    }, silent);

    const target = await listing(h.nodes.get(spare)!, volume.volumeId);
    assert.deepEqual([...target.live].sort(), kept.map((item) => item.needleId).sort(), "every live needle, and only those, copied");
    assert.ok(target.dead.has(deletedEverywhere.needleId) && target.dead.has(deletedOnOne.needleId), "tombstones copied");
    for (const item of kept) assert.ok((await h.nodes.get(spare)!.readNeedle(item)).equals(item.data));
    for (const nodeId of volume.replicas.filter((id) => id !== victim)) {
      assert.ok((await listing(h.nodes.get(nodeId)!, volume.volumeId)).dead.has(deletedOnOne.needleId), `${nodeId} got the tombstone it missed`);
    }
    const status = h.service.repairStatus();
    assert.equal(status.totals.replicasReplaced, 1);
    assert.equal(status.totals.needlesCopied, kept.length);
    assert.equal(status.totals.needlesLost, 0);
    assert.equal(h.service.clusterMap().volumes.find((candidate) => candidate.volumeId === volume.volumeId)!.state, "sealed", "repair sealed the volume in the map");
    for (const nodeId of [...volume.replicas.filter((id) => id !== victim), spare]) {
      await assertSealedOnNode(h.nodes.get(nodeId)!, volume.volumeId, nodeId);
    }
    const onVictim = (await h.nodes.get(victim)!.volumeStatuses()).find((candidate) => candidate.volumeId === volume.volumeId);
    assert.equal(onVictim?.state, "writable", "the down replica was skipped, not waited for");
  } finally {
    await h.close();
  }
});

test("a replica that missed deletes while it was down gets their tombstones when it comes back", async () => {
  const h = await harness({ nodeIds: ["node-a", "node-b", "node-c"] });
  try {
    const volume = firstVolume(h);
    const [first, second, late] = volume.replicas.map((nodeId) => h.nodes.get(nodeId)!) as [DataNode, DataNode, DataNode];
    const items = [needle(volume.volumeId, 500), needle(volume.volumeId, 600)];
    for (const item of items) for (const node of [first, second, late]) await node.writeNeedle(item);
    const silent = new Set([late.nodeId]);
    h.advance(DOWN_AFTER_MS + 1);
    await h.heartbeat(silent);
    await h.service.tick();
    assert.equal(h.service.clusterMap().nodes.find((node) => node.nodeId === late.nodeId)!.state, "down");
    for (const node of [first, second]) await node.deleteNeedle(items[0]!);
    assert.ok((await listing(late, volume.volumeId)).live.has(items[0]!.needleId), "the late replica still has the deleted needle live");

    await h.passes(3); // every node up again
    const after = await listing(late, volume.volumeId);
    assert.ok(after.dead.has(items[0]!.needleId), "the tombstone reached the returned replica");
    assert.ok(after.live.has(items[1]!.needleId), "the other needle stays live");
    await assert.rejects(late.readNeedle(items[0]!), (error: unknown) => (error as Error).name === "NeedleNotFound");
    // A late write of the deleted needle (a retry, a stale copy) changes nothing.
    await first.writeNeedle(items[0]!);
    assert.ok((await listing(first, volume.volumeId)).dead.has(items[0]!.needleId));
    assert.ok(h.service.repairStatus().totals.tombstonesPropagated >= 1);
  } finally {
    await h.close();
  }
});

test("a replica that was down while its volume was sealed in the map is sealed on its node when it comes back", async () => {
  const h = await harness({ nodeIds: ["node-a", "node-b", "node-c"] });
  try {
    const volume = firstVolume(h);
    const [first, second, late] = volume.replicas.map((nodeId) => h.nodes.get(nodeId)!) as [DataNode, DataNode, DataNode];
    const early = needle(volume.volumeId, 700);
    for (const node of [first, second, late]) await node.writeNeedle(early);
    h.advance(DOWN_AFTER_MS + 1);
    await h.heartbeat(new Set([late.nodeId]));
    await h.service.tick();
    const missed = needle(volume.volumeId, 800);
    for (const node of [first, second]) await node.writeNeedle(missed);
    await h.service.volumeFull(volume.volumeId); // sealed in the map while `late` is down
    assert.equal(h.service.clusterMap().volumes.find((candidate) => candidate.volumeId === volume.volumeId)!.state, "sealed");
    assert.equal((await late.volumeStatuses()).find((candidate) => candidate.volumeId === volume.volumeId)!.state, "writable");

    await h.passes(3); // every node up again: `late` is synced, then sealed
    assert.ok((await listing(late, volume.volumeId)).live.has(missed.needleId), "the missed needle reached the returned replica");
    await assertSealedOnNode(late, volume.volumeId, late.nodeId);
  } finally {
    await h.close();
  }
});

test("a rotted needle in a sealed replica is rewritten in place from a healthy one, never from a second rotted copy", async () => {
  const h = await harness({ nodeIds: ["node-a", "node-b", "node-c"] });
  try {
    const volume = firstVolume(h);
    const replicas = volume.replicas.map((nodeId) => h.nodes.get(nodeId)!);
    const items = [];
    // Fill until every replica seals the volume (each append past the limit answers VolumeFull).
    for (let index = 0; index < 40; index++) {
      const item = needle(volume.volumeId, 4000);
      const outcomes = await Promise.allSettled(replicas.map((node) => node.writeNeedle(item)));
      if (outcomes.some((outcome) => outcome.status === "rejected")) break;
      items.push(item);
    }
    for (const node of replicas) assert.equal((await node.volumeStatuses())[0]!.state, "sealed");
    const [bad, alsoBad, good] = replicas as [DataNode, DataNode, DataNode];
    const victim = items[3]!;
    await flipByte(h.diskOf(bad.nodeId), volume.volumeId, victim.needleId);
    await flipByte(h.diskOf(alsoBad.nodeId), volume.volumeId, victim.needleId);
    await assert.rejects(bad.readNeedle(victim), ChecksumMismatch);
    assert.equal((await bad.verifySealedVolume(volume.volumeId)).ok, false);

    h.service.reportDamage({ volumeId: volume.volumeId, needleId: victim.needleId, nodeId: bad.nodeId, reason: "checksum-mismatch" });
    await h.settle(() => h.service.repairStatus().damagedNeedlesPending === 0);
    for (const node of [bad, alsoBad, good]) {
      assert.ok((await node.readNeedle(victim)).equals(victim.data), `${node.nodeId} serves the needle`);
      assert.equal((await node.verifySealedVolume(volume.volumeId)).ok, true, `${node.nodeId}'s sealed file checksum holds again`);
    }
    assert.equal(h.service.repairStatus().totals.needlesRewritten, 2, "both rotted copies rewritten from the good one");
  } finally {
    await h.close();
  }
});

test("a placement restarted mid-task resumes it onto the node it chose", async () => {
  const h = await harness();
  try {
    const volume = firstVolume(h);
    const victim = volume.replicas.find((nodeId) => ZONES[nodeId] === "zone-c")!;
    const items = [needle(volume.volumeId, 700), needle(volume.volumeId, 800)];
    for (const nodeId of volume.replicas) for (const item of items) await h.nodes.get(nodeId)!.writeNeedle(item);
    const silent = new Set([victim]);
    h.advance(OUT_AFTER_MS + 1);
    await h.heartbeat(silent);
    await h.service.tick();
    await h.service.repair.idle();
    const task = h.service.repairStatus().volumes.find((entry) => entry.volumeId === volume.volumeId)?.task;
    assert.ok(task !== undefined && task.phase === "settling", "a task waits out the settle time");

    await h.reopenPlacement();
    h.advance(REPAIR_SETTLE_MS);
    await h.settle(() => !h.service.clusterMap().volumes.find((candidate) => candidate.volumeId === volume.volumeId)!.replicas.includes(victim), silent);
    const now = h.service.clusterMap().volumes.find((candidate) => candidate.volumeId === volume.volumeId)!;
    assert.ok(now.replicas.includes(task.toNodeId), "the replica went to the node chosen before the restart");
    assert.equal((await listing(h.nodes.get(task.toNodeId)!, volume.volumeId)).live.size, items.length);
  } finally {
    await h.close();
  }
});

test("a drained node leaves every replica set, serving until each copy is complete, and takes no new volume", async () => {
  const h = await harness({ writableVolumeTarget: 2 });
  try {
    const map = h.service.clusterMap();
    const drained = "node-c" as NodeId;
    const held = map.volumes.filter((volume) => volume.replicas.includes(drained));
    assert.ok(held.length > 0, "the drained node holds replicas");
    for (const volume of held) {
      const item = needle(volume.volumeId, 900 + volume.volumeId);
      for (const nodeId of volume.replicas) await h.nodes.get(nodeId)!.writeNeedle(item);
    }
    await h.service.drainNode(drained);
    // Until its copy is complete, the drained replica stays in the set: never fewer than 3.
    await h.settle(() => {
      const volumes = h.service.clusterMap().volumes;
      for (const volume of volumes) assert.equal(volume.replicas.length, 3);
      return volumes.every((volume) => !volume.replicas.includes(drained));
    });
    for (const volume of held) {
      const now = h.service.clusterMap().volumes.find((candidate) => candidate.volumeId === volume.volumeId)!;
      assert.ok(now.replicas.includes("node-d" as NodeId), "zone c's other node took the replica");
      assert.equal((await listing(h.nodes.get("node-d" as NodeId)!, volume.volumeId)).live.size, 1);
    }
    for (const volume of held) {
      for (const nodeId of [...volume.replicas.filter((id) => id !== drained), "node-d" as NodeId, drained]) {
        await assertSealedOnNode(h.nodes.get(nodeId)!, volume.volumeId, nodeId);
      }
    }
    const status = h.service.repairStatus();
    assert.equal(status.nodes.find((node) => node.nodeId === drained)!.draining, true);
    assert.equal(status.nodes.find((node) => node.nodeId === drained)!.volumeCount, 0);
  } finally {
    await h.close();
  }
});

test("an erasure-coded volume's shard on an out node is rebuilt by decoding, and a rotted shard is rebuilt in place", async () => {
  const h = await harness();
  try {
    const map = await h.service.growVolumes({ k: 2, m: 1 });
    const volume = map.volumes.find((candidate) => candidate.ec !== null);
    assert.ok(volume !== undefined && volume.replicas.length === 3, "a 2+1 volume on three nodes");
    const codec = new ReedSolomon(2, 1);
    const chunks = [5_001, 4_096, 333].map((sizeBytes) => {
      const needleId = newNeedleId();
      const data = Buffer.alloc(sizeBytes);
      for (let index = 0; index < sizeBytes; index++) data[index] = (index * 31 + sizeBytes) & 0xff;
      const dataShards = splitIntoDataShards(data, 2);
      const shards = [...dataShards, ...codec.encode(dataShards)].map((shard) => Buffer.from(shard));
      return { needleId, shards };
    });
    for (const chunk of chunks) {
      for (const [shardIndex, nodeId] of volume.replicas.entries()) {
        const shard = chunk.shards[shardIndex]!;
        await h.nodes.get(nodeId)!.writeNeedle({ volumeId: volume.volumeId, needleId: chunk.needleId, data: shard, crc32: crc32(shard) });
      }
    }
    const deletedChunk = chunks[2]!;
    for (const nodeId of volume.replicas) await h.nodes.get(nodeId)!.deleteNeedle({ volumeId: volume.volumeId, needleId: deletedChunk.needleId });

    // A rotted shard (here on the first node) is rebuilt from the other two.
    const rotted = volume.replicas[0]!;
    await flipByte(h.diskOf(rotted), volume.volumeId, chunks[0]!.needleId);
    await assert.rejects(h.nodes.get(rotted)!.readNeedle({ volumeId: volume.volumeId, needleId: chunks[0]!.needleId }), ChecksumMismatch);
    h.service.reportDamage({ volumeId: volume.volumeId, needleId: chunks[0]!.needleId, nodeId: rotted, reason: "checksum-mismatch" });
    await h.settle(() => h.service.repairStatus().damagedNeedlesPending === 0);
    assert.ok((await h.nodes.get(rotted)!.readNeedle({ volumeId: volume.volumeId, needleId: chunks[0]!.needleId })).equals(chunks[0]!.shards[0]!));

    // The zone-c shard node goes out: its shard index moves to zone c's other node, rebuilt.
    const victim = volume.replicas.find((nodeId) => ZONES[nodeId] === "zone-c")!;
    const shardIndex = volume.replicas.indexOf(victim);
    const spare = (["node-c", "node-d"] as NodeId[]).find((nodeId) => nodeId !== victim)!;
    h.advance(OUT_AFTER_MS + 1);
    await h.settle(() => h.service.clusterMap().volumes.find((candidate) => candidate.volumeId === volume.volumeId)!.replicas[shardIndex] === spare, new Set([victim]));
    for (const chunk of chunks.slice(0, 2)) {
      const rebuilt = await h.nodes.get(spare)!.readNeedle({ volumeId: volume.volumeId, needleId: chunk.needleId });
      assert.ok(rebuilt.equals(chunk.shards[shardIndex]!), `shard ${shardIndex} of ${chunk.needleId} rebuilt byte for byte`);
    }
    const target = await listing(h.nodes.get(spare)!, volume.volumeId);
    assert.ok(target.dead.has(deletedChunk.needleId) && !target.live.has(deletedChunk.needleId), "the deleted chunk's tombstone travelled, its shard did not");
    assert.equal(h.service.repairStatus().totals.needlesLost, 0);
  } finally {
    await h.close();
  }
});

test("a new node added to a cluster of nearly full nodes receives new volumes first", async () => {
  const h = await harness({
    nodeIds: ["node-a", "node-b", "node-c", "node-d", "node-e"],
    writableVolumeTarget: 20,
    freeBytesOf: (nodeId) => (nodeId === "node-e" ? 90 * GIBIBYTE : 1 * GIBIBYTE),
  });
  try {
    const volumes = h.service.clusterMap().volumes;
    assert.equal(volumes.length, 20);
    const onNewNode = volumes.filter((volume) => volume.replicas.includes("node-e" as NodeId)).length;
    // Zone c's replica goes to the new node with probability 90 / (90 + 1 + 1) per volume.
    assert.ok(onNewNode >= 17, `the new node holds ${onNewNode} of 20 new volumes`);
  } finally {
    await h.close();
  }
});

test("a replica whose volume file is gone from its node is re-created elsewhere once the node is back", async () => {
  const h = await harness();
  try {
    const volume = firstVolume(h);
    const victim = volume.replicas.find((nodeId) => ZONES[nodeId] === "zone-c")!;
    const spare = (["node-c", "node-d"] as NodeId[]).find((nodeId) => nodeId !== victim)!;
    const item = needle(volume.volumeId, 2_500);
    for (const nodeId of volume.replicas) await h.nodes.get(nodeId)!.writeNeedle(item);
    // The node restarts with its volume file gone (a replaced disk); placement sees it down, then up.
    await h.reopenNode(victim, (disk) => rm(join(disk, "volumes", `${volume.volumeId}.vol`)));
    h.advance(DOWN_AFTER_MS + 1);
    await h.heartbeat(new Set([victim]));
    await h.service.tick();
    await h.settle(() => {
      const now = h.service.clusterMap().volumes.find((candidate) => candidate.volumeId === volume.volumeId)!;
      return now.replicas.includes(spare) && !now.replicas.includes(victim);
    });
    assert.ok((await h.nodes.get(spare)!.readNeedle(item)).equals(item.data));
  } finally {
    await h.close();
  }
});

test("repair copies at no more than the configured bytes per second", async () => {
  const RATE_BYTES_PER_SECOND = 10_000;
  const h = await harness({ repairCopyBytesPerSecond: RATE_BYTES_PER_SECOND });
  try {
    const volume = firstVolume(h);
    const victim = volume.replicas.find((nodeId) => ZONES[nodeId] === "zone-c")!;
    const items = [needle(volume.volumeId, 10_000), needle(volume.volumeId, 10_000), needle(volume.volumeId, 10_000)];
    for (const nodeId of volume.replicas) for (const item of items) await h.nodes.get(nodeId)!.writeNeedle(item);
    h.advance(OUT_AFTER_MS + REPAIR_SETTLE_MS + 1);
    const startedAtMs = Date.now();
    await h.settle(() => !h.service.clusterMap().volumes.find((candidate) => candidate.volumeId === volume.volumeId)!.replicas.includes(victim), new Set([victim]));
    const elapsedMs = Date.now() - startedAtMs;
    // 30,000 bytes at 10,000 bytes/s: the first needle goes at once, the others wait their turn.
    assert.ok(elapsedMs >= 1_800, `copying 30 kB took ${elapsedMs} ms at 10 kB/s`);
  } finally {
    await h.close();
  }
});
