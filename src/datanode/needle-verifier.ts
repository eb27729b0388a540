/**
 * Reads and verifies large needles (header, CRC32 over header and data, zero padding: exactly
 * decodeNeedle) on worker threads. On a large GET the event loop was the bottleneck and a
 * third of it was the CRC pass over each 4 MiB chunk read; here a worker reads the needle
 * (pread on the volume's descriptor), checks it and hands the buffer over, so the loop only
 * sends. Small needles are read and verified on the loop: the hand-off costs more than they do.
 *
 * A caller that releases what it reads (a GET streaming to a client) has the needle read into a
 * pooled chunk buffer (shared memory, chunk-buffer-pool.ts): the thread learns each pooled buffer
 * once, so neither side allocates or collects 4 MiB per read, which made garbage collection a
 * quarter of a large GET's event loop. Other callers get a buffer the thread allocates and
 * transfers (one owner; a fresh SharedArrayBuffer per read would be kept alive by the thread's
 * idle heap, which seldom collects). A worker that dies fails the reads waiting on it (each
 * caller then tries another replica) and is replaced.
 */
import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import { chunkBufferRef, MEBIBYTE, type ChunkBuffer } from "../base/index.js";
import { linesUpForDirectRead } from "./direct-write.js";
import { NEEDLE_HEADER_SIZE_BYTES, type NeedleDecoded } from "./needle-codec.js";
import type { NeedleReadReply, NeedleReadRequest } from "./needle-verify-worker.js";

/** Needles at least this large (encoded) are read and verified on a worker thread. */
export const NEEDLE_VERIFY_OFFLOAD_SIZE_BYTES_MIN = 1 * MEBIBYTE;
/**
 * Reading threads: one per core, at least two, at most four. A thread's pread of a needle not in
 * the page cache waits for the disk, and its checksum pass waits for that: with one thread, reads
 * from the disk ran one at a time and a 64 MiB GET of objects written around the page cache
 * (--direct-io) reached about 600 MiB/s on a disk that reads 1.2-1.6 GB/s.
 */
const NEEDLE_READ_WORKER_COUNT = Math.max(2, Math.min(4, availableParallelism()));

/** A needle read on a worker thread, and how many of its bytes came around the page cache. */
export interface NeedleRead {
  decoded: NeedleDecoded;
  directReadBytes: number;
}

interface Waiting {
  resolve: (read: NeedleRead) => void;
  reject: (error: unknown) => void;
  into: ChunkBuffer | undefined;
}

class NeedleReadWorker {
  private worker: Worker;
  private readonly waiting = new Map<number, Waiting>();
  private nextId = 1;
  /** Pooled chunk buffers the thread has been sent (it keeps their memory; later requests name the id). */
  private knownBuffers = new Set<number>();

  constructor() {
    this.worker = this.start();
  }

  /** Reads sent and not yet answered. */
  get pendingCount(): number {
    return this.waiting.size;
  }

  read(fd: number, positionBytes: number, lengthBytes: number, into: ChunkBuffer | undefined, directFd: number | undefined): Promise<NeedleRead> {
    const id = this.nextId++;
    return new Promise<NeedleRead>((resolve, reject) => {
      this.waiting.set(id, { resolve, reject, into });
      if (this.waiting.size === 1) this.worker.ref();
      const request: NeedleReadRequest = {
        id,
        fd,
        directFd: directFd !== undefined && into !== undefined && linesUpForDirectRead(into, positionBytes, lengthBytes) ? directFd : undefined,
        positionBytes,
        lengthBytes,
        into: into === undefined ? undefined : chunkBufferRef(into, this.knownBuffers),
      };
      this.worker.postMessage(request);
    });
  }

  private start(): Worker {
    this.knownBuffers = new Set<number>();
    const worker = new Worker(new URL("./needle-verify-worker.js", import.meta.url));
    worker.on("message", (reply: NeedleReadReply) => {
      const waiting = this.waiting.get(reply.id);
      if (waiting === undefined) return;
      this.waiting.delete(reply.id);
      if (this.waiting.size === 0) this.worker.unref();
      switch (reply.kind) {
        case "needle": {
          const encoded = reply.encoded === undefined ? waiting.into!.bytes.buffer : reply.encoded;
          const data = Buffer.from(encoded, NEEDLE_HEADER_SIZE_BYTES, reply.header.dataSizeBytes);
          waiting.resolve({ decoded: { kind: "needle", header: reply.header, data }, directReadBytes: reply.directReadBytes });
          return;
        }
        case "invalid": {
          const reason = reply.reason as Extract<NeedleDecoded, { kind: "invalid" }>["reason"];
          waiting.resolve({ decoded: { kind: "invalid", reason }, directReadBytes: reply.directReadBytes });
          return;
        }
        case "error":
          waiting.reject(Object.assign(new Error(reply.message), { code: reply.code }));
          return;
      }
    });
    worker.on("error", (error) => {
      const failed = [...this.waiting.values()];
      this.waiting.clear();
      this.worker = this.start();
      for (const waiting of failed) waiting.reject(error);
    });
    worker.unref(); // after the listeners: adding a "message" listener refs the worker again
    return worker;
  }
}

let readWorkers: NeedleReadWorker[] | undefined;

/**
 * decodeNeedle of the `lengthBytes` at `positionBytes` of the open file `fd`, read and checked on
 * a worker thread (the one with the fewest reads waiting), into the chunk buffer `into` when
 * given (the payload is then a view of it; the caller owns the buffer throughout). The caller
 * keeps `fd` open until this settles.
 */
export function readAndVerifyNeedle(fd: number, positionBytes: number, lengthBytes: number, into?: ChunkBuffer, directFd?: number): Promise<NeedleRead> {
  readWorkers ??= Array.from({ length: NEEDLE_READ_WORKER_COUNT }, () => new NeedleReadWorker());
  let idlest = readWorkers[0]!;
  for (const worker of readWorkers) if (worker.pendingCount < idlest.pendingCount) idlest = worker;
  return idlest.read(fd, positionBytes, lengthBytes, into, directFd);
}
