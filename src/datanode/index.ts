export { DataNode, NeedleRangeInvalid, NeedleTooLarge } from "./data-node.js";
export type { DataNodeOptions, DataNodeStats, SealedVolumeVerification, VolumeScrubAccess } from "./data-node.js";
export {
  COMPACTION_GARBAGE_RATIO_MIN_DEFAULT,
  COMPACTION_INTERVAL_MS_DEFAULT,
  COMPACTION_RATE_BYTES_PER_SECOND_DEFAULT,
  Compactor,
} from "./compaction.js";
export type { CompactionResult, CompactorOptions, VolumeGarbage } from "./compaction.js";
export { SCRUB_INTERVAL_MS_DEFAULT, SCRUB_RATE_BYTES_PER_SECOND_DEFAULT, Scrubber } from "./scrubber.js";
export type { ScrubFinding, ScrubStats, ScrubberOptions, VolumeScrubResult } from "./scrubber.js";
export { createDataNodeRpcRoutes, DataNodeRequestInvalid, LIST_NEEDLES_COUNT_MAX, WRITE_LATENCY_EMA_WEIGHT, WriteStats } from "./datanode-service.js";
export type { DataNodeRpcRoutesOptions } from "./datanode-service.js";
export {
  HEARTBEAT_TIMEOUT_MS,
  HeartbeatSender,
  NODE_ID_FILE_NAME,
  NodeIdFileInvalid,
  readNodeIdFile,
  writeNodeIdFile,
} from "./heartbeat-sender.js";
export type { HeartbeatSenderOptions, VolumeSource, WriteCounters } from "./heartbeat-sender.js";
