/**
 * Cutting a chunk into k equal data shards (zero-padded) and joining them back, and parsing
 * erasure-coding storage classes such as "EC:4+2".
 */
import { assert } from "../base/index.js";
import { EC_SHARD_COUNT_MAX } from "./reed-solomon.js";

/** Splits chunk into k equal shards of ceil(size / k) bytes, zero-padding the last; copies, never aliases chunk. */
export function splitIntoDataShards(chunk: Uint8Array, k: number): Uint8Array[] {
  assert(Number.isInteger(k) && k >= 1, `data shard count ${k} is a positive integer`);
  const shardSize = Math.ceil(chunk.length / k);
  const backing = new Uint8Array(shardSize * k);
  backing.set(chunk);
  const shards: Uint8Array[] = [];
  for (let i = 0; i < k; i++) shards.push(backing.subarray(i * shardSize, (i + 1) * shardSize));
  return shards;
}

/** Concatenates data shards and drops the padding: the first sizeBytes bytes. */
export function joinDataShards(shards: Uint8Array[], sizeBytes: number): Buffer {
  assert(shards.length >= 1, "at least one data shard");
  const shardSize = shards[0]!.length;
  for (const shard of shards) assert(shard.length === shardSize, "data shards have equal lengths");
  assert(Number.isInteger(sizeBytes) && sizeBytes >= 0, `size ${sizeBytes} is a non-negative integer`);
  assert(sizeBytes <= shardSize * shards.length, `size ${sizeBytes} fits in the shards`);
  const out = Buffer.allocUnsafe(sizeBytes);
  let offset = 0;
  for (const shard of shards) {
    if (offset >= sizeBytes) break;
    const take = Math.min(shard.length, sizeBytes - offset);
    out.set(take === shard.length ? shard : shard.subarray(0, take), offset);
    offset += take;
  }
  return out;
}

const ERASURE_CODING_CLASS = /^EC:([1-9][0-9]?)\+([1-9][0-9]?)$/;

/** Parses "EC:<k>+<m>" (k, m >= 1, k + m <= EC_SHARD_COUNT_MAX); undefined for anything else. */
export function parseErasureCodingClass(text: string): { dataShardCount: number; parityShardCount: number } | undefined {
  const match = ERASURE_CODING_CLASS.exec(text);
  if (match === null) return undefined;
  const dataShardCount = Number(match[1]);
  const parityShardCount = Number(match[2]);
  if (dataShardCount + parityShardCount > EC_SHARD_COUNT_MAX) return undefined;
  return { dataShardCount, parityShardCount };
}
