/**
 * Worker-thread side of EcWorkerPool: runs encode / reconstruct off the gateway's event loop.
 * Each request carries its shards packed into one ArrayBuffer the pool copied and transferred;
 * the reply transfers back one ArrayBuffer holding the produced shards, so nothing is copied on
 * the way out.
 */
import { parentPort } from "node:worker_threads";
import { assert, crc32, niceThisWorkerThread } from "../base/index.js";
import { ReedSolomon } from "./reed-solomon.js";

export type EcWorkerRequest =
  /**
   * packed holds k + m shard slots, the k data shards filled: parity goes into the rest in place,
   * and the whole stripe comes back; with withCrc32s, with each shard's CRC32.
   */
  | { id: number; kind: "encode"; k: number; m: number; shardSizeBytes: number; packed: ArrayBuffer; withCrc32s: boolean }
  /** presentIndexes: the shard indexes packed, in order; the rest are lost. */
  | { id: number; kind: "reconstruct"; k: number; m: number; shardSizeBytes: number; packed: ArrayBuffer; presentIndexes: number[] };

/** producedIndexes: which shard each shardSizeBytes slice of packed is; crc32s: see encode. */
export type EcWorkerReply =
  | { id: number; ok: true; packed: ArrayBuffer; producedIndexes: number[]; crc32s?: number[] }
  | { id: number; ok: false; message: string };

niceThisWorkerThread();

/** One codec per (k, m): building one costs a matrix inversion and its tables. */
const codecs = new Map<string, ReedSolomon>();

function codecFor(k: number, m: number): ReedSolomon {
  const key = `${k}+${m}`;
  let codec = codecs.get(key);
  if (codec === undefined) {
    codec = new ReedSolomon(k, m);
    codecs.set(key, codec);
  }
  return codec;
}

function unpack(packed: ArrayBuffer, shardSizeBytes: number, count: number): Uint8Array[] {
  return Array.from({ length: count }, (_, i) => new Uint8Array(packed, i * shardSizeBytes, shardSizeBytes));
}

function pack(shards: Uint8Array[], shardSizeBytes: number): ArrayBuffer {
  const packed = new Uint8Array(shards.length * shardSizeBytes);
  shards.forEach((shard, i) => packed.set(shard, i * shardSizeBytes));
  return packed.buffer;
}

function handle(request: EcWorkerRequest): EcWorkerReply {
  const codec = codecFor(request.k, request.m);
  if (request.kind === "encode") {
    const shards = unpack(request.packed, request.shardSizeBytes, request.k + request.m);
    codec.encodeInto(shards.slice(0, request.k), shards.slice(request.k));
    const producedIndexes = shards.map((_, shardIndex) => shardIndex);
    const reply: EcWorkerReply = { id: request.id, ok: true, packed: request.packed, producedIndexes };
    return request.withCrc32s ? { ...reply, crc32s: shards.map((shard) => crc32(shard)) } : reply;
  }
  const present = unpack(request.packed, request.shardSizeBytes, request.presentIndexes.length);
  const slots: Array<Uint8Array | undefined> = new Array<Uint8Array | undefined>(request.k + request.m).fill(undefined);
  request.presentIndexes.forEach((shardIndex, i) => (slots[shardIndex] = present[i]));
  const all = codec.reconstruct(slots);
  const producedIndexes = all.map((_, shardIndex) => shardIndex).filter((shardIndex) => slots[shardIndex] === undefined);
  return { id: request.id, ok: true, packed: pack(producedIndexes.map((i) => all[i]!), request.shardSizeBytes), producedIndexes };
}

const port = parentPort;
assert(port !== null, "ec-worker runs as a worker thread");
port.on("message", (request: EcWorkerRequest) => {
  let reply: EcWorkerReply;
  try {
    reply = handle(request);
  } catch (error) {
    // The pool validated the request before sending it, so this is a bug; the pool rejects the
    // caller's promise with it rather than losing the worker.
    reply = { id: request.id, ok: false, message: error instanceof Error ? `${error.name}: ${error.message}` : String(error) };
  }
  port.postMessage(reply, reply.ok ? [reply.packed] : []);
});
