/**
 * Systematic Reed-Solomon erasure coding over GF(2^8): k data shards plus m parity shards, any k
 * of which rebuild the rest.
 *
 * Encoding matrix. Start from the n x k Vandermonde matrix V with V[r][c] = r^c (n = k + m,
 * evaluation points 0..n-1, 0^0 = 1), and let T be its top k x k block. The encoding matrix is
 * E = V * T^-1 (the Backblaze / klauspost construction); its top k rows are the identity, so the
 * first k shards are the data itself, and the bottom m rows produce the parity.
 *
 * Why it is MDS (every k x k submatrix of E is invertible, so any k surviving shards decode):
 * pick any k rows R of E. Then E[R] = V[R] * T^-1. V[R] is a square Vandermonde matrix on k
 * distinct points of GF(2^8) (n <= 256 so the points 0..n-1 are distinct field elements), and a
 * Vandermonde determinant is the product of (x_j - x_i) over i < j, nonzero when the points are
 * distinct. T is such a matrix too, so T^-1 exists. E[R] is a product of two invertible matrices,
 * hence invertible. (Note this argument needs the systematic product: the bare "identity on top of
 * a Vandermonde block" construction is NOT MDS in general.)
 */
import { assert } from "../base/index.js";
import { type Matrix, gfPow, matrixInvert, matrixMultiply, mulRow } from "./galois.js";

/**
 * Widest stripe we accept: each shard goes to a distinct failure domain and costs one request per
 * chunk, and at 20 a 4 MiB chunk's shards are still ~200 KiB (GF(2^8) itself would allow 256).
 */
export const EC_SHARD_COUNT_MAX = 20;

/** Decode matrices cached per codec, keyed by which shards were used; bounded, oldest evicted. */
const DECODE_MATRIX_CACHE_ENTRIES_MAX = 256;

/**
 * The hot loops walk shards in blocks of this many bytes so the output block stays in L1/L2
 * while every input's contribution is folded into it.
 */
const CODING_BLOCK_SIZE_BYTES = 16 * 1024;

export class TooFewShards extends Error {
  override name = "TooFewShards";
  constructor(
    readonly presentShardCount: number,
    readonly dataShardCount: number,
  ) {
    super(`cannot reconstruct: ${presentShardCount} shards present, at least ${dataShardCount} needed`);
  }
}

/** Views a Buffer (or any Uint8Array subclass) as a plain Uint8Array so the hot loops stay monomorphic. */
function plain(bytes: Uint8Array): Uint8Array {
  return bytes.constructor === Uint8Array ? bytes : new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function mulAssign(row: Uint8Array, input: Uint8Array, output: Uint8Array, start: number, end: number): void {
  let i = start;
  const unrolledEnd = start + ((end - start) & ~7);
  for (; i < unrolledEnd; i += 8) {
    output[i] = row[input[i]!]!;
    output[i + 1] = row[input[i + 1]!]!;
    output[i + 2] = row[input[i + 2]!]!;
    output[i + 3] = row[input[i + 3]!]!;
    output[i + 4] = row[input[i + 4]!]!;
    output[i + 5] = row[input[i + 5]!]!;
    output[i + 6] = row[input[i + 6]!]!;
    output[i + 7] = row[input[i + 7]!]!;
  }
  for (; i < end; i++) output[i] = row[input[i]!]!;
}

function mulXor(row: Uint8Array, input: Uint8Array, output: Uint8Array, start: number, end: number): void {
  let i = start;
  const unrolledEnd = start + ((end - start) & ~7);
  for (; i < unrolledEnd; i += 8) {
    output[i] = output[i]! ^ row[input[i]!]!;
    output[i + 1] = output[i + 1]! ^ row[input[i + 1]!]!;
    output[i + 2] = output[i + 2]! ^ row[input[i + 2]!]!;
    output[i + 3] = output[i + 3]! ^ row[input[i + 3]!]!;
    output[i + 4] = output[i + 4]! ^ row[input[i + 4]!]!;
    output[i + 5] = output[i + 5]! ^ row[input[i + 5]!]!;
    output[i + 6] = output[i + 6]! ^ row[input[i + 6]!]!;
    output[i + 7] = output[i + 7]! ^ row[input[i + 7]!]!;
  }
  for (; i < end; i++) output[i] = output[i]! ^ row[input[i]!]!;
}

function mulAssignWords(row: Uint8Array, input: Uint32Array, output: Uint32Array, start: number, end: number): void {
  let j = start;
  const unrolledEnd = start + ((end - start) & ~3);
  for (; j < unrolledEnd; j += 4) {
    const w0 = input[j]!;
    const w1 = input[j + 1]!;
    const w2 = input[j + 2]!;
    const w3 = input[j + 3]!;
    output[j] = row[w0 & 255]! | (row[(w0 >>> 8) & 255]! << 8) | (row[(w0 >>> 16) & 255]! << 16) | (row[w0 >>> 24]! << 24);
    output[j + 1] = row[w1 & 255]! | (row[(w1 >>> 8) & 255]! << 8) | (row[(w1 >>> 16) & 255]! << 16) | (row[w1 >>> 24]! << 24);
    output[j + 2] = row[w2 & 255]! | (row[(w2 >>> 8) & 255]! << 8) | (row[(w2 >>> 16) & 255]! << 16) | (row[w2 >>> 24]! << 24);
    output[j + 3] = row[w3 & 255]! | (row[(w3 >>> 8) & 255]! << 8) | (row[(w3 >>> 16) & 255]! << 16) | (row[w3 >>> 24]! << 24);
  }
  for (; j < end; j++) {
    const w = input[j]!;
    output[j] = row[w & 255]! | (row[(w >>> 8) & 255]! << 8) | (row[(w >>> 16) & 255]! << 16) | (row[w >>> 24]! << 24);
  }
}

function mulXorWords(row: Uint8Array, input: Uint32Array, output: Uint32Array, start: number, end: number): void {
  let j = start;
  const unrolledEnd = start + ((end - start) & ~3);
  for (; j < unrolledEnd; j += 4) {
    const w0 = input[j]!;
    const w1 = input[j + 1]!;
    const w2 = input[j + 2]!;
    const w3 = input[j + 3]!;
    output[j] = output[j]! ^ (row[w0 & 255]! | (row[(w0 >>> 8) & 255]! << 8) | (row[(w0 >>> 16) & 255]! << 16) | (row[w0 >>> 24]! << 24));
    output[j + 1] = output[j + 1]! ^ (row[w1 & 255]! | (row[(w1 >>> 8) & 255]! << 8) | (row[(w1 >>> 16) & 255]! << 16) | (row[w1 >>> 24]! << 24));
    output[j + 2] = output[j + 2]! ^ (row[w2 & 255]! | (row[(w2 >>> 8) & 255]! << 8) | (row[(w2 >>> 16) & 255]! << 16) | (row[w2 >>> 24]! << 24));
    output[j + 3] = output[j + 3]! ^ (row[w3 & 255]! | (row[(w3 >>> 8) & 255]! << 8) | (row[(w3 >>> 16) & 255]! << 16) | (row[w3 >>> 24]! << 24));
  }
  for (; j < end; j++) {
    const w = input[j]!;
    output[j] = output[j]! ^ (row[w & 255]! | (row[(w >>> 8) & 255]! << 8) | (row[(w >>> 16) & 255]! << 16) | (row[w >>> 24]! << 24));
  }
}

function isWordAligned(bytes: Uint8Array): boolean {
  return bytes.byteOffset % 4 === 0;
}

function words(bytes: Uint8Array, wordCount: number): Uint32Array {
  return new Uint32Array(bytes.buffer, bytes.byteOffset, wordCount);
}

/**
 * outputs[o] = sum over c of coefficients[o][c] * inputs[c], bytewise. The first input of each
 * output assigns, the rest XOR, so outputs need not be zeroed. Outputs must be word-aligned (the
 * codec allocates them); inputs that are not are copied a block at a time into an aligned scratch
 * buffer. Each byte still goes through its coefficient's 256-entry table row; the word loops just
 * load and store four bytes at a time (byte order does not matter: every byte returns to its lane).
 */
function codeShards(coefficients: Matrix, inputs: Uint8Array[], outputs: Uint8Array[], length: number): void {
  assert(coefficients.length === outputs.length, "one coefficient row per output");
  const rows = coefficients.map((coefficientRow) => {
    assert(coefficientRow.length === inputs.length, "one coefficient per input");
    return Array.from(coefficientRow, (c) => mulRow(c));
  });
  const wordCount = length >>> 2;
  const outputWords = outputs.map((output) => {
    assert(isWordAligned(output), "outputs are word-aligned");
    return words(output, wordCount);
  });
  const inputWords = inputs.map((input) => (isWordAligned(input) ? words(input, wordCount) : undefined));
  const scratch = inputWords.includes(undefined) ? new Uint32Array(CODING_BLOCK_SIZE_BYTES / 4) : undefined;
  const blockWords = CODING_BLOCK_SIZE_BYTES / 4;
  for (let start = 0; start < wordCount; start += blockWords) {
    const end = Math.min(wordCount, start + blockWords);
    const count = end - start;
    const outputBlocks = outputWords.map((output) => output.subarray(start, end));
    for (let c = 0; c < inputs.length; c++) {
      let source: Uint32Array;
      const aligned = inputWords[c];
      if (aligned !== undefined) {
        source = aligned.subarray(start, end);
      } else {
        // Unaligned input: copy this block into the aligned scratch buffer once for all outputs.
        new Uint8Array(scratch!.buffer, 0, count * 4).set(inputs[c]!.subarray(start * 4, end * 4));
        source = scratch!;
      }
      for (let o = 0; o < outputs.length; o++) {
        if (c === 0) mulAssignWords(rows[o]![0]!, source, outputBlocks[o]!, 0, count);
        else if (coefficients[o]![c] !== 0) mulXorWords(rows[o]![c]!, source, outputBlocks[o]!, 0, count);
      }
    }
  }
  const tailStart = wordCount * 4;
  if (tailStart === length) return;
  for (let o = 0; o < outputs.length; o++) {
    mulAssign(rows[o]![0]!, inputs[0]!, outputs[o]!, tailStart, length);
    for (let c = 1; c < inputs.length; c++) mulXor(rows[o]![c]!, inputs[c]!, outputs[o]!, tailStart, length);
  }
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
  readonly totalShardCount: number;
  /** n x k; top k rows are the identity. */
  private readonly encodingMatrix: Matrix;
  private readonly parityRows: Matrix;
  private readonly decodeMatrixCache = new Map<string, Matrix>();

  constructor(dataShardCount: number, parityShardCount: number) {
    assert(Number.isInteger(dataShardCount) && dataShardCount >= 1, `data shard count ${dataShardCount} is a positive integer`);
    assert(Number.isInteger(parityShardCount) && parityShardCount >= 1, `parity shard count ${parityShardCount} is a positive integer`);
    assert(dataShardCount + parityShardCount <= EC_SHARD_COUNT_MAX, `at most ${EC_SHARD_COUNT_MAX} shards in a stripe`);
    this.dataShardCount = dataShardCount;
    this.parityShardCount = parityShardCount;
    this.totalShardCount = dataShardCount + parityShardCount;
    const v = vandermonde(this.totalShardCount, dataShardCount);
    const topInverse = matrixInvert(v.slice(0, dataShardCount));
    assert(topInverse !== undefined, "a Vandermonde matrix on distinct points is invertible");
    this.encodingMatrix = matrixMultiply(v, topInverse);
    this.parityRows = this.encodingMatrix.slice(dataShardCount);
  }

  /** Returns the m parity shards for k equal-length data shards; inputs are not modified. */
  encode(dataShards: Uint8Array[]): Uint8Array[] {
    assert(dataShards.length === this.dataShardCount, `encode takes ${this.dataShardCount} data shards, got ${dataShards.length}`);
    const length = dataShards[0]!.length;
    for (const shard of dataShards) assert(shard.length === length, "data shards have equal lengths");
    const parity = this.parityRows.map(() => new Uint8Array(length));
    codeShards(this.parityRows, dataShards.map(plain), parity, length);
    return parity;
  }

  /**
   * Given all k + m shard slots, with undefined for lost shards, returns all k + m shards. Present
   * shards are returned as given (not copied); lost ones are new arrays. Inputs are not modified.
   * Throws TooFewShards when fewer than k shards are present.
   */
  reconstruct(shards: Array<Uint8Array | undefined>): Uint8Array[] {
    const k = this.dataShardCount;
    assert(shards.length === this.totalShardCount, `reconstruct takes ${this.totalShardCount} shard slots, got ${shards.length}`);
    const present: number[] = [];
    for (let i = 0; i < shards.length; i++) if (shards[i] !== undefined) present.push(i);
    if (present.length < k) throw new TooFewShards(present.length, k);
    const length = shards[present[0]!]!.length;
    for (const i of present) assert(shards[i]!.length === length, "present shards have equal lengths");

    const result: Array<Uint8Array | undefined> = shards.slice();
    const missingData: number[] = [];
    for (let i = 0; i < k; i++) if (result[i] === undefined) missingData.push(i);
    if (missingData.length > 0) {
      const used = present.slice(0, k);
      const decode = this.decodeMatrix(used);
      const outputs = missingData.map(() => new Uint8Array(length));
      codeShards(
        missingData.map((i) => decode[i]!),
        used.map((i) => plain(shards[i]!)),
        outputs,
        length,
      );
      missingData.forEach((shardIndex, o) => (result[shardIndex] = outputs[o]!));
    }

    const missingParity: number[] = [];
    for (let i = k; i < this.totalShardCount; i++) if (result[i] === undefined) missingParity.push(i);
    if (missingParity.length > 0) {
      const outputs = missingParity.map(() => new Uint8Array(length));
      codeShards(
        missingParity.map((i) => this.encodingMatrix[i]!),
        result.slice(0, k).map((shard) => plain(shard!)),
        outputs,
        length,
      );
      missingParity.forEach((shardIndex, o) => (result[shardIndex] = outputs[o]!));
    }
    return result.map((shard) => {
      assert(shard !== undefined, "every shard is present after reconstruction");
      return shard;
    });
  }

  /** Inverse of the encoding-matrix rows of the k shards used; row i rebuilds data shard i. */
  private decodeMatrix(used: number[]): Matrix {
    const key = used.join(",");
    const cached = this.decodeMatrixCache.get(key);
    if (cached !== undefined) {
      // Refresh recency: Map iteration order is insertion order, so the first key is the oldest.
      this.decodeMatrixCache.delete(key);
      this.decodeMatrixCache.set(key, cached);
      return cached;
    }
    const inverse = matrixInvert(used.map((i) => this.encodingMatrix[i]!));
    assert(inverse !== undefined, "every k x k submatrix of the encoding matrix is invertible (MDS)");
    if (this.decodeMatrixCache.size >= DECODE_MATRIX_CACHE_ENTRIES_MAX) {
      const oldest = this.decodeMatrixCache.keys().next();
      if (oldest.done !== true) this.decodeMatrixCache.delete(oldest.value);
    }
    this.decodeMatrixCache.set(key, inverse);
    return inverse;
  }
}
