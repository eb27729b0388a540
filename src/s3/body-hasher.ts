/**
 * MD5 (the ETag) and the requested x-amz-checksum of a PUT body, computed once as it streams.
 * Small bodies are hashed inline. Large ones are hashed on a worker thread, so that on a 2-core
 * machine one core hashes while the event loop receives, checksums and writes the chunks: MD5
 * alone runs at about one core's worth of bytes, so inline it capped a large PUT at well under
 * MD5's speed, and it stalled the loop for every other request.
 *
 * Offloading costs one copy of the body (into transferred batches); the copy is far cheaper than
 * the hash. At most HASH_BYTES_IN_FLIGHT_MAX per body wait for the worker: beyond that `update`
 * waits, which is backpressure all the way to the client's socket.
 */
import { createHash, type Hash } from "node:crypto";
import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import { assert, crc32Combine, MEBIBYTE, newChecksummer, type ChecksumAlgorithm, type Checksummer } from "../base/index.js";
import type { HashWorkerReply, HashWorkerRequest } from "./hash-worker.js";

/** Bodies at least this large (as declared) are hashed on a worker thread. */
export const HASH_OFFLOAD_SIZE_BYTES_MIN = 1 * MEBIBYTE;
/** Bytes copied into one message to the worker: large enough that messaging costs nothing. */
const HASH_BATCH_SIZE_BYTES = 1 * MEBIBYTE;
/** Bytes of one body sent but not yet hashed; `update` waits beyond it. */
const HASH_BYTES_IN_FLIGHT_MAX = 8 * MEBIBYTE;
/** Batch buffers kept for reuse once the worker hands them back; more are allocated on demand. */
const HASH_BATCH_POOL_COUNT_MAX = 32;
/** Hashing threads: the cores left beside the event loop, at least one, at most this many. */
const HASH_WORKER_COUNT_MAX = 4;

export interface BodyDigests {
  md5: Buffer;
  checksum: Buffer | undefined;
}

export interface BodyHasher {
  /** Resolves at once unless too many bytes wait for the worker. */
  update(piece: Buffer): Promise<void> | undefined;
  digests(): Promise<BodyDigests>;
  /**
   * CRC32 of body bytes [startByte, startByte + lengthBytes), already passed to `update`, from
   * the hashing thread's per-batch CRCs; undefined when hashing is inline or the range does not
   * start and end on batch boundaries (the caller then computes it).
   */
  rangeCrc32(startByte: number, lengthBytes: number): Promise<number> | undefined;
  /** The body failed: drop the worker's state. */
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

  rangeCrc32(): undefined {
    return undefined;
  }

  abandon(): void {}
}

/** A batch sent to the hashing thread: where it lies in the body, and its CRC32 once hashed. */
interface SentBatch {
  startByte: number;
  sizeBytes: number;
  crc32: number | undefined;
}

class OffloadedHasher implements BodyHasher {
  private readonly jobId: number;
  private batch: Uint8Array | undefined;
  private batchFilledBytes = 0;
  /** Body bytes already in sent batches. */
  private sentBytes = 0;
  /** Batches sent and not yet consumed by rangeCrc32, in body order; the worker answers in order. */
  private readonly sent: SentBatch[] = [];
  /** Index in `sent` of the next batch the worker will acknowledge. */
  private nextHashedIndex = 0;
  /** The end of the furthest range rangeCrc32 was asked for. */
  private requestedUpToByte = 0;
  private readonly crcWaiters: Array<{ batches: SentBatch[]; resolve: (crc32: number) => void; reject: (error: Error) => void }> = [];
  private bytesInFlight = 0;
  private drained: (() => void) | undefined;
  private finished: { resolve: (digests: BodyDigests) => void; reject: (error: Error) => void } | undefined;
  private failure: Error | undefined;
  private ended = false;

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
      this.batch ??= takeBatch();
      const take = Math.min(piece.length - offset, HASH_BATCH_SIZE_BYTES - this.batchFilledBytes);
      this.batch.set(piece.subarray(offset, offset + take), this.batchFilledBytes);
      this.batchFilledBytes += take;
      offset += take;
      if (this.batchFilledBytes === HASH_BATCH_SIZE_BYTES) this.sendBatch();
    }
    if (this.bytesInFlight <= HASH_BYTES_IN_FLIGHT_MAX) return undefined;
    return new Promise<void>((resolve) => (this.drained = resolve));
  }

  digests(): Promise<BodyDigests> {
    if (this.batchFilledBytes > 0) this.sendBatch();
    this.ended = true;
    return new Promise<BodyDigests>((resolve, reject) => {
      if (this.failure !== undefined) return reject(this.failure);
      this.finished = { resolve, reject };
      this.worker.end(this.jobId);
    });
  }

  rangeCrc32(startByte: number, lengthBytes: number): Promise<number> | undefined {
    if (this.failure !== undefined || lengthBytes === 0) return undefined;
    const endByte = startByte + lengthBytes;
    // The range's tail sits in the batch being filled: send it now (only the body's last chunk
    // ends off a batch boundary, so later batches keep their alignment in practice; each
    // batch records where it starts in any case).
    if (endByte > this.sentBytes && endByte === this.sentBytes + this.batchFilledBytes) this.sendBatch();
    const first = this.sent.findIndex((batch) => batch.startByte === startByte);
    if (first < 0) return undefined;
    const batches: SentBatch[] = [];
    let coveredBytes = startByte;
    for (let index = first; index < this.sent.length && coveredBytes < endByte; index++) {
      batches.push(this.sent[index]!);
      coveredBytes += this.sent[index]!.sizeBytes;
    }
    if (coveredBytes !== endByte) return undefined;
    this.requestedUpToByte = Math.max(this.requestedUpToByte, endByte);
    return new Promise<number>((resolve, reject) => {
      this.crcWaiters.push({ batches, resolve, reject });
      this.settleCrcWaiters();
    });
  }

  private settleCrcWaiters(): void {
    for (let index = 0; index < this.crcWaiters.length; ) {
      const waiter = this.crcWaiters[index]!;
      if (waiter.batches.some((batch) => batch.crc32 === undefined)) {
        index++;
        continue;
      }
      this.crcWaiters.splice(index, 1);
      let value = waiter.batches[0]!.crc32!;
      for (const batch of waiter.batches.slice(1)) value = crc32Combine(value, batch.crc32!, batch.sizeBytes);
      waiter.resolve(value);
    }
    this.forgetConsumedBatches();
  }

  /** Batches hashed and wholly before every range asked for or waiting are not needed again. */
  private forgetConsumedBatches(): void {
    let keepFromByte = this.requestedUpToByte;
    for (const waiter of this.crcWaiters) keepFromByte = Math.min(keepFromByte, waiter.batches[0]!.startByte);
    let drop = 0;
    while (drop < this.nextHashedIndex && this.sent[drop]!.startByte + this.sent[drop]!.sizeBytes <= keepFromByte) drop++;
    if (drop > 0) {
      this.sent.splice(0, drop);
      this.nextHashedIndex -= drop;
    }
  }

  abandon(): void {
    if (this.ended) return;
    this.ended = true;
    this.worker.end(this.jobId);
    this.worker.forget(this.jobId);
  }

  /** From the worker: a batch was hashed. */
  onHashed(sizeBytes: number, crc32: number): void {
    const batch = this.sent[this.nextHashedIndex];
    assert(batch !== undefined && batch.sizeBytes === sizeBytes, "the hashing thread answers batches in order");
    batch.crc32 = crc32;
    this.nextHashedIndex += 1;
    this.settleCrcWaiters();
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

  /** The worker died: the digests never come. */
  onFailed(error: Error): void {
    this.failure = error;
    this.finished?.reject(error);
    for (const waiter of this.crcWaiters.splice(0)) waiter.reject(error);
    this.drained?.();
    this.drained = undefined;
  }

  private sendBatch(): void {
    const batch = this.batch!;
    const sizeBytes = this.batchFilledBytes;
    this.batch = undefined;
    this.batchFilledBytes = 0;
    this.sent.push({ startByte: this.sentBytes, sizeBytes, crc32: undefined });
    this.sentBytes += sizeBytes;
    this.bytesInFlight += sizeBytes;
    this.worker.update(this.jobId, batch.buffer as ArrayBuffer, sizeBytes);
  }
}

/** One hashing thread; several bodies share it, each a job with its own id. */
class HashWorker {
  private worker: Worker;
  private readonly jobs = new Map<number, OffloadedHasher>();
  private nextJobId = 1;

  constructor() {
    this.worker = this.start();
  }

  private start(): Worker {
    const worker = new Worker(new URL("./hash-worker.js", import.meta.url));
    worker.unref();
    worker.on("error", (error) => {
      // Its jobs' state is gone with it: fail them, and start a fresh thread for the next bodies.
      const failed = [...this.jobs.values()];
      this.jobs.clear();
      this.worker = this.start();
      for (const job of failed) job.onFailed(error);
    });
    worker.on("message", (reply: HashWorkerReply) => {
      if (reply.kind === "hashed") returnBatch(reply.batch);
      const job = this.jobs.get(reply.jobId);
      if (job === undefined) return; // abandoned
      if (reply.kind === "hashed") job.onHashed(reply.sizeBytes, reply.crc32);
      else {
        this.jobs.delete(reply.jobId);
        if (this.jobs.size === 0) this.worker.unref();
        job.onDigests({ md5: Buffer.from(reply.md5), checksum: reply.checksum === undefined ? undefined : Buffer.from(reply.checksum) });
      }
    });
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

  update(jobId: number, batch: ArrayBuffer, sizeBytes: number): void {
    this.post({ kind: "update", jobId, batch, sizeBytes }, [batch]);
  }

  end(jobId: number): void {
    this.post({ kind: "end", jobId });
  }

  /** Abandoned jobs still get their "end" (the worker frees them) but no reply is awaited. */
  forget(jobId: number): void {
    this.jobs.delete(jobId);
    if (this.jobs.size === 0) this.worker.unref();
  }

  private post(request: HashWorkerRequest, transfer: ArrayBuffer[] = []): void {
    this.worker.postMessage(request, transfer);
  }
}

/**
 * Batches come back from the worker and are reused: allocating a fresh 1 MiB buffer per batch
 * (zero-filled, outside the heap) made garbage collection a tenth of a large PUT's main thread.
 */
const batchPool: ArrayBuffer[] = [];

function takeBatch(): Uint8Array {
  const recycled = batchPool.pop();
  // allocUnsafeSlow: an ArrayBuffer of its own (transferable), not zero-filled.
  return recycled !== undefined ? new Uint8Array(recycled) : new Uint8Array(Buffer.allocUnsafeSlow(HASH_BATCH_SIZE_BYTES).buffer, 0, HASH_BATCH_SIZE_BYTES);
}

function returnBatch(batch: ArrayBuffer): void {
  if (batch.byteLength === HASH_BATCH_SIZE_BYTES && batchPool.length < HASH_BATCH_POOL_COUNT_MAX) batchPool.push(batch);
}

let workers: HashWorker[] | undefined;

/** The least busy hashing thread; threads start on first use and never hold the process open. */
function pool(): HashWorker {
  workers ??= Array.from({ length: Math.max(1, Math.min(HASH_WORKER_COUNT_MAX, availableParallelism() - 1)) }, () => new HashWorker());
  let best = workers[0]!;
  for (const worker of workers) if (worker.jobCount < best.jobCount) best = worker;
  return best;
}
