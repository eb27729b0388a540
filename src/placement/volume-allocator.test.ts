// Proves the allocator's two rules over many seeded draws: replicas spread over distinct zones,
// then racks, and never share a node; fewer up nodes than replicas is refused; and nodes with
// more free space (or lower latency) are drawn more often. Seeds are fixed so failures replay.
import { test } from "node:test";
import assert from "node:assert/strict";
import { GIBIBYTE, type NodeId } from "../base/index.js";
import { allocateReplicas, InsufficientNodes, nodeWeight, seededRandom, type AllocationCandidate } from "./volume-allocator.js";

function candidate(nodeId: string, zone: string, rack: string, freeBytes = 100 * GIBIBYTE, writeLatencyMs = 2): AllocationCandidate {
  return { nodeId: nodeId as NodeId, zone, rack, freeBytes, writeLatencyMs };
}

const SEEDS = Array.from({ length: 200 }, (_, index) => index + 1);

test("replicas land in three distinct zones when three zones exist", () => {
  const candidates = [
    candidate("a1", "a", "r1"), candidate("a2", "a", "r2"), candidate("a3", "a", "r1"),
    candidate("b1", "b", "r1"), candidate("b2", "b", "r2"),
    candidate("c1", "c", "r1"),
  ];
  const zoneOf = new Map(candidates.map((entry) => [entry.nodeId, entry.zone]));
  for (const seed of SEEDS) {
    const replicas = allocateReplicas({ candidates, replicaCount: 3, random: seededRandom(seed) });
    assert.equal(new Set(replicas.map((nodeId) => zoneOf.get(nodeId))).size, 3, `seed ${seed}: ${replicas.join(",")}`);
  }
});

test("with two zones and three racks, replicas spread over three racks", () => {
  const candidates = [
    candidate("a1", "a", "r1"), candidate("a2", "a", "r1"), candidate("a3", "a", "r2"),
    candidate("b1", "b", "r1"), candidate("b2", "b", "r1"),
  ];
  const byId = new Map(candidates.map((entry) => [entry.nodeId, entry]));
  for (const seed of SEEDS) {
    const replicas = allocateReplicas({ candidates, replicaCount: 3, random: seededRandom(seed) }).map((nodeId) => byId.get(nodeId)!);
    assert.equal(new Set(replicas.map((entry) => entry.zone)).size, 2, `seed ${seed}`);
    // "r1" in zone a and "r1" in zone b are different racks.
    assert.equal(new Set(replicas.map((entry) => `${entry.zone}/${entry.rack}`)).size, 3, `seed ${seed}`);
  }
});

test("never places two replicas on one node, even in a single rack", () => {
  const candidates = [candidate("n1", "a", "r1"), candidate("n2", "a", "r1"), candidate("n3", "a", "r1"), candidate("n4", "a", "r1")];
  for (const seed of SEEDS) {
    const replicas = allocateReplicas({ candidates, replicaCount: 3, random: seededRandom(seed) });
    assert.equal(replicas.length, 3);
    assert.equal(new Set(replicas).size, 3, `seed ${seed}: ${replicas.join(",")}`);
  }
  // A duplicated candidate entry is still one node.
  assert.throws(
    () => allocateReplicas({ candidates: [candidate("n1", "a", "r1"), candidate("n1", "b", "r1"), candidate("n2", "c", "r1")], replicaCount: 3, random: seededRandom(1) }),
    InsufficientNodes,
  );
});

test("refuses to allocate with fewer up nodes than replicas", () => {
  assert.throws(
    () => allocateReplicas({ candidates: [candidate("n1", "a", "r1"), candidate("n2", "b", "r1")], replicaCount: 3, random: seededRandom(7) }),
    (error: unknown) => error instanceof InsufficientNodes && error.replicaCount === 3 && error.nodeCount === 2,
  );
  assert.throws(() => allocateReplicas({ candidates: [], replicaCount: 1, random: seededRandom(7) }), InsufficientNodes);
});

test("a node with much more free space is chosen more often", () => {
  // One zone per node so the zone rule does not decide; one replica per volume so weight does.
  const candidates = [candidate("big", "a", "r1", 900 * GIBIBYTE), candidate("small", "b", "r1", 100 * GIBIBYTE)];
  const random = seededRandom(42);
  let bigCount = 0;
  const drawCount = 2000;
  for (let draw = 0; draw < drawCount; draw++) {
    if (allocateReplicas({ candidates, replicaCount: 1, random })[0] === "big") bigCount++;
  }
  // Expected 90%; allow generous statistical slack.
  assert.ok(bigCount > drawCount * 0.85 && bigCount < drawCount * 0.95, `big chosen ${bigCount}/${drawCount}`);
});

test("a slow node is chosen less often than a fast one with equal free space", () => {
  const candidates = [candidate("fast", "a", "r1", 100 * GIBIBYTE, 0), candidate("slow", "b", "r1", 100 * GIBIBYTE, 30)];
  assert.equal(nodeWeight(candidates[1]!) * 4, nodeWeight(candidates[0]!));
  const random = seededRandom(99);
  let fastCount = 0;
  for (let draw = 0; draw < 2000; draw++) if (allocateReplicas({ candidates, replicaCount: 1, random })[0] === "fast") fastCount++;
  assert.ok(fastCount > 1500 && fastCount < 1700, `fast chosen ${fastCount}/2000 (expected ~1600)`);
});

test("a node with no free space keeps a small, non-zero weight", () => {
  assert.ok(nodeWeight(candidate("full", "a", "r1", 0)) > 0);
});

test("an EC volume of 6 shards over 3 zones of 3 nodes puts exactly 2 shards in each zone", () => {
  const candidates = ["a", "b", "c"].flatMap((zone) => [1, 2, 3].map((index) => candidate(`${zone}${index}`, zone, `r${index}`)));
  const zoneOf = new Map(candidates.map((entry) => [entry.nodeId, entry.zone]));
  for (const seed of SEEDS) {
    const shards = allocateReplicas({ candidates, replicaCount: 6, random: seededRandom(seed) });
    assert.equal(new Set(shards).size, 6, `seed ${seed}: distinct nodes`);
    const perZone = new Map<string, number>();
    for (const nodeId of shards) perZone.set(zoneOf.get(nodeId)!, (perZone.get(zoneOf.get(nodeId)!) ?? 0) + 1);
    assert.deepEqual([...perZone.values()], [2, 2, 2], `seed ${seed}: ${shards.join(",")}`);
  }
});
