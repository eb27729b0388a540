export { DataNode, NeedleRangeInvalid, NeedleTooLarge } from "./data-node.js";
export type { DataNodeOptions, DataNodeStats, SealedVolumeVerification } from "./data-node.js";
export { createDataNodeRpcRoutes, DataNodeRequestInvalid, WRITE_LATENCY_EMA_WEIGHT, WriteStats } from "./datanode-service.js";
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
