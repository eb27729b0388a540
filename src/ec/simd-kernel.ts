/**
 * The coding kernel in WebAssembly SIMD: 16 bytes per step through two `i8x16.swizzle` nibble
 * lookups (PSHUFB on x86, TBL on ARM), the technique of ISA-L and klauspost/reedsolomon. The
 * scalar JS kernel tops out near a few hundred MB/s because every byte costs a table load; this
 * one runs several times faster on the same core.
 *
 * The module is assembled here from opcodes (a few hundred bytes) rather than shipped as a .wasm file
 * or a dependency: no build step, and the whole program is readable below. Node 20 (V8 >= 9.1)
 * enables fixed-width SIMD by default; where validation fails we report unavailable and the
 * caller keeps the JS kernel.
 *
 * Why nibbles: multiplication by a constant c is linear over XOR, so c*x = c*(x & 0x0f) ^
 * c*(x & 0xf0). Each half has 16 possible values, so a 16-byte table per half (for that c) turns
 * one multiply of 16 bytes into two swizzles and an XOR.
 *
 * Memory layout of one call (all offsets in the module's own linear memory, 16-byte aligned):
 *
 *   offset                          size                    content
 *   0                               rows*cols*32            per (output o, input c): 16-byte table
 *                                                           c*x for x = 0..15, then c*(x<<4)
 *   TABLES_SIZE_BYTES_MAX           cols*blockSize          input blocks, one after another
 *   ... + cols*blockSize            rows*blockSize          output blocks, one after another
 *
 * The JS side copies a block of each input in, calls `code`, and copies each output block out;
 * the copies run at memcpy speed and keep the wasm memory small (it never holds whole shards).
 */
import { assert } from "../base/index.js";

/** Coefficient tables for up to a 20 x 20 matrix, 32 bytes each; rounded to 16 KiB. */
const TABLES_SIZE_BYTES_MAX = 16 * 1024;
/**
 * Bytes of each shard processed per call: small enough that k inputs and m outputs stay in L2
 * (20 x 16 KiB = 320 KiB), large enough that the per-call overhead (a few copies) is amortized.
 */
export const SIMD_BLOCK_SIZE_BYTES = 16 * 1024;
const WASM_PAGE_SIZE_BYTES = 64 * 1024;

// --- a tiny assembler: just the encodings this one function needs ---------------------------

function unsignedLeb(value: number): number[] {
  const out: number[] = [];
  do {
    let byte = value & 0x7f;
    value >>>= 7;
    if (value !== 0) byte |= 0x80;
    out.push(byte);
  } while (value !== 0);
  return out;
}

function signedLeb(value: number): number[] {
  const out: number[] = [];
  for (;;) {
    const byte = value & 0x7f;
    value >>= 7;
    if ((value === 0 && (byte & 0x40) === 0) || (value === -1 && (byte & 0x40) !== 0)) {
      out.push(byte);
      return out;
    }
    out.push(byte | 0x80);
  }
}

function vector(items: number[][]): number[] {
  return [...unsignedLeb(items.length), ...items.flat()];
}

function section(id: number, body: number[]): number[] {
  return [id, ...unsignedLeb(body.length), ...body];
}

function name(text: string): number[] {
  return vector([...text].map((char) => [char.charCodeAt(0)]));
}

const TYPE_I32 = 0x7f;
const TYPE_V128 = 0x7b;
const BLOCK_VOID = 0x40;
const op = {
  block: [0x02, BLOCK_VOID],
  loop: [0x03, BLOCK_VOID],
  end: [0x0b],
  br: (depth: number) => [0x0c, ...unsignedLeb(depth)],
  brIf: (depth: number) => [0x0d, ...unsignedLeb(depth)],
  get: (local: number) => [0x20, ...unsignedLeb(local)],
  set: (local: number) => [0x21, ...unsignedLeb(local)],
  tee: (local: number) => [0x22, ...unsignedLeb(local)],
  i32Const: (value: number) => [0x41, ...signedLeb(value)],
  i32GeU: [0x4f],
  i32Add: [0x6a],
  i32Sub: [0x6b],
  i32Mul: [0x6c],
  // SIMD instructions: prefix 0xfd, then the LEB128 opcode; memory ops take (align log2, offset).
  v128Load: (offset: number) => [0xfd, 0x00, 0x04, ...unsignedLeb(offset)],
  v128Store: (offset: number) => [0xfd, 0x0b, 0x04, ...unsignedLeb(offset)],
  v128Zero: [0xfd, 0x0c, ...new Array<number>(16).fill(0)],
  i8x16Swizzle: [0xfd, 0x0e],
  i8x16Splat: [0xfd, 0x0f],
  v128And: [0xfd, 0x4e],
  v128Xor: [0xfd, 0x51],
  i8x16ShrU: [0xfd, 0x6d],
};

/**
 * code(rows, cols, length, inputsOffset, outputsOffset): for each output o and each byte i,
 * output[o][i] = XOR over c of lo[o][c][input[c][i] & 15] ^ hi[o][c][input[c][i] >> 4].
 * Steps 32 bytes (two vectors) at a time so each coefficient's two table loads serve both; that
 * measured up to ~1.3x faster than one vector per step. length is a positive multiple of 32;
 * cols >= 1. Tables start at offset 0.
 */
function codeFunctionBody(): number[] {
  const [rows, cols, length, inputsOffset, outputsOffset] = [0, 1, 2, 3, 4];
  const [o, i, c, inputPointer, tablePointer, outputPointer] = [5, 6, 7, 8, 9, 10];
  const [accumulator0, accumulator1, input, lowMask, lowTable, highTable] = [11, 12, 13, 14, 15, 16];
  const locals = vector([
    [6, TYPE_I32],
    [6, TYPE_V128],
  ]);
  /** accumulator ^= lowTable[input & 15] ^ highTable[input >> 4], input loaded from inputPointer + offset. */
  const fold = (accumulator: number, offset: number): number[] => [
    ...op.get(inputPointer), ...op.v128Load(offset), ...op.set(input),
    ...op.get(accumulator),
    ...op.get(lowTable), ...op.get(input), ...op.get(lowMask), ...op.v128And, ...op.i8x16Swizzle, ...op.v128Xor,
    ...op.get(highTable), ...op.get(input), ...op.i32Const(4), ...op.i8x16ShrU, ...op.i8x16Swizzle, ...op.v128Xor,
    ...op.set(accumulator),
  ];
  const instructions = [
    ...op.i32Const(0x0f), ...op.i8x16Splat, ...op.set(lowMask),
    ...op.i32Const(0), ...op.set(o),
    ...op.get(outputsOffset), ...op.set(outputPointer),
    ...op.block, ...op.loop, // for o in 0..rows
    ...op.get(o), ...op.get(rows), ...op.i32GeU, ...op.brIf(1),
    ...op.i32Const(0), ...op.set(i),
    ...op.block, ...op.loop, // for i in 0..length step 32: two vectors per step share the table loads
    ...op.get(i), ...op.get(length), ...op.i32GeU, ...op.brIf(1),
    ...op.v128Zero, ...op.set(accumulator0),
    ...op.v128Zero, ...op.set(accumulator1),
    ...op.get(inputsOffset), ...op.get(i), ...op.i32Add, ...op.set(inputPointer),
    ...op.get(o), ...op.get(cols), ...op.i32Mul, ...op.i32Const(32), ...op.i32Mul, ...op.set(tablePointer),
    ...op.get(cols), ...op.set(c),
    ...op.loop, // for each input (cols >= 1, so do-while)
    ...op.get(tablePointer), ...op.v128Load(0), ...op.set(lowTable),
    ...op.get(tablePointer), ...op.v128Load(16), ...op.set(highTable),
    ...fold(accumulator0, 0),
    ...fold(accumulator1, 16),
    ...op.get(inputPointer), ...op.get(length), ...op.i32Add, ...op.set(inputPointer),
    ...op.get(tablePointer), ...op.i32Const(32), ...op.i32Add, ...op.set(tablePointer),
    ...op.get(c), ...op.i32Const(1), ...op.i32Sub, ...op.tee(c), ...op.brIf(0),
    ...op.end,
    ...op.get(outputPointer), ...op.get(i), ...op.i32Add, ...op.get(accumulator0), ...op.v128Store(0),
    ...op.get(outputPointer), ...op.get(i), ...op.i32Add, ...op.get(accumulator1), ...op.v128Store(16),
    ...op.get(i), ...op.i32Const(32), ...op.i32Add, ...op.set(i),
    ...op.br(0),
    ...op.end, ...op.end,
    ...op.get(outputPointer), ...op.get(length), ...op.i32Add, ...op.set(outputPointer),
    ...op.get(o), ...op.i32Const(1), ...op.i32Add, ...op.set(o),
    ...op.br(0),
    ...op.end, ...op.end,
    ...op.end,
  ];
  const body = [...locals, ...instructions];
  return [...unsignedLeb(body.length), ...body];
}

function assembleModule(): Uint8Array<ArrayBuffer> {
  const bytes = [
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, vector([[0x60, ...vector([[TYPE_I32], [TYPE_I32], [TYPE_I32], [TYPE_I32], [TYPE_I32]]), 0x00]])),
    ...section(3, vector([[0x00]])),
    ...section(5, vector([[0x00, 0x01]])), // one memory, 1 page to start, grown from JS
    ...section(7, vector([
      [...name("code"), 0x00, 0x00],
      [...name("memory"), 0x02, 0x00],
    ])),
    ...section(10, vector([codeFunctionBody()])),
  ];
  return Uint8Array.from(bytes);
}

// --- the kernel -----------------------------------------------------------------------------

type CodeFunction = (rows: number, cols: number, length: number, inputsOffset: number, outputsOffset: number) => void;

interface Instance {
  code: CodeFunction;
  memory: WebAssembly.Memory;
}

let instance: Instance | undefined | null = null; // null: not tried yet; undefined: unavailable

function load(): Instance | undefined {
  if (instance !== null) return instance;
  const bytes = assembleModule();
  if (!WebAssembly.validate(bytes)) {
    instance = undefined;
    return undefined;
  }
  const exports = new WebAssembly.Instance(new WebAssembly.Module(bytes)).exports;
  const code = exports["code"];
  const memory = exports["memory"];
  assert(typeof code === "function", "the kernel module exports code");
  assert(memory instanceof WebAssembly.Memory, "the kernel module exports its memory");
  instance = { code: code as CodeFunction, memory };
  return instance;
}

/** True when this runtime validates and runs the SIMD module. */
export function simdKernelAvailable(): boolean {
  return load() !== undefined;
}

/**
 * Per-coefficient nibble tables for one coefficient matrix, laid out as the kernel reads them.
 * Built once per matrix (encode rows, or a cached decode matrix) and reused for every call.
 */
export function buildNibbleTables(coefficients: Uint8Array[], mulRow: (c: number) => Uint8Array): Uint8Array {
  const cols = coefficients[0]?.length ?? 0;
  const tables = new Uint8Array(coefficients.length * cols * 32);
  assert(tables.length <= TABLES_SIZE_BYTES_MAX, "coefficient tables fit the reserved region");
  coefficients.forEach((coefficientRow, o) => {
    assert(coefficientRow.length === cols, "coefficient rows have equal lengths");
    coefficientRow.forEach((coefficient, c) => {
      const row = mulRow(coefficient);
      const base = (o * cols + c) * 32;
      for (let x = 0; x < 16; x++) {
        tables[base + x] = row[x]!;
        tables[base + 16 + x] = row[x << 4]!;
      }
    });
  });
  return tables;
}

/**
 * outputs[o] = XOR over c of coefficient[o][c] * inputs[c], for the first `length` bytes of
 * each. tables come from buildNibbleTables for the same coefficient matrix. Returns false (and
 * touches nothing) when SIMD is unavailable.
 */
export function simdCodeShards(tables: Uint8Array, inputs: readonly Uint8Array[], outputs: Uint8Array[], length: number): boolean {
  const kernel = load();
  if (kernel === undefined) return false;
  const rows = outputs.length;
  const cols = inputs.length;
  assert(tables.length === rows * cols * 32, "tables match the matrix shape");
  assert(cols >= 1 && rows >= 1, "at least one input and one output");
  const inputsOffset = TABLES_SIZE_BYTES_MAX;
  const outputsOffset = inputsOffset + cols * SIMD_BLOCK_SIZE_BYTES;
  const needBytes = outputsOffset + rows * SIMD_BLOCK_SIZE_BYTES;
  if (kernel.memory.buffer.byteLength < needBytes) {
    kernel.memory.grow(Math.ceil((needBytes - kernel.memory.buffer.byteLength) / WASM_PAGE_SIZE_BYTES));
  }
  // Views are taken after any grow: growing detaches the old ArrayBuffer.
  const memory = new Uint8Array(kernel.memory.buffer);
  memory.set(tables, 0);
  for (let start = 0; start < length; start += SIMD_BLOCK_SIZE_BYTES) {
    const blockLength = Math.min(SIMD_BLOCK_SIZE_BYTES, length - start);
    const paddedLength = (blockLength + 31) & ~31;
    for (let c = 0; c < cols; c++) {
      const at = inputsOffset + c * paddedLength;
      memory.set(inputs[c]!.subarray(start, start + blockLength), at);
      // Stale bytes past the end would only reach output bytes we never copy out, but zeroing
      // the tail keeps every call's result a function of its inputs alone.
      if (paddedLength !== blockLength) memory.fill(0, at + blockLength, at + paddedLength);
    }
    const outputsAt = inputsOffset + cols * paddedLength;
    kernel.code(rows, cols, paddedLength, inputsOffset, outputsAt);
    for (let o = 0; o < rows; o++) {
      const at = outputsAt + o * paddedLength;
      outputs[o]!.set(memory.subarray(at, at + blockLength), start);
    }
  }
  return true;
}
