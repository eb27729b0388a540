/**
 * Placement: which volumes take new writes and where each volume's replicas live. The data
 * path asks it through this interface; the embedded engine below serves `cairn server`, and
 * the cluster engine (placement service + cached cluster map) serves gateways in a cluster.
 */
import type { NodeId, VolumeId } from "../base/index.js";
import type { DamageReport, NeedleStore } from "../cluster/index.js";
import type { EcScheme } from "../ec/index.js";

export interface VolumeReplicaSet {
  volumeId: VolumeId;
  /**
   * Replicated volume (ec null): one store per replica, best first (for reads: closest and
   * fastest). Erasure-coded volume: store i holds shard i, in placement order.
   */
  replicas: NeedleStore[];
  /** Same order as replicas: false where the node is down or this caller could not reach it lately. */
  healthy: boolean[];
  /** The volume's erasure-coding scheme, or null when every replica holds a full copy. */
  ec: EcScheme | null;
}

/**
 * The same layout: both replicated, or both coded with the same k and m. Undefined counts as
 * replicated: the RPC transport carries null as an absent field.
 */
export function sameLayout(left: EcScheme | null | undefined, right: EcScheme | null | undefined): boolean {
  if (left === undefined || left === null || right === undefined || right === null) return (left ?? null) === (right ?? null);
  return left.k === right.k && left.m === right.m;
}

/** "replicated" or "EC:k+m": the name of a layout in logs and status. */
export function layoutName(ec: EcScheme | null): string {
  return ec === null ? "replicated" : `EC:${ec.k}+${ec.m}`;
}

export interface Placement {
  /**
   * A volume of the asked layout (`ec`, default replicated) that takes writes now, other than
   * those in `exclude` (volumes that just failed this caller) when another exists; grows a new
   * one when none is writable. A placement with a single failure domain (the embedded one)
   * answers every layout with its replicated volumes: the caller writes what it is given.
   */
  writableVolume(options?: { exclude?: ReadonlySet<VolumeId>; ec?: EcScheme | null }): Promise<VolumeReplicaSet>;
  /** A replica answered VolumeFull: stop handing this volume out for writes. */
  volumeFull(volumeId: VolumeId): Promise<void>;
  /** A replica failed a read (rot, missing needle, unreachable): tell placement, for repair. */
  reportDamage(report: DamageReport): void;
  /** This caller could not reach a node: avoid it for a while (it may be dead or hung). */
  reportUnreachable(nodeId: NodeId): void;
  /**
   * The replicas that hold a volume, best first. `fresh` asks for the newest cluster map
   * first (every replica just failed: a node may have moved). Rejects with UnknownVolume.
   */
  replicasOf(volumeId: VolumeId, options?: { fresh?: boolean }): Promise<VolumeReplicaSet>;
  close(): Promise<void>;
}

export class UnknownVolume extends Error {
  override name = "UnknownVolume";
  constructor(readonly volumeId: VolumeId) {
    super(`volume ${volumeId} is not in the cluster map`);
  }
}

export interface VolumeRecord {
  volumeId: VolumeId;
  state: "writable" | "sealed";
  nodeIds: NodeId[];
}
