/**
 * Worker-thread side of needle-verifier.ts: reads a large needle from a volume file and decodes
 * and checksums it, off the data node's event loop. The file descriptor is the process's own
 * (the caller keeps it open until the reply); the bytes go back as a transferred ArrayBuffer.
 */
import { readSync } from "node:fs";
import { parentPort } from "node:worker_threads";
import { niceThisWorkerThread, resolveChunkBufferRef, type ChunkBufferRef } from "../base/index.js";
import { DIRECT_IO_ALIGNMENT_BYTES, directReadLengthBytes } from "./direct-write.js";
import { decodeNeedle, type NeedleHeader } from "./needle-codec.js";

export interface NeedleReadRequest {
  id: number;
  fd: number;
  /**
   * The same file opened with O_DIRECT, set only when the read lines up with pages and goes into
   * a chunk buffer (direct-write.ts linesUpForDirectRead): then the needle is read through it,
   * whole pages at a time, without passing through the page cache.
   */
  directFd: number | undefined;
  positionBytes: number;
  lengthBytes: number;
  /** Read into this chunk buffer (from its start) instead of a buffer of the worker's own. */
  into: ChunkBufferRef | undefined;
}

export type NeedleReadReply =
  /** `encoded` is undefined when the needle was read into the request's chunk buffer. */
  /** `directReadBytes`: how many of the needle's bytes came through the O_DIRECT descriptor. */
  | { id: number; kind: "needle"; encoded: ArrayBuffer | undefined; header: NeedleHeader; directReadBytes: number }
  | { id: number; kind: "invalid"; reason: string; directReadBytes: number }
  | { id: number; kind: "error"; message: string; code: string | undefined };

niceThisWorkerThread();
const port = parentPort!;
/** Pooled chunk buffers' memory, by id (sent once per buffer). */
const chunkBuffers = new Map<number, SharedArrayBuffer>();

/**
 * Reads the request's pages through the O_DIRECT descriptor into its chunk buffer; answers how
 * many of the wanted bytes arrived (the buffered read goes on from there). A refusal (EINVAL:
 * the filesystem or the alignment does not allow it) leaves it all to the buffered read.
 */
function readDirect(request: NeedleReadRequest, directFd: number, into: ChunkBufferRef): number {
  const lengthBytes = directReadLengthBytes(request.lengthBytes);
  const pages = Buffer.from(resolveChunkBufferRef(into, chunkBuffers), 0, lengthBytes);
  let filledBytes = 0;
  try {
    while (filledBytes < lengthBytes) {
      const bytesRead = readSync(directFd, pages, filledBytes, lengthBytes - filledBytes, request.positionBytes + filledBytes);
      // The end of the file, or a short read off a page boundary: the buffered read finishes.
      if (bytesRead === 0 || bytesRead % DIRECT_IO_ALIGNMENT_BYTES !== 0) return Math.min(filledBytes + bytesRead, request.lengthBytes);
      filledBytes += bytesRead;
    }
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "EINVAL") return Math.min(filledBytes, request.lengthBytes);
    throw error;
  }
  return request.lengthBytes;
}

port.on("message", (request: NeedleReadRequest) => {
  let reply: NeedleReadReply;
  try {
    // A chunk buffer shared with the caller, or a buffer of its own (not node's pool), so its
    // ArrayBuffer can be transferred whole.
    const encoded =
      request.into === undefined
        ? Buffer.allocUnsafeSlow(request.lengthBytes)
        : Buffer.from(resolveChunkBufferRef(request.into, chunkBuffers), 0, request.lengthBytes);
    const directReadBytes = request.directFd === undefined || request.into === undefined ? 0 : readDirect(request, request.directFd, request.into);
    let filledBytes = directReadBytes;
    while (filledBytes < request.lengthBytes) {
      const bytesRead = readSync(request.fd, encoded, filledBytes, request.lengthBytes - filledBytes, request.positionBytes + filledBytes);
      if (bytesRead === 0) break;
      filledBytes += bytesRead;
    }
    const decoded = decodeNeedle(encoded.subarray(0, filledBytes));
    reply =
      decoded.kind === "needle"
        ? { id: request.id, kind: "needle", encoded: request.into === undefined ? (encoded.buffer as ArrayBuffer) : undefined, header: decoded.header, directReadBytes }
        : { id: request.id, kind: "invalid", reason: decoded.reason, directReadBytes };
  } catch (error) {
    reply = { id: request.id, kind: "error", message: String(error), code: (error as NodeJS.ErrnoException).code };
  }
  port.postMessage(reply, reply.kind === "needle" && reply.encoded !== undefined ? [reply.encoded] : []);
});
