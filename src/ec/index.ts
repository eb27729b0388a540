export { ReedSolomon, TooFewShards, EC_SHARD_COUNT_MAX } from "./reed-solomon.js";
export { splitIntoDataShards, joinDataShards, parseErasureCodingClass } from "./shards.js";
