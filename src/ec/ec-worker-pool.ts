/**
 * The codec on worker threads, so a gateway encodes and decodes without blocking its event loop
 * (a 4 MiB chunk costs about 1-2 ms on the SIMD kernel, 20-40 ms on the JS one).
 *
 * Same contract as ReedSolomon, asynchronous: inputs are never modified (they are copied into
 * one packed ArrayBuffer which is transferred, so a caller's Buffer from Node's shared pool is
 * never detached), results come back as views of one transferred ArrayBuffer (no copy). Requests
 * are checked here, before crossing threads, so TooFewShards and assertion failures reach the
 * caller as the same error types the synchronous codec throws.
 *
 * Each request goes to the worker with the fewest in flight. Workers are unref'd while idle, so
 * a pool never keeps a process alive by itself; close() terminates them.
 */
import { Worker } from "node:worker_threads";
import { assert, copyBytes, MEBIBYTE } from "../base/index.js";
import type { EcWorkerReply, EcWorkerRequest } from "./ec-worker.js";
import { EC_SHARD_COUNT_MAX, TooFewShards } from "./reed-solomon.js";
import { shardSizeBytesFor, stripeBuffer, type EcScheme } from "./shards.js";

type Produced = { packed: ArrayBuffer; producedIndexes: number[]; crc32s?: number[] };

interface Pending {
  resolve: (produced: Produced) => void;
  reject: (error: Error) => void;
}

interface PoolWorker {
  worker: Worker;
  pending: Map<number, Pending>;
}

export interface EcWorkerPoolOptions {
  /** Threads to start; a gateway typically uses its core count minus one. */
  workerCount: number;
}

/** Memory of released stripes kept for reuse, in all sizes together (see releaseShards). */
const STRIPE_SPARE_BYTES_MAX = 64 * MEBIBYTE;

export class EcWorkerPool {
  private readonly workers: PoolWorker[] = [];
  private nextRequestId = 1;
  private closed = false;
  /** Released stripes' memory by byte length: transferred to a worker and back, never shared. */
  private readonly spareStripes = new Map<number, ArrayBuffer[]>();
  private spareStripeBytes = 0;

  constructor(options: EcWorkerPoolOptions) {
    assert(Number.isInteger(options.workerCount) && options.workerCount >= 1, `worker count ${options.workerCount} is a positive integer`);
    for (let i = 0; i < options.workerCount; i++) this.workers.push(this.startWorker());
  }

  /** The m parity shards for k equal-length data shards; see ReedSolomon.encode. */
  async encode(scheme: EcScheme, dataShards: readonly Uint8Array[]): Promise<Uint8Array[]> {
    checkScheme(scheme);
    assert(dataShards.length === scheme.k, `encode takes ${scheme.k} data shards, got ${dataShards.length}`);
    const shardSizeBytes = dataShards[0]!.length;
    for (const shard of dataShards) assert(shard.length === shardSizeBytes, "data shards have equal lengths");
    const stripe = Buffer.allocUnsafeSlow((scheme.k + scheme.m) * shardSizeBytes);
    dataShards.forEach((shard, shardIndex) => copyBytes(stripe, shard, shardIndex * shardSizeBytes));
    const { shards } = await this.encodeStripe(scheme, stripe, shardSizeBytes, false);
    return shards.slice(scheme.k);
  }

  /**
   * The k data shards (the chunk cut as splitIntoDataShards cuts it) and m parity shards of a
   * chunk, each with its CRC32. The chunk is copied once, into a buffer for the whole stripe that
   * is transferred to a worker; the parity and every shard's checksum are computed there, and the
   * shards come back as views of that one buffer (never of the chunk, which the caller may reuse).
   */
  async encodeChunk(scheme: EcScheme, chunk: Uint8Array): Promise<Array<{ data: Buffer; crc32: number }>> {
    checkScheme(scheme);
    const shardCount = scheme.k + scheme.m;
    const shardSizeBytes = shardSizeBytesFor(chunk.length, scheme.k);
    if (shardSizeBytes === 0) return Array.from({ length: shardCount }, () => ({ data: Buffer.alloc(0), crc32: 0 }));
    const memory = this.takeSpareStripe(shardSizeBytes * shardCount);
    const { shards, crc32s } = await this.encodeStripe(scheme, stripeBuffer(chunk, scheme.k, shardCount, memory), shardSizeBytes, true);
    assert(crc32s !== undefined && crc32s.length === shardCount, "an encoded stripe comes back with a CRC32 per shard");
    return shards.map((data, shardIndex) => ({ data, crc32: crc32s[shardIndex]! }));
  }

  /**
   * The caller of encodeChunk is done with its shards: nothing reads them any more (every write of
   * them settled) and nothing will. Their memory is kept for a later stripe of the same size,
   * within STRIPE_SPARE_BYTES_MAX. Optional: shards never released are collected as garbage.
   *
   * Why: a stripe lives as long as its shard writes (about 200 ms in the bench's EC 4+2 1 MiB
   * PUTs), long enough to be promoted to V8's old generation, where its external memory is freed
   * only by a full mark-compact; fresh stripes made the gateway run one every 0.3-0.6 s, 8-30 ms
   * each (`--trace-gc`). A reused one is already counted.
   */
  releaseShards(shards: ReadonlyArray<{ data: Buffer }>): void {
    const memory = shards[0]?.data.buffer;
    if (!(memory instanceof ArrayBuffer) || shards.some((shard) => shard.data.length === 0)) return;
    const total = shards.reduce((sum, shard) => sum + shard.data.length, 0);
    assert(total === memory.byteLength && shards.every((shard) => shard.data.buffer === memory), "released shards are one whole stripe");
    if (this.spareStripeBytes + memory.byteLength > STRIPE_SPARE_BYTES_MAX) return;
    const spares = this.spareStripes.get(memory.byteLength) ?? [];
    assert(!spares.includes(memory), "a stripe is released once");
    spares.push(memory);
    this.spareStripes.set(memory.byteLength, spares);
    this.spareStripeBytes += memory.byteLength;
  }

  private takeSpareStripe(sizeBytes: number): ArrayBuffer | undefined {
    const memory = this.spareStripes.get(sizeBytes)?.pop();
    if (memory !== undefined) this.spareStripeBytes -= sizeBytes;
    return memory;
  }

  /**
   * Parity into the last m slots of `stripe` (k + m shards of shardSizeBytes, the k data shards
   * filled) on a worker; the stripe, which owns its ArrayBuffer, is transferred and comes back as
   * k + m views of the one returned ArrayBuffer.
   */
  private async encodeStripe(
    scheme: EcScheme,
    stripe: Buffer,
    shardSizeBytes: number,
    withCrc32s: boolean,
  ): Promise<{ shards: Buffer[]; crc32s: number[] | undefined }> {
    const packed = stripe.buffer as ArrayBuffer; // Buffer.allocUnsafeSlow: an ArrayBuffer of its own
    const produced = await this.send({ id: 0, kind: "encode", k: scheme.k, m: scheme.m, shardSizeBytes, packed, withCrc32s });
    const shards = produced.producedIndexes.map((shardIndex) => Buffer.from(produced.packed, shardIndex * shardSizeBytes, shardSizeBytes));
    return { shards, crc32s: produced.crc32s };
  }

  /** All k + m shards from the present ones; see ReedSolomon.reconstruct. Rejects with TooFewShards. */
  async reconstruct(scheme: EcScheme, shards: ReadonlyArray<Uint8Array | undefined>): Promise<Uint8Array[]> {
    checkScheme(scheme);
    assert(shards.length === scheme.k + scheme.m, `reconstruct takes ${scheme.k + scheme.m} shard slots, got ${shards.length}`);
    const presentIndexes = shards.flatMap((shard, shardIndex) => (shard === undefined ? [] : [shardIndex]));
    if (presentIndexes.length < scheme.k) throw new TooFewShards(presentIndexes.length, scheme.k);
    if (presentIndexes.length === shards.length) return shards.map((shard) => shard!);
    const shardSizeBytes = shards[presentIndexes[0]!]!.length;
    for (const shardIndex of presentIndexes) assert(shards[shardIndex]!.length === shardSizeBytes, "present shards have equal lengths");
    // Every present shard is sent (not just the k the decoder uses) so the worker rebuilds only
    // the lost ones; the copy costs far less than re-encoding parity we already have.
    const packed = packCopy(presentIndexes.map((i) => shards[i]!), shardSizeBytes);
    const request: EcWorkerRequest = { id: 0, kind: "reconstruct", k: scheme.k, m: scheme.m, shardSizeBytes, packed, presentIndexes };
    const produced = await this.send(request);
    const rebuilt = unpack(produced.packed, shardSizeBytes, produced.producedIndexes.length);
    const result = shards.slice();
    produced.producedIndexes.forEach((shardIndex, i) => {
      assert(result[shardIndex] === undefined, `the worker rebuilt only lost shards, not ${shardIndex}`);
      result[shardIndex] = rebuilt[i];
    });
    return result.map((shard, shardIndex) => {
      assert(shard !== undefined, `shard ${shardIndex} is present after reconstruction`);
      return shard;
    });
  }

  /** Terminates every worker; requests still in flight reject. */
  async close(): Promise<void> {
    this.closed = true;
    const workers = this.workers.splice(0);
    await Promise.all(workers.map(async (poolWorker) => poolWorker.worker.terminate()));
    for (const poolWorker of workers) rejectAll(poolWorker, new Error("EcWorkerPool closed"));
  }

  private send(request: EcWorkerRequest): Promise<Produced> {
    assert(!this.closed, "the pool is open");
    let target = this.workers[0]!;
    for (const poolWorker of this.workers) if (poolWorker.pending.size < target.pending.size) target = poolWorker;
    const id = this.nextRequestId++;
    return new Promise((resolve, reject) => {
      target.pending.set(id, { resolve, reject });
      if (target.pending.size === 1) target.worker.ref();
      target.worker.postMessage({ ...request, id }, [request.packed]);
    });
  }

  private startWorker(): PoolWorker {
    const worker = new Worker(new URL("./ec-worker.js", import.meta.url));
    const poolWorker: PoolWorker = { worker, pending: new Map() };
    worker.on("message", (reply: EcWorkerReply) => {
      const pending = poolWorker.pending.get(reply.id);
      assert(pending !== undefined, `a reply matches request ${reply.id}`);
      poolWorker.pending.delete(reply.id);
      if (poolWorker.pending.size === 0) worker.unref();
      if (reply.ok) pending.resolve(reply);
      else pending.reject(new Error(`erasure-coding worker failed: ${reply.message}`));
    });
    worker.on("error", (error) => {
      // A worker that threw outside a request is gone; fail its requests and replace it so the
      // pool keeps its size.
      rejectAll(poolWorker, error);
      const index = this.workers.indexOf(poolWorker);
      if (index !== -1 && !this.closed) this.workers[index] = this.startWorker();
    });
    worker.unref(); // after the listeners: adding a "message" listener refs the worker again
    return poolWorker;
  }
}

function checkScheme(scheme: EcScheme): void {
  assert(Number.isInteger(scheme.k) && scheme.k >= 1, `k ${scheme.k} is a positive integer`);
  assert(Number.isInteger(scheme.m) && scheme.m >= 1, `m ${scheme.m} is a positive integer`);
  assert(scheme.k + scheme.m <= EC_SHARD_COUNT_MAX, `at most ${EC_SHARD_COUNT_MAX} shards in a stripe`);
}

function rejectAll(poolWorker: PoolWorker, error: Error): void {
  for (const pending of poolWorker.pending.values()) pending.reject(error);
  poolWorker.pending.clear();
}

function packCopy(shards: readonly Uint8Array[], shardSizeBytes: number): ArrayBuffer {
  const packed = new Uint8Array(shards.length * shardSizeBytes);
  shards.forEach((shard, i) => packed.set(shard, i * shardSizeBytes));
  return packed.buffer;
}

function unpack(packed: ArrayBuffer, shardSizeBytes: number, count: number): Uint8Array[] {
  return Array.from({ length: count }, (_, i) => new Uint8Array(packed, i * shardSizeBytes, shardSizeBytes));
}
