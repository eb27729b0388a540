/**
 * Volume allocation: which nodes hold the replicas of a new volume. Pure: the caller passes the
 * up nodes and a random source, so tests replay any choice from a seed.
 *
 * Two rules, in this order:
 * 1. Failure domains. Each replica goes to a zone holding the fewest replicas so far, and in it
 *    to a rack holding the fewest: distinct zones while unused zones remain, then distinct racks,
 *    and when there are more replicas (or EC shards) than zones, an even spread over zones. Two
 *    replicas never share a node: a node is one fault.
 * 2. Load (the WOS scheduler's signal). Among the candidates of the best diversity tier, one is
 *    drawn at random with probability proportional to `nodeWeight` (see there): nodes with more
 *    free space and faster writes take more new volumes, without all new volumes piling onto
 *    the single best node.
 *
 * The choice is greedy, one replica at a time. With zones and racks as a tree that is optimal
 * for the zone count and the rack count, which is all the rule asks for.
 */
import { MEBIBYTE, type NodeId } from "../base/index.js";
import type { NodeRecord } from "../cluster/index.js";

/**
 * The write latency at which a node's weight halves. A healthy disk appends + fsyncs in a few
 * ms; one that takes tens of ms is saturated or failing and should take fewer new volumes.
 */
export const WRITE_LATENCY_MS_REFERENCE = 10;
/**
 * Free space below this still counts as this much, so a nearly full node keeps a small, non-zero
 * chance rather than a weight of 0 (which would make an all-full cluster unallocatable by
 * arithmetic instead of by its disks answering DiskFull).
 */
export const FREE_BYTES_WEIGHT_FLOOR = 1 * MEBIBYTE;

export interface AllocationCandidate {
  nodeId: NodeId;
  zone: string;
  rack: string;
  freeBytes: number;
  writeLatencyMs: number;
}

/** No volume can be allocated: fewer distinct up nodes than replicas. */
export class InsufficientNodes extends Error {
  override name = "InsufficientNodes";
  constructor(
    readonly replicaCount: number,
    readonly nodeCount: number,
  ) {
    super(`need ${replicaCount} distinct up nodes for a volume, have ${nodeCount}`);
  }
}

export function candidateFromNode(node: NodeRecord): AllocationCandidate {
  let freeBytes = 0;
  for (const disk of node.disks) freeBytes += Math.max(0, disk.freeBytes);
  return { nodeId: node.nodeId, zone: node.zone, rack: node.rack, freeBytes, writeLatencyMs: Math.max(0, node.writeLatencyMs) };
}

/**
 * weight = max(freeBytes, FREE_BYTES_WEIGHT_FLOOR) / (1 + writeLatencyMs / WRITE_LATENCY_MS_REFERENCE)
 *
 * Linear in free space: a node with twice the free bytes takes about twice the new volumes, so
 * disks fill at the same pace whatever their size. Hyperbolic in latency: at
 * WRITE_LATENCY_MS_REFERENCE the weight halves, at 3x it quarters.
 */
export function nodeWeight(candidate: AllocationCandidate): number {
  const freeBytes = Math.max(candidate.freeBytes, FREE_BYTES_WEIGHT_FLOOR);
  return freeBytes / (1 + Math.max(0, candidate.writeLatencyMs) / WRITE_LATENCY_MS_REFERENCE);
}

/**
 * Choose `replicaCount` distinct nodes for a new volume, in placement order. Throws
 * InsufficientNodes when fewer distinct candidates exist: an under-replicated volume is never
 * created. `random` returns a float in [0, 1), like Math.random.
 */
export function allocateReplicas(options: {
  candidates: readonly AllocationCandidate[];
  replicaCount: number;
  random: () => number;
}): NodeId[] {
  const { replicaCount, random } = options;
  const byNode = new Map<NodeId, AllocationCandidate>();
  for (const candidate of options.candidates) byNode.set(candidate.nodeId, candidate);
  if (byNode.size < replicaCount) throw new InsufficientNodes(replicaCount, byNode.size);

  const remaining = [...byNode.values()];
  const zoneUse = new Map<string, number>();
  const rackUse = new Map<string, number>();
  const chosen: NodeId[] = [];
  while (chosen.length < replicaCount) {
    // The least-used zones first, then within them the least-used racks: with fewer zones than
    // replicas (an EC volume of 6 shards over 3 zones) the shards spread evenly, 2 per zone.
    const fewestInZone = Math.min(...remaining.map((candidate) => zoneUse.get(candidate.zone) ?? 0));
    const zoneTier = remaining.filter((candidate) => (zoneUse.get(candidate.zone) ?? 0) === fewestInZone);
    const fewestInRack = Math.min(...zoneTier.map((candidate) => rackUse.get(rackKey(candidate)) ?? 0));
    const tier = zoneTier.filter((candidate) => (rackUse.get(rackKey(candidate)) ?? 0) === fewestInRack);
    const pick = weightedPick(tier, random);
    chosen.push(pick.nodeId);
    zoneUse.set(pick.zone, (zoneUse.get(pick.zone) ?? 0) + 1);
    rackUse.set(rackKey(pick), (rackUse.get(rackKey(pick)) ?? 0) + 1);
    remaining.splice(remaining.indexOf(pick), 1);
  }
  return chosen;
}

/** Rack names are unique within a zone only: "r1" in zone a and "r1" in zone b are two racks. */
function rackKey(candidate: AllocationCandidate): string {
  return `${candidate.zone}\u0000${candidate.rack}`;
}

/** One candidate drawn with probability proportional to nodeWeight; `candidates` is not empty. */
export function weightedPick(candidates: readonly AllocationCandidate[], random: () => number): AllocationCandidate {
  let total = 0;
  for (const candidate of candidates) total += nodeWeight(candidate);
  let point = random() * total;
  for (const candidate of candidates) {
    point -= nodeWeight(candidate);
    if (point < 0) return candidate;
  }
  // Rounding can leave `point` a hair above 0 after the last subtraction.
  return candidates[candidates.length - 1]!;
}

/** A small seeded generator (mulberry32) for tests and reproducible runs; not for secrets. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let value = state;
    value = Math.imul(value ^ (value >>> 15), value | 1);
    value ^= value + Math.imul(value ^ (value >>> 7), value | 61);
    return ((value ^ (value >>> 14)) >>> 0) / 4294967296;
  };
}
