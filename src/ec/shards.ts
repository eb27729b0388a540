/**
 * Shard layout arithmetic: cutting a chunk into k equal data shards (the last zero-padded) and
 * joining them back, and the "EC:<k>+<m>" storage classes.
 *
 *   data shard i holds chunk bytes [i * shardSizeBytes, (i + 1) * shardSizeBytes), zero-padded
 *   past the chunk's end; shardSizeBytes = ceil(chunkSizeBytes / k), 0 for an empty chunk.
 */
import { assert, copyBytes } from "../base/index.js";
import { EC_SHARD_COUNT_MAX } from "./reed-solomon.js";

/** An erasure-coding scheme: k data shards and m parity shards per stripe. */
export interface EcScheme {
  k: number;
  m: number;
}

/** The storage classes the issue names; both store 1.5x the data and survive m lost shards. */
export const EC_PRESETS = {
  "EC:4+2": { k: 4, m: 2 },
  "EC:8+4": { k: 8, m: 4 },
} as const satisfies Record<string, EcScheme>;

/** Bytes in each shard of an object (or chunk) of objectSizeBytes cut into dataShardCount shards. */
export function shardSizeBytesFor(objectSizeBytes: number, dataShardCount: number): number {
  assert(Number.isSafeInteger(objectSizeBytes) && objectSizeBytes >= 0, `size ${objectSizeBytes} is a non-negative integer`);
  assert(Number.isInteger(dataShardCount) && dataShardCount >= 1, `data shard count ${dataShardCount} is a positive integer`);
  return Math.ceil(objectSizeBytes / dataShardCount);
}

/**
 * k equal data shards of shardSizeBytesFor(chunk.length, k) bytes, the last zero-padded. The shards
 * are views of one new buffer: they never alias the chunk, so the caller may reuse it.
 */
export function splitIntoDataShards(chunk: Uint8Array, k: number): Uint8Array[] {
  const shardSizeBytes = shardSizeBytesFor(chunk.length, k);
  const backing = stripeBuffer(chunk, k, k);
  return Array.from({ length: k }, (_, shardIndex) => backing.subarray(shardIndex * shardSizeBytes, (shardIndex + 1) * shardSizeBytes));
}

/**
 * A new buffer for shardCount shards of shardSizeBytesFor(chunk.length, k) bytes (shard i at
 * [i * shardSizeBytes, (i + 1) * shardSizeBytes)) holding the chunk's k data shards, zero-padded
 * past its end; the slots after them (parity) are left uninitialized for the coder to fill. It
 * owns its ArrayBuffer whole (not a slice of Node's pool), so the buffer can be transferred to
 * a worker thread. One copy of the chunk and no zero-filling of what is about to be overwritten.
 * With `memory` (an ArrayBuffer of exactly that size, see EcWorkerPool.releaseShards), the
 * stripe is written there instead of into new memory.
 */
export function stripeBuffer(chunk: Uint8Array, k: number, shardCount: number, memory?: ArrayBuffer): Buffer {
  assert(Number.isInteger(shardCount) && shardCount >= k, `a stripe of ${shardCount} shards holds the ${k} data shards`);
  const shardSizeBytes = shardSizeBytesFor(chunk.length, k);
  assert(memory === undefined || memory.byteLength === shardSizeBytes * shardCount, "a reused stripe's memory is the stripe's size");
  const stripe = memory === undefined ? Buffer.allocUnsafeSlow(shardSizeBytes * shardCount) : Buffer.from(memory);
  copyBytes(stripe, chunk, 0); // the chunk may be in a chunk buffer: see copyBytes
  stripe.fill(0, chunk.length, shardSizeBytes * k);
  return stripe;
}

/** The first sizeBytes bytes of the k data shards laid end to end (the padding dropped), as a new Buffer. */
export function joinDataShards(shards: readonly Uint8Array[], k: number, sizeBytes: number): Buffer {
  assert(shards.length >= k, `at least ${k} shards given, got ${shards.length}`);
  const shardSizeBytes = shardSizeBytesFor(sizeBytes, k);
  for (let shardIndex = 0; shardIndex < k; shardIndex++) {
    assert(shards[shardIndex]!.length === shardSizeBytes, `data shard ${shardIndex} is ${shardSizeBytes} bytes for a ${sizeBytes}-byte chunk`);
  }
  const joined = Buffer.allocUnsafe(sizeBytes);
  for (let shardIndex = 0, offset = 0; shardIndex < k && offset < sizeBytes; shardIndex++, offset += shardSizeBytes) {
    const take = Math.min(shardSizeBytes, sizeBytes - offset);
    joined.set(shards[shardIndex]!.subarray(0, take), offset);
  }
  return joined;
}

/** "EC:" then k "+" m in decimal without leading zeros. */
const STORAGE_CLASS_EC = /^EC:([1-9][0-9]?)\+([1-9][0-9]?)$/;

/**
 * {k, m} for a storage class "EC:<k>+<m>" with k, m >= 1 and k + m <= EC_SHARD_COUNT_MAX;
 * undefined for anything else (STANDARD, malformed, too wide), so the caller answers the user.
 */
export function parseStorageClassEc(storageClass: string): EcScheme | undefined {
  const match = STORAGE_CLASS_EC.exec(storageClass);
  if (match === null) return undefined;
  const k = Number(match[1]);
  const m = Number(match[2]);
  if (k + m > EC_SHARD_COUNT_MAX) return undefined;
  return { k, m };
}
