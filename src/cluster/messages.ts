/**
 * Messages between cluster processes: data nodes heartbeat to placement; gateways and data
 * nodes read the cluster map from placement. Plain JSON-able types, validated where received.
 *
 * RPC methods (see rpc.ts for the transport):
 *   placement:  heartbeat(HeartbeatRequest) -> HeartbeatResponse
 *               clusterMap({}) -> ClusterMap
 *               volumeFull({ volumeId }) -> null
 *               growVolumes({}) -> ClusterMap        (ensure writable volumes exist now)
 *               reportDamage(DamageReport) -> null
 *               volumeUsage({}) -> VolumeUsage[]       (bytes per volume per node, from heartbeats)
 *               repairStatus({}) -> RepairStatus
 *               drainNode({ nodeId }) -> RepairStatus
 *   data node:  createVolume({ volumeId }) -> null
 *               deleteNeedle({ volumeId, needleId }) -> null
 *               volumeStatuses({}) -> VolumeStatus[]
 *               listNeedles({ volumeId, afterNeedleId?, countMax }) -> NeedleListEntry[]
 *               sealVolume({ volumeId }) -> VolumeStatus   (repair, drain: seal as a full volume is)
 *               blob writeNeedle?volumeId&needleId&crc32 (body: data) -> null
 *               blob rewriteNeedle?volumeId&needleId&crc32 (body: data) -> RewriteNeedleOutcome
 *               blob readNeedle?volumeId&needleId[&offsetBytes&lengthBytes] -> data
 */
import type { NodeId, VolumeId } from "../base/index.js";
import type { EcScheme } from "../ec/index.js";
import type { VolumeStatus } from "./needle-store.js";

/** A data node that misses heartbeats this long is down: reads and writes avoid it. */
export const NODE_DOWN_AFTER_MS = 15_000;
/** Data nodes heartbeat this often. */
export const HEARTBEAT_INTERVAL_MS = 2_000;

export interface DiskReport {
  /** The disk's directory on its node. */
  path: string;
  capacityBytes: number;
  freeBytes: number;
  /** Bytes in this disk's volume files. */
  usedBytes: number;
}

export interface HeartbeatRequest {
  /** Absent on a node's first heartbeat: placement assigns the id and the node keeps it. */
  nodeId: NodeId | undefined;
  /** Base URL of the node's internal API, e.g. http://127.0.0.1:9101. */
  address: string;
  zone: string;
  rack: string;
  disks: DiskReport[];
  volumes: VolumeStatus[];
  /** Needle writes since the node started. */
  writeCount: number;
  /** Recent mean latency of a write (append + fsync), in ms: the WOS detector's signal. */
  writeLatencyMs: number;
}

export interface HeartbeatResponse {
  nodeId: NodeId;
  mapVersion: number;
}

export type NodeState = "up" | "down";

export interface NodeRecord {
  nodeId: NodeId;
  address: string;
  zone: string;
  rack: string;
  state: NodeState;
  lastHeartbeatAtMs: number;
  disks: DiskReport[];
  writeCount: number;
  writeLatencyMs: number;
}

export interface VolumeRecord {
  volumeId: VolumeId;
  state: "writable" | "sealed";
  /**
   * Nodes holding the volume, in placement order. For a replicated volume each holds a full
   * copy; for an erasure-coded one node i holds shard i of every chunk (k data, then m parity).
   */
  replicas: NodeId[];
  /** null: replicated (every node a full copy); otherwise the Reed-Solomon scheme of its chunks. */
  ec: EcScheme | null;
}

export interface ClusterMap {
  /** Increases with every change; readers keep the newest they have seen. */
  version: number;
  replicaCount: number;
  nodes: NodeRecord[];
  volumes: VolumeRecord[];
}

/** What one node last reported of one volume in its heartbeat. */
export interface VolumeUsage {
  volumeId: VolumeId;
  nodeId: NodeId;
  sizeBytes: number;
  needleCount: number;
  deletedNeedleCount: number;
}

export interface DamageReport {
  volumeId: VolumeId;
  needleId: string;
  nodeId: NodeId;
  reason: "checksum-mismatch" | "needle-missing" | "unreachable";
}

/** Where repair stands, for `cairn admin repair status`. */
export interface RepairStatus {
  /** A node down this long is out: its replicas are re-created elsewhere. */
  nodeOutAfterMs: number;
  nodes: Array<{ nodeId: NodeId; address: string; zone: string; state: NodeState; out: boolean; draining: boolean; volumeCount: number }>;
  /** Volumes with a replica on a down, out or draining node, with the task moving it if any. */
  volumes: Array<{
    volumeId: VolumeId;
    replicas: NodeId[];
    /** Replicas not serving (down or out); a draining replica still serves. */
    missing: NodeId[];
    task: RepairTaskStatus | undefined;
  }>;
  /** Damaged needles reported and not yet rewritten. */
  damagedNeedlesPending: number;
  totals: RepairTotals;
  /** Why repair could not go on the last time it stopped short (no target node, no source). */
  lastProblem: string | undefined;
}

export interface RepairTaskStatus {
  kind: "replace" | "drain";
  fromNodeId: NodeId;
  toNodeId: NodeId;
  phase: "queued" | "settling" | "copying" | "verifying";
  createdAtMs: number;
  needlesCopied: number;
  bytesCopied: number;
  tombstonesCopied: number;
}

export interface RepairTotals {
  replicasReplaced: number;
  needlesCopied: number;
  bytesCopied: number;
  tombstonesPropagated: number;
  needlesRewritten: number;
  /** Needles with no healthy copy left anywhere (logged as errors). */
  needlesLost: number;
}
