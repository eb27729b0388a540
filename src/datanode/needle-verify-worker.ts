/**
 * Worker-thread side of needle-verifier.ts: reads a large needle from a volume file and decodes
 * and checksums it, off the data node's event loop. The file descriptor is the process's own
 * (the caller keeps it open until the reply); the bytes go back as a transferred ArrayBuffer.
 */
import { readSync } from "node:fs";
import { parentPort } from "node:worker_threads";
import { decodeNeedle, type NeedleHeader } from "./needle-codec.js";

export interface NeedleReadRequest {
  id: number;
  fd: number;
  positionBytes: number;
  lengthBytes: number;
}

export type NeedleReadReply =
  | { id: number; kind: "needle"; encoded: ArrayBuffer; header: NeedleHeader }
  | { id: number; kind: "invalid"; reason: string }
  | { id: number; kind: "error"; message: string; code: string | undefined };

const port = parentPort!;

port.on("message", (request: NeedleReadRequest) => {
  let reply: NeedleReadReply;
  try {
    // A buffer of its own (not the pool's), so its ArrayBuffer can be transferred whole.
    const encoded = Buffer.allocUnsafeSlow(request.lengthBytes);
    let filledBytes = 0;
    while (filledBytes < request.lengthBytes) {
      const bytesRead = readSync(request.fd, encoded, filledBytes, request.lengthBytes - filledBytes, request.positionBytes + filledBytes);
      if (bytesRead === 0) break;
      filledBytes += bytesRead;
    }
    const decoded = decodeNeedle(encoded.subarray(0, filledBytes));
    reply =
      decoded.kind === "needle"
        ? { id: request.id, kind: "needle", encoded: encoded.buffer as ArrayBuffer, header: decoded.header }
        : { id: request.id, kind: "invalid", reason: decoded.reason };
  } catch (error) {
    reply = { id: request.id, kind: "error", message: String(error), code: (error as NodeJS.ErrnoException).code };
  }
  port.postMessage(reply, reply.kind === "needle" ? [reply.encoded] : []);
});
