export { DataNode, NeedleRangeInvalid, NeedleTooLarge } from "./data-node.js";
export type { DataNodeOptions, DataNodeStats, SealedVolumeVerification } from "./data-node.js";
