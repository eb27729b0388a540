export * from "./placement.js";
export { EmbeddedPlacement, EMBEDDED_WRITABLE_VOLUME_COUNT_DEFAULT } from "./embedded-placement.js";
export { ClusterMapStore, clusterMapProblems, type ClusterMapRecords, type RepairTask, type StoredNode } from "./cluster-map-store.js";
export {
  allocateReplicas,
  candidateFromNode,
  InsufficientNodes,
  nodeWeight,
  seededRandom,
  FREE_BYTES_WEIGHT_FLOOR,
  WRITE_LATENCY_MS_REFERENCE,
  type AllocationCandidate,
} from "./volume-allocator.js";
export {
  createPlacementRpcRoutes,
  InvalidPlacementRequest,
  parseDamageReport,
  parseHeartbeatRequest,
  PlacementService,
  VolumeAllocationFailed,
  DAMAGE_REPORTS_KEPT_MAX,
  PLACEMENT_TICK_INTERVAL_MS,
  REPLICA_COUNT_DEFAULT,
  VOLUME_ALLOCATION_ATTEMPTS_MAX,
  WRITABLE_VOLUME_TARGET_DEFAULT,
  type PlacementServiceOptions,
} from "./placement-service.js";
export {
  ClusterPlacement,
  NoWritableVolume,
  PlacementUnavailable,
  CLUSTER_MAP_REFRESH_INTERVAL_MS,
  PLACEMENT_RPC_TIMEOUT_MS,
  WRITABLE_VOLUME_ATTEMPTS_MAX,
  WRITABLE_VOLUME_RETRY_DELAY_MS,
  type ClusterPlacementOptions,
} from "./cluster-placement.js";
export { EtcdClusterMapStore, LeadershipLost, clusterMapPrefix, type EtcdClusterMapStoreOptions } from "./etcd-cluster-map-store.js";
export { ElectedPlacement, placementLeaderKey, type ElectedPlacementOptions } from "./elected-placement.js";
export {
  needleIdBefore,
  RepairPlanner,
  NODE_OUT_AFTER_MS_DEFAULT,
  REPAIR_COPY_BYTES_PER_SECOND_DEFAULT,
  REPAIR_DAMAGE_BATCH_COUNT_MAX,
  REPAIR_DAMAGE_PENDING_COUNT_MAX,
  REPAIR_LIST_PAGE_COUNT_MAX,
  REPAIR_SETTLE_MS,
  REPAIR_SWEEP_INTERVAL_MS,
  REPAIR_VOLUMES_IN_FLIGHT_MAX,
  type RepairPlannerOptions,
} from "./repair.js";
