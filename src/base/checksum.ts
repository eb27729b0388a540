/**
 * Checksums: CRC32 and CRC32C (native, carry-less multiply, from @node-rs/crc32; zlib and a
 * table-driven slice-by-8 where that module does not load), CRC64NVME (table-driven), plus the
 * hash algorithms S3 names. Each is exposed as an incremental `Checksummer` so a body is hashed
 * once, as it streams.
 *
 * Why a native module: every needle's bytes are checksummed when written and again on every
 * read, so CRC32 runs over each byte a PUT or GET moves. Node's zlib.crc32 is zlib's portable
 * code, 2.4-3.5 GiB/s here; @node-rs/crc32 (crc32fast, PCLMULQDQ) 14-16 GiB/s, identical values.
 * perf of a 64 MiB GET from the disk had zlib's crc32 at 23% of both cores.
 */
import { createHash, type Hash } from "node:crypto";
import { createRequire } from "node:module";
import * as zlib from "node:zlib";
import { assert } from "./assert.js";

type Crc32Function = (data: Uint8Array, previous?: number) => number;

const zlibCrc32 = (zlib as unknown as { crc32?: Crc32Function }).crc32;
assert(typeof zlibCrc32 === "function", "node:zlib.crc32 is required (Node.js >= 20.15)");

/** The native CRC32 and CRC32C, or undefined where the module (a prebuilt binary per platform) does not load. */
const native = ((): { crc32: Crc32Function; crc32c: Crc32Function } | undefined => {
  try {
    const module = createRequire(import.meta.url)("@node-rs/crc32") as { crc32?: unknown; crc32c?: unknown };
    if (typeof module.crc32 !== "function" || typeof module.crc32c !== "function") return undefined;
    return { crc32: module.crc32 as Crc32Function, crc32c: module.crc32c as Crc32Function };
  } catch {
    return undefined;
  }
})();

/** Which code computes CRC32 and CRC32C in this process. */
export const CRC32_IMPLEMENTATION: "native" | "portable" = native === undefined ? "portable" : "native";

export function portableCrc32(data: Uint8Array, previous = 0): number {
  return zlibCrc32!(data, previous >>> 0) >>> 0;
}

export const crc32: (data: Uint8Array, previous?: number) => number =
  native === undefined ? portableCrc32 : (data, previous = 0) => native.crc32(data, previous >>> 0) >>> 0;

// ---- CRC32 combination (zlib's crc32_combine), so a needle's and a volume's CRC32 follow from
// the chunk's without another pass over its bytes: each pass costs about half of MD5. ----
const CRC32_POLYNOMIAL_REFLECTED = 0xedb88320;

/** a(x) * b(x) modulo the CRC32 polynomial, in the reflected bit order CRC32 uses. */
function multiplyModulo(a: number, b: number): number {
  let mask = 0x80000000;
  let product = 0;
  for (;;) {
    if ((a & mask) !== 0) {
      product ^= b;
      if ((a & (mask - 1)) === 0) break;
    }
    mask >>>= 1;
    b = b & 1 ? (b >>> 1) ^ CRC32_POLYNOMIAL_REFLECTED : b >>> 1;
  }
  return product >>> 0;
}

/** X_POWERS[k] = x^(2^k) modulo the polynomial. */
const X_POWERS = (() => {
  const powers = new Uint32Array(32);
  let power = 0x40000000; // x^1
  powers[0] = power;
  for (let k = 1; k < 32; k++) powers[k] = power = multiplyModulo(power, power);
  return powers;
})();

/** CRC32 of A followed by B, from CRC32(A), CRC32(B) and B's length. */
export function crc32Combine(crcA: number, crcB: number, lengthBBytes: number): number {
  assert(Number.isSafeInteger(lengthBBytes) && lengthBBytes >= 0, "a length is a non-negative integer");
  // x^(8 * lengthB) mod p, from the squares table; lengthB < 2^32 here (needles, volumes).
  let power = 0x80000000; // x^0
  let bits = lengthBBytes;
  for (let k = 3; bits > 0; k++, bits = Math.floor(bits / 2)) {
    if (bits % 2 === 1) power = multiplyModulo(X_POWERS[k % 32]!, power);
  }
  return (multiplyModulo(power, crcA >>> 0) ^ crcB) >>> 0;
}

// ---- CRC32C (Castagnoli), reflected polynomial 0x82F63B78, slice-by-8 ----
const CRC32C_TABLES: Uint32Array[] = (() => {
  const tables: Uint32Array[] = [];
  const base = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    base[i] = c >>> 0;
  }
  tables.push(base);
  for (let t = 1; t < 8; t++) {
    const prev = tables[t - 1]!;
    const table = new Uint32Array(256);
    for (let i = 0; i < 256; i++) table[i] = ((prev[i]! >>> 8) ^ base[prev[i]! & 0xff]!) >>> 0;
    tables.push(table);
  }
  return tables;
})();

export const crc32c: (data: Uint8Array, previous?: number) => number =
  native === undefined ? portableCrc32c : (data, previous = 0) => native.crc32c(data, previous >>> 0) >>> 0;

export function portableCrc32c(data: Uint8Array, previous = 0): number {
  const [t0, t1, t2, t3, t4, t5, t6, t7] = CRC32C_TABLES as [
    Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array,
  ];
  let crc = ~previous >>> 0;
  let i = 0;
  const n = data.length;
  for (; i + 8 <= n; i += 8) {
    const a = (crc ^ (data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24))) >>> 0;
    crc =
      t7[a & 0xff]! ^ t6[(a >>> 8) & 0xff]! ^ t5[(a >>> 16) & 0xff]! ^ t4[a >>> 24]! ^
      t3[data[i + 4]!]! ^ t2[data[i + 5]!]! ^ t1[data[i + 6]!]! ^ t0[data[i + 7]!]!;
  }
  for (; i < n; i++) crc = t0[(crc ^ data[i]!) & 0xff]! ^ (crc >>> 8);
  return ~crc >>> 0;
}

// ---- CRC64NVME, reflected polynomial 0x9A6C9329AC4BC9B5, table over two 32-bit halves ----
const CRC64_TABLE_LO = new Uint32Array(256);
const CRC64_TABLE_HI = new Uint32Array(256);
(() => {
  const polyLo = 0xac4bc9b5;
  const polyHi = 0x9a6c9329;
  for (let i = 0; i < 256; i++) {
    let lo = i;
    let hi = 0;
    for (let k = 0; k < 8; k++) {
      const carry = lo & 1;
      lo = ((lo >>> 1) | ((hi & 1) << 31)) >>> 0;
      hi = hi >>> 1;
      if (carry) {
        lo = (lo ^ polyLo) >>> 0;
        hi = (hi ^ polyHi) >>> 0;
      }
    }
    CRC64_TABLE_LO[i] = lo;
    CRC64_TABLE_HI[i] = hi;
  }
})();

/** CRC64NVME; the running value is passed as a bigint so it can continue across calls. */
export function crc64nvme(data: Uint8Array, previous = 0n): bigint {
  let lo = ~Number(previous & 0xffffffffn) >>> 0;
  let hi = ~Number((previous >> 32n) & 0xffffffffn) >>> 0;
  for (let i = 0; i < data.length; i++) {
    const index = (lo ^ data[i]!) & 0xff;
    lo = (((lo >>> 8) | ((hi & 0xff) << 24)) ^ CRC64_TABLE_LO[index]!) >>> 0;
    hi = ((hi >>> 8) ^ CRC64_TABLE_HI[index]!) >>> 0;
  }
  return (BigInt(~hi >>> 0) << 32n) | BigInt(~lo >>> 0);
}

export type ChecksumAlgorithm = "CRC32" | "CRC32C" | "CRC64NVME" | "SHA1" | "SHA256";
export const CHECKSUM_ALGORITHMS: readonly ChecksumAlgorithm[] = ["CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256"];

/** An incremental checksum whose digest is the base64 form S3 puts in x-amz-checksum-* headers. */
export interface Checksummer {
  update(data: Uint8Array): void;
  digest(): Buffer;
}

class Crc32Checksummer implements Checksummer {
  private value = 0;
  constructor(private readonly fn: (data: Uint8Array, previous: number) => number) {}
  update(data: Uint8Array): void {
    this.value = this.fn(data, this.value);
  }
  digest(): Buffer {
    const out = Buffer.alloc(4);
    out.writeUInt32BE(this.value >>> 0);
    return out;
  }
}

class Crc64Checksummer implements Checksummer {
  private value = 0n;
  update(data: Uint8Array): void {
    this.value = crc64nvme(data, this.value);
  }
  digest(): Buffer {
    const out = Buffer.alloc(8);
    out.writeBigUInt64BE(this.value);
    return out;
  }
}

class HashChecksummer implements Checksummer {
  private readonly hash: Hash;
  constructor(algorithm: string) {
    this.hash = createHash(algorithm);
  }
  update(data: Uint8Array): void {
    this.hash.update(data);
  }
  digest(): Buffer {
    return this.hash.digest();
  }
}

export function newChecksummer(algorithm: ChecksumAlgorithm | "MD5"): Checksummer {
  switch (algorithm) {
    case "CRC32":
      return new Crc32Checksummer(crc32);
    case "CRC32C":
      return new Crc32Checksummer(crc32c);
    case "CRC64NVME":
      return new Crc64Checksummer();
    case "SHA1":
      return new HashChecksummer("sha1");
    case "SHA256":
      return new HashChecksummer("sha256");
    case "MD5":
      return new HashChecksummer("md5");
  }
}

/** The byte length of each algorithm's digest, for validating a client-supplied value. */
export function checksumDigestSizeBytes(algorithm: ChecksumAlgorithm): number {
  switch (algorithm) {
    case "CRC32":
    case "CRC32C":
      return 4;
    case "CRC64NVME":
      return 8;
    case "SHA1":
      return 20;
    case "SHA256":
      return 32;
  }
}

export function parseChecksumAlgorithm(value: string): ChecksumAlgorithm | undefined {
  const upper = value.toUpperCase();
  return (CHECKSUM_ALGORITHMS as readonly string[]).includes(upper) ? (upper as ChecksumAlgorithm) : undefined;
}
