/**
 * MD5 (the ETag) and the requested x-amz-checksum of a PUT body, computed once as it streams.
 * Small bodies are hashed inline. Large ones are hashed on a worker thread, so that on a 2-core
 * machine one core hashes while the event loop receives, checksums and writes the chunks: MD5
 * alone runs at about one core's worth of bytes, so inline it capped a large PUT at well under
 * MD5's speed, and it stalled the loop for every other request.
 *
 * An offloaded body is copied once, into pooled chunk buffers (shared memory, see
 * chunk-buffer-pool.ts) that the thread hashes in place, range by range, and that are the
 * chunks the data path writes: no second copy to assemble chunks, no 4 MiB allocation per chunk,
 * and each chunk's CRC32 (for its needle) is computed by the thread over the very bytes written,
 * so the in-process data node need not check it again. At most HASH_BYTES_IN_FLIGHT_MAX per body
 * wait for the worker: beyond that `update` waits, which is backpressure all the way to the
 * client's socket.
 */
import { createHash, type Hash } from "node:crypto";
import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import {
  assert,
  CHUNK_BUFFER_DATA_OFFSET_BYTES,
  CHUNK_SIZE_BYTES,
  chunkBufferRef,
  copyBytes,
  crc32Combine,
  MEBIBYTE,
  newChecksummer,
  releaseChunkBuffer,
  tryTakeChunkBuffer,
  type ChecksumAlgorithm,
  type Checksummer,
  type ChunkBuffer,
} from "../base/index.js";
import type { HashWorkerReply, HashWorkerRequest } from "./hash-worker.js";

/** Bodies at least this large (as declared) are hashed on a worker thread. */
export const HASH_OFFLOAD_SIZE_BYTES_MIN = 1 * MEBIBYTE;
/** Bytes of a chunk hashed per message to the worker: large enough that messaging costs nothing. */
const HASH_BATCH_SIZE_BYTES = 1 * MEBIBYTE;
/** Bytes of one body sent but not yet hashed; `update` waits beyond it. */
const HASH_BYTES_IN_FLIGHT_MAX = 8 * MEBIBYTE;
/**
 * Hashing threads: one per core, at least two, at most four. MD5 is serial, so one body hashes
 * at one core's speed at best; with a single thread on two cores, two large PUTs at once queued
 * behind each other (the thread was the bottleneck, 70% busy, and 64 MiB PUTs ran at ~350 MiB/s;
 * with two threads 395-440). The threads are niced: the event loop keeps its priority.
 */
const HASH_WORKER_COUNT = Math.max(2, Math.min(4, availableParallelism()));

export interface BodyDigests {
  md5: Buffer;
  checksum: Buffer | undefined;
}

export interface BodyHasher {
  /** Resolves at once unless too many bytes wait for the worker. */
  update(piece: Buffer): Promise<void> | undefined;
  /** Whether this hasher assembles the body's chunks (large bodies) or the caller writes the pieces it passes to `update`. */
  readonly assemblesChunks: boolean;
  /**
   * The next chunk ready to be written, in body order: each full CHUNK_SIZE_BYTES chunk once
   * filled and, with `end` (the body is over), the short last one; undefined when none is ready
   * (always, unless assemblesChunks).
   */
  takeChunk(end: boolean): Buffer | undefined;
  /**
   * CRC32 of a chunk takeChunk returned, computed by the hashing thread over that very memory
   * (not a copy), or undefined (the caller then computes it).
   */
  chunkCrc32(chunk: Buffer): Promise<number> | undefined;
  /**
   * The caller is done with a chunk takeChunk returned (every write of it settled): its buffer
   * goes back to the pool. Exactly once per chunk, also when the body fails.
   */
  releaseChunk(chunk: Buffer): void;
  digests(): Promise<BodyDigests>;
  /** The body failed: drop the worker's state and the chunks not yet taken. */
  abandon(): void;
}

export function newBodyHasher(options: { checksumAlgorithm: ChecksumAlgorithm | undefined; declaredSizeBytes: number | undefined }): BodyHasher {
  if (options.declaredSizeBytes !== undefined && options.declaredSizeBytes >= HASH_OFFLOAD_SIZE_BYTES_MIN) {
    return new OffloadedHasher(pool(), options.checksumAlgorithm);
  }
  return new InlineHasher(options.checksumAlgorithm);
}

class InlineHasher implements BodyHasher {
  private readonly md5: Hash = createHash("md5");
  private readonly checksummer: Checksummer | undefined;

  constructor(checksumAlgorithm: ChecksumAlgorithm | undefined) {
    this.checksummer = checksumAlgorithm === undefined ? undefined : newChecksummer(checksumAlgorithm);
  }

  update(piece: Buffer): undefined {
    this.md5.update(piece);
    this.checksummer?.update(piece);
    return undefined;
  }

  async digests(): Promise<BodyDigests> {
    return { md5: this.md5.digest(), checksum: this.checksummer?.digest() };
  }

  readonly assemblesChunks = false;

  takeChunk(): undefined {
    return undefined;
  }

  chunkCrc32(): undefined {
    return undefined;
  }

  releaseChunk(): void {}

  abandon(): void {}
}

/** A range of a chunk sent to the hashing thread, and its CRC32 once hashed. */
interface SentRange {
  chunk: ChunkState;
  sizeBytes: number;
  crc32: number | undefined;
}

/** A chunk of this body: being filled, ready, or handed to the caller. */
interface ChunkState {
  /** The pooled buffer it fills, or undefined when every one was taken (then `bytes` is plain memory). */
  buffer: ChunkBuffer | undefined;
  /** The chunk's bytes: in a pooled buffer, from CHUNK_BUFFER_DATA_OFFSET_BYTES on. */
  bytes: Buffer;
  filledBytes: number;
  /** Bytes of the chunk already sent to the hashing thread (from its start). */
  sentBytes: number;
  ranges: SentRange[];
  crcWaiters: Array<{ resolve: (crc32: number) => void; reject: (error: Error) => void }>;
  /** The caller released it; it goes back to the pool once the thread has hashed all of it. */
  releaseRequested: boolean;
  /** Its pooled buffer went back (never twice: by then it may be someone else's). */
  returned: boolean;
}

class OffloadedHasher implements BodyHasher {
  private readonly jobId: number;
  private filling: ChunkState | undefined;
  /** Full chunks (and, at the end, the last one) not yet taken by the caller. */
  private readonly ready: ChunkState[] = [];
  /** Chunks handed to the caller, by the Buffer it was given. */
  private readonly handedOut = new Map<Buffer, ChunkState>();
  /** Ranges sent and not yet hashed, in body order; the worker answers in order. */
  private readonly unhashed: SentRange[] = [];
  private bytesInFlight = 0;
  private drained: (() => void) | undefined;
  private finished: { resolve: (digests: BodyDigests) => void; reject: (error: Error) => void } | undefined;
  private failure: Error | undefined;
  private ended = false;
  private abandoned = false;

  constructor(
    private readonly worker: HashWorker,
    checksumAlgorithm: ChecksumAlgorithm | undefined,
  ) {
    this.jobId = worker.begin(this, checksumAlgorithm);
  }

  update(piece: Buffer): Promise<void> | undefined {
    assert(!this.ended, "no update after digests");
    let offset = 0;
    while (offset < piece.length) {
      const chunk = (this.filling ??= newChunkState());
      const take = Math.min(piece.length - offset, CHUNK_SIZE_BYTES - chunk.filledBytes);
      // Not set(): into shared memory, that copied at 1.3 GiB/s, a third of a large PUT's event
      // loop (the body follows the request head in the socket's buffer, so they never align).
      copyBytes(chunk.bytes, piece.subarray(offset, offset + take), chunk.filledBytes);
      chunk.filledBytes += take;
      offset += take;
      if (chunk.filledBytes - chunk.sentBytes >= HASH_BATCH_SIZE_BYTES) this.sendRange(chunk);
      if (chunk.filledBytes === CHUNK_SIZE_BYTES) {
        if (chunk.sentBytes < chunk.filledBytes) this.sendRange(chunk);
        this.ready.push(chunk);
        this.filling = undefined;
      }
    }
    if (this.bytesInFlight <= HASH_BYTES_IN_FLIGHT_MAX) return undefined;
    return new Promise<void>((resolve) => (this.drained = resolve));
  }

  readonly assemblesChunks = true;

  takeChunk(end: boolean): Buffer | undefined {
    if (end && this.filling !== undefined) {
      const last = this.filling;
      this.filling = undefined;
      if (last.filledBytes === 0) giveBack(last);
      else {
        if (last.sentBytes < last.filledBytes) this.sendRange(last);
        this.ready.push(last);
      }
    }
    const chunk = this.ready.shift();
    if (chunk === undefined) return undefined;
    const bytes = chunk.bytes.subarray(0, chunk.filledBytes);
    this.handedOut.set(bytes, chunk);
    return bytes;
  }

  chunkCrc32(chunkBytes: Buffer): Promise<number> | undefined {
    const chunk = this.handedOut.get(chunkBytes);
    // A chunk in plain memory was hashed from copies: its CRC is not over these bytes.
    if (chunk === undefined || chunk.buffer === undefined || this.failure !== undefined) return undefined;
    return new Promise<number>((resolve, reject) => {
      chunk.crcWaiters.push({ resolve, reject });
      settleChunk(chunk);
    });
  }

  releaseChunk(chunkBytes: Buffer): void {
    const chunk = this.handedOut.get(chunkBytes);
    assert(chunk !== undefined, "a chunk is released once, by whoever took it");
    this.handedOut.delete(chunkBytes);
    chunk.releaseRequested = true;
    // Not before the thread has read all of it: the next taker's bytes must not enter this MD5.
    if (this.failure !== undefined || this.abandoned) giveBack(chunk);
    else settleChunk(chunk);
  }

  digests(): Promise<BodyDigests> {
    assert(this.filling === undefined && this.ready.length === 0, "every chunk was taken before the digests");
    this.ended = true;
    return new Promise<BodyDigests>((resolve, reject) => {
      if (this.failure !== undefined) return reject(this.failure);
      this.finished = { resolve, reject };
      this.worker.end(this.jobId);
    });
  }

  abandon(): void {
    // Chunks the caller never took go back now; the thread may still read them for this job,
    // whose digests nobody will use.
    if (this.filling !== undefined) giveBack(this.filling);
    this.filling = undefined;
    for (const chunk of this.ready.splice(0)) giveBack(chunk);
    this.abandoned = true;
    // Released chunks still waiting for their hashes: no more answers come for this job.
    for (const range of this.unhashed.splice(0)) {
      if (range.chunk.releaseRequested) giveBack(range.chunk);
    }
    if (this.ended) return;
    this.ended = true;
    this.worker.end(this.jobId);
    this.worker.forget(this.jobId);
  }

  /** From the worker: the oldest unhashed range was hashed. */
  onHashed(sizeBytes: number, crc32: number): void {
    const range = this.unhashed.shift();
    assert(range !== undefined && range.sizeBytes === sizeBytes, "the hashing thread answers ranges in order");
    range.crc32 = crc32;
    settleChunk(range.chunk);
    this.bytesInFlight -= sizeBytes;
    if (this.drained !== undefined && this.bytesInFlight <= HASH_BYTES_IN_FLIGHT_MAX) {
      const resolve = this.drained;
      this.drained = undefined;
      resolve();
    }
  }

  /** From the worker: the digests after "end". */
  onDigests(digests: BodyDigests): void {
    this.finished?.resolve(digests);
  }

  /** The worker died: the digests and CRCs never come. */
  onFailed(error: Error): void {
    this.failure = error;
    this.finished?.reject(error);
    const chunks = new Set(this.unhashed.splice(0).map((range) => range.chunk));
    for (const chunk of this.handedOut.values()) chunks.add(chunk);
    for (const chunk of chunks) {
      for (const waiter of chunk.crcWaiters.splice(0)) waiter.reject(error);
      if (chunk.releaseRequested) giveBack(chunk);
    }
    this.drained?.();
    this.drained = undefined;
  }

  private sendRange(chunk: ChunkState): void {
    const sizeBytes = chunk.filledBytes - chunk.sentBytes;
    const range: SentRange = { chunk, sizeBytes, crc32: undefined };
    chunk.ranges.push(range);
    this.unhashed.push(range);
    this.bytesInFlight += sizeBytes;
    if (chunk.buffer !== undefined) this.worker.update(this.jobId, chunk.buffer, CHUNK_BUFFER_DATA_OFFSET_BYTES + chunk.sentBytes, sizeBytes);
    else this.worker.updateWithCopy(this.jobId, chunk.bytes.subarray(chunk.sentBytes, chunk.filledBytes));
    chunk.sentBytes = chunk.filledBytes;
  }
}

/**
 * A chunk in a pooled buffer, or, when every one is taken, in plain memory hashed from copies
 * (the data path then computes its CRC itself). Never waiting for a buffer: clients that send
 * their bodies slowly hold theirs, and must not stall everybody else's PUTs.
 */
function newChunkState(): ChunkState {
  const buffer = tryTakeChunkBuffer();
  const bytes =
    buffer?.bytes.subarray(CHUNK_BUFFER_DATA_OFFSET_BYTES, CHUNK_BUFFER_DATA_OFFSET_BYTES + CHUNK_SIZE_BYTES) ?? Buffer.allocUnsafeSlow(CHUNK_SIZE_BYTES);
  return { buffer, bytes, filledBytes: 0, sentBytes: 0, ranges: [], crcWaiters: [], releaseRequested: false, returned: false };
}

/** Return a chunk's pooled buffer (once). */
function giveBack(chunk: ChunkState): void {
  if (chunk.buffer === undefined || chunk.returned) return;
  chunk.returned = true;
  releaseChunkBuffer(chunk.buffer);
}

/** Answer a chunk's CRC waiters and return its buffer to the pool once the thread hashed all of it. */
function settleChunk(chunk: ChunkState): void {
  if (chunk.sentBytes < chunk.filledBytes || chunk.ranges.some((range) => range.crc32 === undefined)) return;
  if (chunk.crcWaiters.length > 0) {
    let value = chunk.ranges[0]!.crc32!;
    for (const range of chunk.ranges.slice(1)) value = crc32Combine(value, range.crc32!, range.sizeBytes);
    for (const waiter of chunk.crcWaiters.splice(0)) waiter.resolve(value);
  }
  if (chunk.releaseRequested) giveBack(chunk);
}

/** One hashing thread; several bodies share it, each a job with its own id. */
class HashWorker {
  private worker: Worker;
  private readonly jobs = new Map<number, OffloadedHasher>();
  private nextJobId = 1;
  /** Pooled chunk buffers the thread has been sent (it keeps their memory; later messages name the id). */
  private knownBuffers = new Set<number>();

  constructor() {
    this.worker = this.start();
  }

  private start(): Worker {
    this.knownBuffers = new Set<number>();
    const worker = new Worker(new URL("./hash-worker.js", import.meta.url));
    worker.on("error", (error) => {
      // Its jobs' state is gone with it: fail them, and start a fresh thread for the next bodies.
      const failed = [...this.jobs.values()];
      this.jobs.clear();
      this.worker = this.start();
      for (const job of failed) job.onFailed(error);
    });
    worker.on("message", (reply: HashWorkerReply) => {
      const job = this.jobs.get(reply.jobId);
      if (job === undefined) return; // abandoned
      if (reply.kind === "hashed") job.onHashed(reply.sizeBytes, reply.crc32);
      else {
        this.jobs.delete(reply.jobId);
        if (this.jobs.size === 0) this.worker.unref();
        job.onDigests({ md5: Buffer.from(reply.md5), checksum: reply.checksum === undefined ? undefined : Buffer.from(reply.checksum) });
      }
    });
    worker.unref(); // after the listeners: adding a "message" listener refs the worker again
    return worker;
  }

  get jobCount(): number {
    return this.jobs.size;
  }

  begin(job: OffloadedHasher, checksumAlgorithm: ChecksumAlgorithm | undefined): number {
    const jobId = this.nextJobId++;
    this.jobs.set(jobId, job);
    if (this.jobs.size === 1) this.worker.ref();
    this.post({ kind: "begin", jobId, checksumAlgorithm });
    return jobId;
  }

  update(jobId: number, buffer: ChunkBuffer, offsetBytes: number, sizeBytes: number): void {
    this.post({ kind: "update", jobId, buffer: chunkBufferRef(buffer, this.knownBuffers), offsetBytes, sizeBytes });
  }

  /** The body's next bytes, copied into a buffer the thread takes over. */
  updateWithCopy(jobId: number, bytes: Buffer): void {
    const copy = new Uint8Array(bytes).buffer;
    this.worker.postMessage({ kind: "update-copy", jobId, copy } satisfies HashWorkerRequest, [copy]);
  }

  end(jobId: number): void {
    this.post({ kind: "end", jobId });
  }

  /** Abandoned jobs still get their "end" (the worker frees them) but no reply is awaited. */
  forget(jobId: number): void {
    this.jobs.delete(jobId);
    if (this.jobs.size === 0) this.worker.unref();
  }

  private post(request: HashWorkerRequest): void {
    this.worker.postMessage(request);
  }
}

let workers: HashWorker[] | undefined;

/** The least busy hashing thread; threads start on first use and never hold the process open. */
function pool(): HashWorker {
  workers ??= Array.from({ length: HASH_WORKER_COUNT }, () => new HashWorker());
  let best = workers[0]!;
  for (const worker of workers) if (worker.jobCount < best.jobCount) best = worker;
  return best;
}

assert(CHUNK_SIZE_BYTES % HASH_BATCH_SIZE_BYTES === 0, "hash ranges tile a chunk");
