/**
 * Arithmetic and policy for erasure-coded chunks on the data path: which chunks are coded, how
 * many shard writes acknowledge one, which shard bytes a range read touches, and how long a
 * shard read may take before parity reads are fired as a backup (hedged reads, BOSS seed).
 *
 * A coded chunk of S bytes is k data shards of s = ceil(S / k) bytes (data shard i holds chunk
 * bytes [i*s, (i+1)*s), zero-padded) plus m parity shards of s bytes. Shard i is a needle with
 * the chunk's needle id on the i-th node of an erasure-coded volume; every needle carries the
 * CRC32 of its own bytes, and the chunk's CRC32 in the manifest checks what decoding rebuilt.
 */
import { assert, KIBIBYTE } from "../base/index.js";
import type { EcScheme } from "../ec/index.js";
import type { AckLevel } from "./data-router.js";

/**
 * Chunks smaller than this are stored replicated even when the object's storage class is
 * erasure-coded. Below it a 4+2 shard is under 64 KiB, where what a shard costs per request (a
 * needle header and index row on each of k+m nodes, k+m fsyncs, k reads and round trips per GET
 * instead of one) outweighs the bytes saved: a 256 KiB object costs 768 KiB replicated against
 * 384 KiB coded, and small objects are a small share of the bytes of a typical store. Only the
 * tail chunk of a large object (or a small object) is ever this small.
 */
export const EC_CHUNK_SIZE_MIN_BYTES = 256 * KIBIBYTE;

/** Backup (parity) reads start after this long before any shard latency has been seen. */
export const EC_BACKUP_READ_DELAY_MS_INITIAL = 200;
/** The backup delay is this multiple of the recent 90th percentile shard read latency... */
export const EC_BACKUP_READ_LATENCY_FACTOR = 3;
/** ...clamped to this range: never hedge every read, never wait on a hung node for long. */
export const EC_BACKUP_READ_DELAY_MS_MIN = 20;
export const EC_BACKUP_READ_DELAY_MS_MAX = 1_000;
/** Shard read latencies kept for the percentile. */
export const EC_LATENCY_SAMPLES_MAX = 256;

/** Whether a chunk of this size, in an object of storage scheme `ec`, is written coded. */
export function codesChunk(ec: EcScheme | null, chunkSizeBytes: number): ec is EcScheme {
  return ec !== null && chunkSizeBytes >= EC_CHUNK_SIZE_MIN_BYTES;
}

/**
 * Shard writes that acknowledge a coded chunk. `all`: every one of k + m, so a write is at full
 * redundancy when acknowledged. Lower levels: k + 1, not k: with exactly k shards durable one
 * more lost shard loses the chunk, so an acknowledged write always survives one failure.
 */
export function codedAckCount(ackLevel: AckLevel, ec: EcScheme): number {
  return ackLevel === "all" ? ec.k + ec.m : ec.k + 1;
}

export interface ShardRange {
  shardIndex: number;
  offsetBytes: number;
  lengthBytes: number;
}

/** The data-shard byte ranges that hold chunk bytes [offsetBytes, offsetBytes + lengthBytes). */
export function dataShardRanges(shardSizeBytes: number, offsetBytes: number, lengthBytes: number): ShardRange[] {
  assert(lengthBytes > 0 && shardSizeBytes > 0, "a range read of a coded chunk asks for at least one byte");
  const ranges: ShardRange[] = [];
  const endBytes = offsetBytes + lengthBytes;
  const first = Math.floor(offsetBytes / shardSizeBytes);
  const last = Math.floor((endBytes - 1) / shardSizeBytes);
  for (let shardIndex = first; shardIndex <= last; shardIndex++) {
    const shardStart = shardIndex * shardSizeBytes;
    const from = Math.max(offsetBytes, shardStart) - shardStart;
    const to = Math.min(endBytes, shardStart + shardSizeBytes) - shardStart;
    ranges.push({ shardIndex, offsetBytes: from, lengthBytes: to - from });
  }
  return ranges;
}

/** Samples recorded between two computations of the backup delay (each sorts every sample). */
const EC_BACKUP_DELAY_RECOMPUTE_SAMPLES = 16;

/** Recent shard read latencies, and the backup delay derived from them. */
export class ShardLatency {
  private readonly samplesMs: number[] = [];
  private nextSample = 0;
  /** The delay as last computed; undefined when samples came in since (at most a few). */
  private delayMs: number | undefined;
  private samplesSinceDelay = 0;

  record(latencyMs: number): void {
    if (this.samplesMs.length < EC_LATENCY_SAMPLES_MAX) this.samplesMs.push(latencyMs);
    else this.samplesMs[this.nextSample] = latencyMs;
    this.nextSample = (this.nextSample + 1) % EC_LATENCY_SAMPLES_MAX;
    this.samplesSinceDelay += 1;
    // Sorting 256 samples for every chunk read was 1.5% of an EC gateway's event loop.
    if (this.samplesSinceDelay >= EC_BACKUP_DELAY_RECOMPUTE_SAMPLES || this.samplesMs.length < EC_BACKUP_DELAY_RECOMPUTE_SAMPLES) this.delayMs = undefined;
  }

  /** How long to wait on the first shard reads before reading parity as well. */
  backupDelayMs(): number {
    if (this.samplesMs.length === 0) return EC_BACKUP_READ_DELAY_MS_INITIAL;
    if (this.delayMs === undefined) {
      const sorted = [...this.samplesMs].sort((left, right) => left - right);
      const p90 = sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.9))]!;
      this.delayMs = Math.min(EC_BACKUP_READ_DELAY_MS_MAX, Math.max(EC_BACKUP_READ_DELAY_MS_MIN, p90 * EC_BACKUP_READ_LATENCY_FACTOR));
      this.samplesSinceDelay = 0;
    }
    return this.delayMs;
  }
}
