/**
 * Reproducible random shard contents for the erasure-coding tests: a 32-byte seed from
 * crypto.randomBytes (or EC_TEST_SEED=<64 hex digits> to replay a failure) keys an AES-256-CTR
 * stream. Each test file prints its seed.
 */
import { createCipheriv, randomBytes } from "node:crypto";

export class SeededBytes {
  readonly seedHex: string;
  private readonly cipher;

  constructor(label: string) {
    const fromEnvironment = process.env["EC_TEST_SEED"];
    const seed = fromEnvironment !== undefined ? Buffer.from(fromEnvironment, "hex") : randomBytes(32);
    if (seed.length !== 32) throw new Error("EC_TEST_SEED must be 64 hex digits");
    this.seedHex = seed.toString("hex");
    this.cipher = createCipheriv("aes-256-ctr", seed, Buffer.alloc(16));
    console.log(`${label}: seed ${this.seedHex} (replay with EC_TEST_SEED=${this.seedHex})`);
  }

  /** The next sizeBytes bytes of the stream, as a plain Uint8Array with its own buffer. */
  bytes(sizeBytes: number): Uint8Array {
    return new Uint8Array(this.cipher.update(Buffer.alloc(sizeBytes)));
  }

  shards(count: number, sizeBytes: number): Uint8Array[] {
    return Array.from({ length: count }, () => this.bytes(sizeBytes));
  }
}

export function* subsetsOf(n: number, size: number, start = 0): Generator<number[]> {
  if (size === 0) {
    yield [];
    return;
  }
  for (let i = start; i <= n - size; i++) for (const rest of subsetsOf(n, size - 1, i + 1)) yield [i, ...rest];
}

export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}
