// Proves GF(2^8) (polynomial 0x11d) is a field as implemented: on all 256 x 256 pairs the product
// table matches gfMul, multiplication commutes, nonzero elements have inverses and division undoes
// multiplication; associativity and distributivity over XOR hold on every triple with one factor
// from a spread of 16 values (256 x 256 x 16 checks); and small-matrix inversion round-trips.
import { test } from "node:test";
import assert from "node:assert/strict";
import { MUL_TABLE, gfDiv, gfInverse, gfMul, gfPow, matrixInvert, matrixMultiply } from "./galois.js";

test("every nonzero element has an inverse and division undoes multiplication", () => {
  for (let a = 0; a < 256; a++) {
    if (a !== 0) assert.equal(gfMul(a, gfInverse(a)), 1, `a=${a}`);
    for (let b = 0; b < 256; b++) {
      const product = gfMul(a, b);
      assert.equal(MUL_TABLE[a * 256 + b], product);
      assert.equal(product, gfMul(b, a));
      assert.equal(product === 0, a === 0 || b === 0, "no zero divisors");
      if (b !== 0) assert.equal(gfDiv(product, b), a);
    }
  }
  assert.equal(gfMul(2, 0x80), 0x1d, "reduction by x^8 + x^4 + x^3 + x^2 + 1");
  assert.throws(() => gfDiv(1, 0));
});

test("multiplication is associative and distributes over XOR", () => {
  const spread = [0, 1, 2, 3, 7, 0x1d, 0x53, 0x80, 0x8e, 0xa5, 0xca, 0xf0, 0xfd, 0xfe, 0xff, 0x42];
  for (let a = 0; a < 256; a++) {
    for (let b = 0; b < 256; b++) {
      for (const c of spread) {
        assert.equal(gfMul(a, b ^ c), gfMul(a, b) ^ gfMul(a, c));
        assert.equal(gfMul(a, gfMul(b, c)), gfMul(gfMul(a, b), c));
      }
    }
  }
});

test("powers of 2 generate every nonzero element once", () => {
  const seen = new Set<number>();
  for (let n = 0; n < 255; n++) seen.add(gfPow(2, n));
  assert.equal(seen.size, 255);
  assert.ok(!seen.has(0));
  assert.equal(gfPow(0, 0), 1);
  assert.equal(gfPow(0, 3), 0);
});

test("a matrix times its inverse is the identity; a singular matrix has none", () => {
  const matrix = [Uint8Array.of(1, 2, 3), Uint8Array.of(4, 5, 6), Uint8Array.of(7, 8, 10)];
  const inverse = matrixInvert(matrix);
  assert.ok(inverse !== undefined);
  const product = matrixMultiply(matrix, inverse);
  product.forEach((row, r) => row.forEach((value, c) => assert.equal(value, r === c ? 1 : 0)));
  assert.equal(matrixInvert([Uint8Array.of(1, 2), Uint8Array.of(1, 2)]), undefined);
});
