/**
 * Systematic Reed-Solomon erasure coding over GF(2^8): k data shards plus m parity shards, any k
 * of which rebuild the rest.
 *
 * Encoding matrix: the Backblaze / klauspost/reedsolomon construction. Start from the n x k
 * Vandermonde matrix V with V[r][c] = r^c (n = k + m, evaluation points 0..n-1, 0^0 = 1), let T
 * be its top k x k block, and take E = V * T^-1. E's top k rows are the identity, so the first k
 * shards are the data itself; its bottom m rows produce the parity.
 *
 * Why E is MDS (every k x k submatrix is invertible, so ANY k surviving shards decode): pick any
 * k rows R. Then E[R] = V[R] * T^-1. V[R] is a square Vandermonde matrix on k distinct points of
 * GF(2^8) (n <= 20 < 256, so 0..n-1 are distinct field elements), whose determinant is the
 * product of (x_j - x_i) over i < j: nonzero. T is such a matrix too, so T^-1 exists, and a
 * product of invertible matrices is invertible. (The tempting shortcut "identity stacked on a
 * plain Vandermonde block" is NOT MDS in general; the multiplication by T^-1 is what keeps it.)
 * The tests check this directly by decoding from every surviving subset for several (k, m).
 *
 * Decoding: take the first k present shards, invert the k x k submatrix of E for those rows
 * (Gauss-Jordan), and row i of the inverse rebuilds data shard i; lost parity is then re-encoded.
 * Inverses are cached per surviving set (bounded, least recently used evicted): a degraded
 * volume loses the same shards for every chunk it serves.
 */
import { assert } from "../base/index.js";
import { type Matrix, gfPow, matrixInvert, matrixMultiply, mulRow } from "./galois.js";
import { jsCodeShards } from "./js-kernel.js";
import { buildNibbleTables, simdCodeShards, simdKernelAvailable } from "./simd-kernel.js";

/**
 * Widest stripe we accept: each shard goes to a distinct failure domain and costs one request per
 * chunk, and past 20 the shards of a chunk get small enough that per-request overhead dominates
 * (GF(2^8) itself would allow 256).
 */
export const EC_SHARD_COUNT_MAX = 20;

/**
 * Decode plans cached per codec (one per loss pattern, ~1-13 KiB each). 4+2 has 21 patterns and
 * 8+4 has 793; a live cluster sees a handful of failed domains at a time, so 256 covers the
 * patterns in use without letting a scan over many patterns grow memory without bound.
 */
const DECODE_CACHE_ENTRIES_MAX = 256;

export type EcKernel = "simd" | "js";

export interface ReedSolomonOptions {
  /** Force a kernel; by default the SIMD kernel when this runtime has WebAssembly SIMD. */
  kernel?: EcKernel;
}

export class TooFewShards extends Error {
  override name = "TooFewShards";
  constructor(
    readonly presentShardCount: number,
    readonly dataShardCount: number,
  ) {
    super(`cannot reconstruct: ${presentShardCount} shards present, at least ${dataShardCount} needed`);
  }
}

/** A coefficient matrix with its per-kernel lookup tables, built once and reused per call. */
interface CodingPlan {
  coefficients: Matrix;
  productRows: Uint8Array[][];
  nibbleTables: Uint8Array;
}

function codingPlan(coefficients: Matrix): CodingPlan {
  return {
    coefficients,
    productRows: coefficients.map((row) => Array.from(row, (c) => mulRow(c))),
    nibbleTables: buildNibbleTables(coefficients, mulRow),
  };
}

function vandermonde(rowCount: number, columnCount: number): Matrix {
  const matrix: Matrix = [];
  for (let r = 0; r < rowCount; r++) {
    const row = new Uint8Array(columnCount);
    for (let c = 0; c < columnCount; c++) row[c] = gfPow(r, c);
    matrix.push(row);
  }
  return matrix;
}

export class ReedSolomon {
  readonly dataShardCount: number;
  readonly parityShardCount: number;
  readonly shardCount: number;
  readonly kernel: EcKernel;
  /** n x k; the top k rows are the identity. */
  private readonly encodingMatrix: Matrix;
  private readonly parityPlan: CodingPlan;
  private readonly decodePlans = new Map<string, CodingPlan>();

  constructor(dataShardCount: number, parityShardCount: number, options: ReedSolomonOptions = {}) {
    assert(Number.isInteger(dataShardCount) && dataShardCount >= 1, `data shard count ${dataShardCount} is a positive integer`);
    assert(Number.isInteger(parityShardCount) && parityShardCount >= 1, `parity shard count ${parityShardCount} is a positive integer`);
    assert(dataShardCount + parityShardCount <= EC_SHARD_COUNT_MAX, `at most ${EC_SHARD_COUNT_MAX} shards in a stripe`);
    this.dataShardCount = dataShardCount;
    this.parityShardCount = parityShardCount;
    this.shardCount = dataShardCount + parityShardCount;
    const kernel = options.kernel ?? (simdKernelAvailable() ? "simd" : "js");
    assert(kernel === "js" || simdKernelAvailable(), "the SIMD kernel was asked for and this runtime has WebAssembly SIMD");
    this.kernel = kernel;
    const vandermondeMatrix = vandermonde(this.shardCount, dataShardCount);
    const topInverse = matrixInvert(vandermondeMatrix.slice(0, dataShardCount));
    assert(topInverse !== undefined, "a Vandermonde matrix on distinct points is invertible");
    this.encodingMatrix = matrixMultiply(vandermondeMatrix, topInverse);
    for (let r = 0; r < dataShardCount; r++) {
      for (let c = 0; c < dataShardCount; c++) assert(this.encodingMatrix[r]![c] === (r === c ? 1 : 0), "the code is systematic");
    }
    this.parityPlan = codingPlan(this.encodingMatrix.slice(dataShardCount));
  }

  /** The m parity shards (new arrays) for k equal-length data shards; the inputs are not modified. */
  encode(dataShards: readonly Uint8Array[]): Uint8Array[] {
    assert(dataShards.length === this.dataShardCount, `encode takes ${this.dataShardCount} data shards, got ${dataShards.length}`);
    const parity = Array.from({ length: this.parityShardCount }, () => new Uint8Array(dataShards[0]!.length));
    this.encodeInto(dataShards, parity);
    return parity;
  }

  /** encode() into m given arrays of the data shards' length, whose bytes are all overwritten. */
  encodeInto(dataShards: readonly Uint8Array[], parityShards: Uint8Array[]): void {
    assert(dataShards.length === this.dataShardCount, `encode takes ${this.dataShardCount} data shards, got ${dataShards.length}`);
    assert(parityShards.length === this.parityShardCount, `encode fills ${this.parityShardCount} parity shards, got ${parityShards.length}`);
    const shardSizeBytes = dataShards[0]!.length;
    for (const shard of [...dataShards, ...parityShards]) assert(shard.length === shardSizeBytes, "shards have equal lengths");
    this.run(this.parityPlan, dataShards, parityShards, shardSizeBytes);
  }

  /**
   * All k + m shards, given k + m slots with undefined for each lost shard. Present shards are
   * returned as given (not copied); lost ones are new arrays. The inputs are not modified.
   * Throws TooFewShards when fewer than k shards are present.
   */
  reconstruct(shards: ReadonlyArray<Uint8Array | undefined>): Uint8Array[] {
    const k = this.dataShardCount;
    assert(shards.length === this.shardCount, `reconstruct takes ${this.shardCount} shard slots, got ${shards.length}`);
    const presentIndexes: number[] = [];
    shards.forEach((shard, shardIndex) => {
      if (shard !== undefined) presentIndexes.push(shardIndex);
    });
    if (presentIndexes.length < k) throw new TooFewShards(presentIndexes.length, k);
    const shardSizeBytes = shards[presentIndexes[0]!]!.length;
    for (const shardIndex of presentIndexes) assert(shards[shardIndex]!.length === shardSizeBytes, "present shards have equal lengths");

    const result = shards.slice();
    const lostDataIndexes = presentIndexes.length === this.shardCount ? [] : range(0, k).filter((i) => result[i] === undefined);
    if (lostDataIndexes.length > 0) {
      const usedIndexes = presentIndexes.slice(0, k);
      const plan = this.decodePlan(usedIndexes, lostDataIndexes);
      const rebuilt = lostDataIndexes.map(() => new Uint8Array(shardSizeBytes));
      this.run(plan, usedIndexes.map((i) => shards[i]!), rebuilt, shardSizeBytes);
      lostDataIndexes.forEach((shardIndex, o) => (result[shardIndex] = rebuilt[o]!));
    }
    const lostParityIndexes = range(k, this.shardCount).filter((i) => result[i] === undefined);
    if (lostParityIndexes.length > 0) {
      const plan =
        lostParityIndexes.length === this.parityShardCount
          ? this.parityPlan
          : codingPlan(lostParityIndexes.map((i) => this.encodingMatrix[i]!));
      const rebuilt = lostParityIndexes.map(() => new Uint8Array(shardSizeBytes));
      this.run(plan, result.slice(0, k).map((shard) => shard!), rebuilt, shardSizeBytes);
      lostParityIndexes.forEach((shardIndex, o) => (result[shardIndex] = rebuilt[o]!));
    }
    return result.map((shard, shardIndex) => {
      assert(shard !== undefined, `shard ${shardIndex} is present after reconstruction`);
      return shard;
    });
  }

  private run(plan: CodingPlan, inputs: readonly Uint8Array[], outputs: Uint8Array[], length: number): void {
    if (length === 0) return;
    if (this.kernel === "simd") {
      const ran = simdCodeShards(plan.nibbleTables, inputs, outputs, length);
      assert(ran, "the SIMD kernel runs once it has loaded");
      return;
    }
    jsCodeShards(plan.productRows, inputs, outputs, length);
  }

  /** Rows of the inverse of E[usedIndexes] that rebuild lostDataIndexes; cached per pattern. */
  private decodePlan(usedIndexes: number[], lostDataIndexes: number[]): CodingPlan {
    const key = `${usedIndexes.join(",")}/${lostDataIndexes.join(",")}`;
    const cached = this.decodePlans.get(key);
    if (cached !== undefined) {
      // Map iteration is insertion order: re-inserting makes the first key the least recently used.
      this.decodePlans.delete(key);
      this.decodePlans.set(key, cached);
      return cached;
    }
    const inverse = matrixInvert(usedIndexes.map((i) => this.encodingMatrix[i]!));
    assert(inverse !== undefined, "every k x k submatrix of the encoding matrix is invertible (MDS)");
    const plan = codingPlan(lostDataIndexes.map((i) => inverse[i]!));
    if (this.decodePlans.size >= DECODE_CACHE_ENTRIES_MAX) {
      const oldest = this.decodePlans.keys().next();
      if (oldest.done !== true) this.decodePlans.delete(oldest.value);
    }
    this.decodePlans.set(key, plan);
    return plan;
  }
}

function range(start: number, end: number): number[] {
  return Array.from({ length: end - start }, (_, i) => start + i);
}
