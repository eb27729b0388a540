/**
 * Worker-thread side of body-hasher.ts: MD5 (the ETag) and the requested x-amz-checksum of large
 * PUT bodies, off the gateway's event loop. Each job's batches arrive in order as transferred
 * ArrayBuffers; every batch is acknowledged once hashed, which is the sender's backpressure.
 */
import { createHash, type Hash } from "node:crypto";
import { parentPort } from "node:worker_threads";
import { crc32, newChecksummer, resolveChunkBufferRef, type ChecksumAlgorithm, type Checksummer, type ChunkBufferRef } from "../base/index.js";

export type HashWorkerRequest =
  | { kind: "begin"; jobId: number; checksumAlgorithm: ChecksumAlgorithm | undefined }
  /** Bytes [offsetBytes, offsetBytes + sizeBytes) of a chunk buffer are the body's next bytes. */
  | { kind: "update"; jobId: number; buffer: ChunkBufferRef; offsetBytes: number; sizeBytes: number }
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
  checksummer: Checksummer | undefined;
}

const jobs = new Map<number, Job>();
/** Pooled chunk buffers' memory, by id (sent once per buffer). */
const chunkBuffers = new Map<number, SharedArrayBuffer>();
const port = parentPort!;

port.on("message", (request: HashWorkerRequest) => {
  switch (request.kind) {
    case "begin":
      jobs.set(request.jobId, {
        md5: createHash("md5"),
        checksummer: request.checksumAlgorithm === undefined ? undefined : newChecksummer(request.checksumAlgorithm),
      });
      return;
    case "update": {
      const job = jobs.get(request.jobId);
      const bytes = new Uint8Array(resolveChunkBufferRef(request.buffer, chunkBuffers), request.offsetBytes, request.sizeBytes);
      job?.md5.update(bytes);
      job?.checksummer?.update(bytes);
      const reply: HashWorkerReply = { kind: "hashed", jobId: request.jobId, sizeBytes: request.sizeBytes, crc32: crc32(bytes) };
      port.postMessage(reply);
      return;
    }
    case "end": {
      const job = jobs.get(request.jobId);
      jobs.delete(request.jobId);
      if (job === undefined) return;
      const reply: HashWorkerReply = { kind: "digests", jobId: request.jobId, md5: job.md5.digest(), checksum: job.checksummer?.digest() };
      port.postMessage(reply);
      return;
    }
  }
});
