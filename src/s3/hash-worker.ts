/**
 * Worker-thread side of body-hasher.ts: MD5 (the ETag) and the requested x-amz-checksum of large
 * PUT bodies, off the gateway's event loop. Each job's batches arrive in order as transferred
 * ArrayBuffers; every batch is acknowledged once hashed, which is the sender's backpressure.
 */
import { createHash, type Hash } from "node:crypto";
import { parentPort } from "node:worker_threads";
import {
  crc32,
  crc32Combine,
  newChecksummer,
  niceThisWorkerThread,
  resolveChunkBufferRef,
  type ChecksumAlgorithm,
  type Checksummer,
  type ChunkBufferRef,
} from "../base/index.js";

export type HashWorkerRequest =
  | { kind: "begin"; jobId: number; checksumAlgorithm: ChecksumAlgorithm | undefined }
  /** Bytes [offsetBytes, offsetBytes + sizeBytes) of a chunk buffer are the body's next bytes. */
  | { kind: "update"; jobId: number; buffer: ChunkBufferRef; offsetBytes: number; sizeBytes: number }
  /** `copy` (transferred) holds the body's next bytes (a chunk outside the pool). */
  | { kind: "update-copy"; jobId: number; copy: ArrayBuffer }
  | { kind: "end"; jobId: number };

export type HashWorkerReply =
  /**
   * `crc32` is the range's CRC32, over the chunk buffer's own memory: the data path builds each
   * chunk's needle CRC from these, so the event loop makes no CRC pass of its own over a large body.
   */
  | { kind: "hashed"; jobId: number; sizeBytes: number; crc32: number }
  | { kind: "digests"; jobId: number; md5: Uint8Array; checksum: Uint8Array | undefined };

interface Job {
  md5: Hash;
  /** The requested checksum, unless it is CRC32: that one follows from the ranges' CRC32s. */
  checksummer: Checksummer | undefined;
  /** The body's CRC32 so far, combined from the ranges', when the requested checksum is CRC32. */
  bodyCrc32: number | undefined;
}

niceThisWorkerThread();

const jobs = new Map<number, Job>();
/** Pooled chunk buffers' memory, by id (sent once per buffer). */
const chunkBuffers = new Map<number, SharedArrayBuffer>();
const port = parentPort!;

port.on("message", (request: HashWorkerRequest) => {
  switch (request.kind) {
    case "begin":
      // CRC32 is what the AWS SDKs send by default since 2025, and each range's CRC32 is computed
      // anyway (for the needles): one pass serves both, combined without touching the bytes again.
      jobs.set(request.jobId, {
        md5: createHash("md5"),
        checksummer: request.checksumAlgorithm === undefined || request.checksumAlgorithm === "CRC32" ? undefined : newChecksummer(request.checksumAlgorithm),
        bodyCrc32: request.checksumAlgorithm === "CRC32" ? 0 : undefined,
      });
      return;
    case "update":
    case "update-copy": {
      const job = jobs.get(request.jobId);
      const bytes =
        request.kind === "update"
          ? new Uint8Array(resolveChunkBufferRef(request.buffer, chunkBuffers), request.offsetBytes, request.sizeBytes)
          : new Uint8Array(request.copy);
      job?.md5.update(bytes);
      job?.checksummer?.update(bytes);
      const rangeCrc32 = crc32(bytes);
      if (job?.bodyCrc32 !== undefined) job.bodyCrc32 = crc32Combine(job.bodyCrc32, rangeCrc32, bytes.length);
      const reply: HashWorkerReply = { kind: "hashed", jobId: request.jobId, sizeBytes: bytes.length, crc32: rangeCrc32 };
      port.postMessage(reply);
      return;
    }
    case "end": {
      const job = jobs.get(request.jobId);
      jobs.delete(request.jobId);
      if (job === undefined) return;
      const checksum = job.bodyCrc32 === undefined ? job.checksummer?.digest() : crc32Digest(job.bodyCrc32);
      const reply: HashWorkerReply = { kind: "digests", jobId: request.jobId, md5: job.md5.digest(), checksum };
      port.postMessage(reply);
      return;
    }
  }
});

/** A CRC32 as x-amz-checksum-crc32 carries it: 4 bytes, big-endian (as Crc32Checksummer digests). */
function crc32Digest(value: number): Buffer {
  const digest = Buffer.alloc(4);
  digest.writeUInt32BE(value >>> 0);
  return digest;
}
