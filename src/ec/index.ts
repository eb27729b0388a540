/**
 * Erasure coding: a systematic Reed-Solomon codec over GF(2^8) and the shard layout arithmetic
 * around it. Pure (no IO, no clocks); imports only src/base.
 *
 *   new ReedSolomon(dataShardCount: number, parityShardCount: number, options?: { kernel?: "simd" | "js" })
 *     k >= 1, m >= 1, k + m <= EC_SHARD_COUNT_MAX (20); asserts otherwise.
 *     .encode(dataShards: readonly Uint8Array[]): Uint8Array[]
 *        k equal-length data shards -> m new parity shards.
 *     .encodeInto(dataShards, parityShards): void    the same, into m given arrays (overwritten).
 *     .reconstruct(shards: ReadonlyArray<Uint8Array | undefined>): Uint8Array[]
 *        k + m slots, undefined where lost -> all k + m shards (present ones returned as given,
 *        lost ones new). Throws TooFewShards when fewer than k are present.
 *     Neither modifies its inputs; unequal shard lengths fail an assertion. Buffers are accepted.
 *   shardSizeBytesFor(objectSizeBytes, dataShardCount): number           ceil(size / k)
 *   splitIntoDataShards(chunk, k): Uint8Array[]                           k shards, last zero-padded
 *   joinDataShards(shards, k, sizeBytes): Buffer                          inverse of split
 *   parseStorageClassEc("EC:4+2"): { k: 4, m: 2 } | undefined            EC_PRESETS lists 4+2, 8+4
 *   new EcWorkerPool({ workerCount }): .encode(scheme, dataShards), .reconstruct(scheme, shards)
 *     the same contract as promises, computed on worker threads; .close().
 *     .encodeChunk(scheme, chunk): all k + m shards of a chunk with their CRC32s, the split,
 *     parity and checksums computed on a worker (one copy of the chunk on the caller's thread).
 */
export { EC_SHARD_COUNT_MAX, ReedSolomon, TooFewShards } from "./reed-solomon.js";
export type { EcKernel, ReedSolomonOptions } from "./reed-solomon.js";
export { EC_PRESETS, joinDataShards, parseStorageClassEc, shardSizeBytesFor, splitIntoDataShards } from "./shards.js";
export type { EcScheme } from "./shards.js";
export { EcWorkerPool } from "./ec-worker-pool.js";
export type { EcWorkerPoolOptions } from "./ec-worker-pool.js";
