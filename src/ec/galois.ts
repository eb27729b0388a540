/**
 * Arithmetic in GF(2^8) with the reducing polynomial x^8 + x^4 + x^3 + x^2 + 1 (0x11d), the
 * field used by Backblaze, klauspost/reedsolomon, ISA-L and Jerasure, and small-matrix helpers
 * over it. Addition is XOR; multiplication goes through log/exp tables (generator 2) and, for the
 * hot loops, a full 256x256 product table whose row c is the map b -> c*b.
 */
import { assert } from "../base/index.js";

export const GF_POLYNOMIAL = 0x11d;
export const GF_ORDER = 256;

/** EXP[i] = 2^i, doubled in length so EXP[LOG[a] + LOG[b]] never needs a modulo. */
const EXP = new Uint8Array(2 * GF_ORDER);
/** LOG[a] for a != 0; LOG[0] is unused. */
const LOG = new Uint8Array(GF_ORDER);
{
  let value = 1;
  for (let power = 0; power < GF_ORDER - 1; power++) {
    EXP[power] = value;
    LOG[value] = power;
    value <<= 1;
    if (value & 0x100) value ^= GF_POLYNOMIAL;
  }
  for (let power = GF_ORDER - 1; power < EXP.length; power++) EXP[power] = EXP[power - (GF_ORDER - 1)]!;
}

export function gfMul(a: number, b: number): number {
  if (a === 0 || b === 0) return 0;
  return EXP[LOG[a]! + LOG[b]!]!;
}

export function gfDiv(a: number, b: number): number {
  assert(b !== 0, "division by zero in GF(2^8)");
  if (a === 0) return 0;
  return EXP[LOG[a]! + (GF_ORDER - 1) - LOG[b]!]!;
}

export function gfInverse(a: number): number {
  return gfDiv(1, a);
}

/** a^n with 0^0 = 1 (the convention the Vandermonde construction relies on). */
export function gfPow(a: number, n: number): number {
  if (n === 0) return 1;
  if (a === 0) return 0;
  return EXP[(LOG[a]! * n) % (GF_ORDER - 1)]!;
}

/** MUL_TABLE[c * 256 + b] = c * b. 64 KiB, so it stays in L2 while encoding. */
export const MUL_TABLE: Uint8Array = (() => {
  const table = new Uint8Array(GF_ORDER * GF_ORDER);
  for (let c = 0; c < GF_ORDER; c++) {
    for (let b = 0; b < GF_ORDER; b++) table[c * GF_ORDER + b] = gfMul(c, b);
  }
  return table;
})();

/** The 256-entry row of MUL_TABLE for coefficient c: row[b] = c * b. */
export function mulRow(c: number): Uint8Array {
  return MUL_TABLE.subarray(c * GF_ORDER, (c + 1) * GF_ORDER);
}

/** A matrix is an array of equal-length rows. */
export type Matrix = Uint8Array[];

export function matrixMultiply(left: Matrix, right: Matrix): Matrix {
  const inner = right.length;
  const columns = right[0]?.length ?? 0;
  return left.map((leftRow) => {
    assert(leftRow.length === inner, "matrix dimensions agree");
    const out = new Uint8Array(columns);
    for (let column = 0; column < columns; column++) {
      let sum = 0;
      for (let i = 0; i < inner; i++) sum ^= gfMul(leftRow[i]!, right[i]![column]!);
      out[column] = sum;
    }
    return out;
  });
}

/** Inverse of a square matrix by Gauss-Jordan elimination; undefined when it is singular. */
export function matrixInvert(matrix: Matrix): Matrix | undefined {
  const size = matrix.length;
  const work = matrix.map((row) => {
    assert(row.length === size, "only square matrices are inverted");
    const augmented = new Uint8Array(2 * size);
    augmented.set(row);
    return augmented;
  });
  for (let i = 0; i < size; i++) work[i]![size + i] = 1;
  for (let column = 0; column < size; column++) {
    let pivot = column;
    while (pivot < size && work[pivot]![column] === 0) pivot++;
    if (pivot === size) return undefined;
    if (pivot !== column) [work[pivot], work[column]] = [work[column]!, work[pivot]!];
    const pivotRow = work[column]!;
    const scale = gfInverse(pivotRow[column]!);
    for (let j = 0; j < 2 * size; j++) pivotRow[j] = gfMul(pivotRow[j]!, scale);
    for (let row = 0; row < size; row++) {
      if (row === column) continue;
      const target = work[row]!;
      const factor = target[column]!;
      if (factor === 0) continue;
      for (let j = 0; j < 2 * size; j++) target[j] = target[j]! ^ gfMul(factor, pivotRow[j]!);
    }
  }
  return work.map((row) => row.slice(size));
}
