/**
 * The portable coding kernel in plain JS, used where WebAssembly SIMD is unavailable and in tests
 * as an independent check of the SIMD kernel.
 *
 * Tuning notes (one core of a busy 2-core EPYC VM, 4+2 at 1 MiB and 8+4 at 64 KiB shards): a byte
 * loop `out[i] ^= row[in[i]]` over the coefficient's 256-entry product row ran 72-82 MB/s; 32-bit
 * word loads and stores (four row lookups per word, recombined with shifts) 96-105 MB/s, kept
 * here; input-major order (each input block visited once, all outputs updated) 79-192 MB/s, not
 * consistently better; 16-bit tables (64 Ki entries per coefficient) 12-60 MB/s: they spill out
 * of L1/L2. The SIMD kernel (simd-kernel.ts) is 15-25x faster than any of these.
 */
import { assert } from "../base/index.js";

/** Shard bytes processed per pass, so k input blocks and m output blocks stay in L2. */
const JS_BLOCK_SIZE_BYTES = 16 * 1024;

function mulAssignWords(row: Uint8Array, input: Uint32Array, output: Uint32Array, start: number, end: number): void {
  for (let j = start; j < end; j++) {
    const w = input[j]!;
    output[j] = row[w & 255]! | (row[(w >>> 8) & 255]! << 8) | (row[(w >>> 16) & 255]! << 16) | (row[w >>> 24]! << 24);
  }
}

function mulXorWords(row: Uint8Array, input: Uint32Array, output: Uint32Array, start: number, end: number): void {
  for (let j = start; j < end; j++) {
    const w = input[j]!;
    output[j] = output[j]! ^ (row[w & 255]! | (row[(w >>> 8) & 255]! << 8) | (row[(w >>> 16) & 255]! << 16) | (row[w >>> 24]! << 24));
  }
}

function mulXorBytes(row: Uint8Array, input: Uint8Array, output: Uint8Array, start: number, end: number): void {
  for (let i = start; i < end; i++) output[i] = output[i]! ^ row[input[i]!]!;
}

/** A Uint32Array over the whole words of bytes, or undefined when bytes is not 4-byte aligned. */
function wordView(bytes: Uint8Array): Uint32Array | undefined {
  if (bytes.byteOffset % 4 !== 0) return undefined;
  return new Uint32Array(bytes.buffer, bytes.byteOffset, bytes.length >>> 2);
}

/**
 * outputs[o] = XOR over c of coefficient[o][c] * inputs[c] over the first `length` bytes, where
 * rows[o][c] is the 256-entry product row of that coefficient. Outputs are fully overwritten.
 */
export function jsCodeShards(rows: Uint8Array[][], inputs: readonly Uint8Array[], outputs: Uint8Array[], length: number): void {
  assert(rows.length === outputs.length, "one row of product tables per output");
  // Unaligned inputs (a Buffer sliced from Node's pool) are copied once so the word loops can run
  // (new Uint8Array(view) copies; Buffer#slice would not).
  const alignedInputs = inputs.map((input) => (input.byteOffset % 4 === 0 ? input : new Uint8Array(input)));
  const inputWords = alignedInputs.map((input) => wordView(input)!);
  const outputWords = outputs.map((output) => wordView(output));
  const wholeWordCount = length >>> 2;
  const blockWordCount = JS_BLOCK_SIZE_BYTES >>> 2;
  for (let o = 0; o < outputs.length; o++) {
    const outWords = outputWords[o];
    const outRows = rows[o]!;
    assert(outRows.length === inputs.length, "one product table per input");
    if (outWords === undefined) {
      const output = outputs[o]!;
      output.fill(0, 0, length);
      for (let c = 0; c < inputs.length; c++) mulXorBytes(outRows[c]!, alignedInputs[c]!, output, 0, length);
      continue;
    }
    for (let start = 0; start < wholeWordCount; start += blockWordCount) {
      const end = Math.min(wholeWordCount, start + blockWordCount);
      mulAssignWords(outRows[0]!, inputWords[0]!, outWords, start, end);
      for (let c = 1; c < inputs.length; c++) mulXorWords(outRows[c]!, inputWords[c]!, outWords, start, end);
    }
  }
  const tailStart = wholeWordCount << 2;
  if (tailStart === length) return;
  for (let o = 0; o < outputs.length; o++) {
    if (outputWords[o] === undefined) continue;
    const output = outputs[o]!;
    output.fill(0, tailStart, length);
    for (let c = 0; c < inputs.length; c++) mulXorBytes(rows[o]![c]!, alignedInputs[c]!, output, tailStart, length);
  }
}
