/**
 * Placement: which volumes take new writes and where each volume's replicas live. The data
 * path asks it through this interface; the embedded engine below serves `cairn server`, and
 * the cluster engine (placement service + cached cluster map) serves gateways in a cluster.
 */
import type { NodeId, VolumeId } from "../base/index.js";
import type { DamageReport, NeedleStore } from "../cluster/index.js";

export interface VolumeReplicaSet {
  volumeId: VolumeId;
  /** One store per replica, best first (for reads: closest and fastest). */
  replicas: NeedleStore[];
}

export interface Placement {
  /**
   * A volume that takes writes now, other than those in `exclude` (volumes that just failed
   * this caller) when another exists; grows a new one when none is writable.
   */
  writableVolume(options?: { exclude?: ReadonlySet<VolumeId> }): Promise<VolumeReplicaSet>;
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
