/**
 * The gateway side of the data path: cuts a streamed body into chunks, writes each chunk as a
 * needle to every replica of a writable volume, and reads byte ranges of an object back from
 * the best replica, chunk by chunk, with checksums verified by the data node.
 *
 * Memory per request is bounded: a PUT holds the chunk being filled plus at most
 * CHUNK_WRITES_IN_FLIGHT_MAX chunks being written; a GET holds the chunk being sent plus one
 * chunk read ahead.
 */
import { availableParallelism } from "node:os";
import {
  assert,
  CHUNK_BUFFER_RESERVE_COUNT,
  CHUNK_SIZE_BYTES,
  copyBytes,
  crc32,
  log,
  newNeedleId,
  releaseChunkBuffer,
  releaseChunkBufferOf,
  tryTakeChunkBuffer,
  type VolumeId,
} from "../base/index.js";
import {
  ChecksumMismatch,
  NeedleNotFound,
  PeerUnavailable,
  VolumeFull,
  type DamageReport,
  type NeedleStore,
  type WriteNeedleInput,
} from "../cluster/index.js";
import { EcWorkerPool, joinDataShards, shardSizeBytesFor, TooFewShards, type EcScheme } from "../ec/index.js";
import type { ChunkRef } from "../meta/index.js";
import { sameLayout, type Placement, type VolumeReplicaSet } from "../placement/index.js";
import { codedAckCount, codesChunk, dataShardRanges, ShardLatency, type ShardRange } from "./coded-chunks.js";

/**
 * Chunks of one PUT being written while the next fills. A chunk's write waits for its CRC from
 * the hashing thread and then for a group commit (write + fdatasync, about 10 ms for 4 MiB
 * here), so 4 keep the body flowing where 2 left it waiting (interleaved A/B on a busy 2-core
 * machine: 64 MiB PUT 99-170 -> 117-232 MiB/s); a PUT then holds at most 5 chunks (20 MiB).
 */
export const CHUNK_WRITES_IN_FLIGHT_MAX = 4;
/**
 * Chunks a large GET reads ahead of the one it sends. Two: a large object not in the page cache
 * (written with --direct-io, datanode/direct-write.ts, or evicted) is read from the disk, and a
 * second read in flight keeps it busy while the first chunk is sent.
 */
export const READ_AHEAD_PIECE_COUNT = 2;
/** A chunk write that fails on a volume moves on to another volume this many times at most... */
export const CHUNK_WRITE_ATTEMPTS_MAX = 12;
/**
 * ...and for this long at most. It outlasts NODE_DOWN_AFTER_MS, so a write survives a node
 * that died before placement noticed, even when every writable volume had a replica on it.
 */
export const CHUNK_WRITE_DEADLINE_MS = 20_000;
/** Pause before retrying a failed chunk write, doubling per attempt up to the maximum. */
export const CHUNK_WRITE_RETRY_DELAY_MS_MIN = 50;
export const CHUNK_WRITE_RETRY_DELAY_MS_MAX = 2_000;

export class BodyTooLarge extends Error {
  override name = "BodyTooLarge";
  constructor(readonly limitBytes: number) {
    super(`body exceeds ${limitBytes} bytes`);
  }
}

export interface WriteBodyResult {
  chunks: ChunkRef[];
  sizeBytes: number;
}

export type AckLevel = "all" | "majority" | "one";

export function ackCountFor(ackLevel: AckLevel, replicaCount: number): number {
  assert(replicaCount >= 1, "a volume has at least one replica");
  switch (ackLevel) {
    case "all":
      return replicaCount;
    case "majority":
      return Math.floor(replicaCount / 2) + 1;
    case "one":
      return 1;
  }
}

function damageReason(error: unknown): DamageReport["reason"] | undefined {
  if (error instanceof ChecksumMismatch) return "checksum-mismatch";
  if (error instanceof NeedleNotFound) return "needle-missing";
  if (error instanceof PeerUnavailable) return "unreachable";
  return undefined;
}

/** One needle write of a fan-out: the same input to every replica, or shard i to node i. */
interface NeedleWrite {
  store: NeedleStore;
  input: WriteNeedleInput;
}

interface Piece {
  chunk: ChunkRef;
  offsetBytes: number;
  lengthBytes: number;
}

/** The part of each chunk that bytes [startByte, endByteExclusive) of an object made of `chunks` cover. */
function piecesOf(chunks: readonly ChunkRef[], startByte: number, endByteExclusive: number): Piece[] {
  const pieces: Piece[] = [];
  let chunkStart = 0;
  for (const chunk of chunks) {
    const chunkEnd = chunkStart + chunk.sizeBytes;
    if (chunkEnd > startByte && chunkStart < endByteExclusive) {
      const from = Math.max(startByte, chunkStart) - chunkStart;
      const to = Math.min(endByteExclusive, chunkEnd) - chunkStart;
      pieces.push({ chunk, offsetBytes: from, lengthBytes: to - from });
    }
    chunkStart = chunkEnd;
    if (chunkStart >= endByteExclusive) break;
  }
  return pieces;
}

export class DataRouter {
  private coder: EcWorkerPool | undefined;
  private readonly shardLatency = new ShardLatency();

  constructor(
    private readonly placement: Placement,
    private readonly ackLevel: AckLevel = "all",
  ) {}

  /**
   * Encoding and decoding run on worker threads so a gateway's event loop keeps serving other
   * requests while it codes. Started on first use: a gateway with no coded bucket starts none.
   */
  private ecCoder(): EcWorkerPool {
    this.coder ??= new EcWorkerPool({ workerCount: Math.max(1, availableParallelism() - 1) });
    return this.coder;
  }

  async close(): Promise<void> {
    await this.coder?.close();
    this.coder = undefined;
  }

  /**
   * Stream `body` into needles: replicated, or erasure-coded by `ec` (chunks under
   * EC_CHUNK_SIZE_MIN_BYTES are replicated even then). On any failure the needles already
   * written are deleted (best effort; the GC collects what this misses) and the error is rethrown.
   */
  /**
   * A body already in memory (a small PUT): one chunk written directly, without writeBody's
   * streaming machinery, whose promises and closures cost a small PUT more than its bytes.
   */
  async writeWhole(data: Buffer, options: { sizeBytesMax: number; ec?: EcScheme | null }): Promise<WriteBodyResult> {
    if (data.length > options.sizeBytesMax) throw new BodyTooLarge(options.sizeBytesMax);
    if (data.length === 0 || data.length > CHUNK_SIZE_BYTES) return this.writeBody([data], options);
    const chunk = await this.writeChunk(data, options.ec ?? null, { knownCrc32: undefined, needleWrites: [] });
    return { chunks: [chunk], sizeBytes: data.length };
  }

  async writeBody(
    body: AsyncIterable<Buffer> | Iterable<Buffer>,
    options: {
      sizeBytesMax: number;
      ec?: EcScheme | null;
      /**
       * CRC32 of a piece `body` yielded, computed by someone who reads it anyway (the gateway's
       * hashing thread) over that piece's own memory, or undefined. Used when a chunk is exactly
       * one piece; each chunk's CRC is computed here otherwise.
       */
      pieceCrc32?: (piece: Buffer) => Promise<number> | undefined;
      /**
       * Called once for every piece `body` yielded, when nothing here reads its bytes any more
       * (every write of a chunk made of it settled, including those past the ack level), also
       * when the body fails: the piece's buffer may then be reused.
       */
      releasePiece?: (piece: Buffer) => void;
    },
  ): Promise<WriteBodyResult> {
    const ec = options.ec ?? null;
    const chunks: ChunkRef[] = [];
    const inFlight: Array<Promise<void>> = [];
    let sizeBytes = 0;
    // The pieces of the chunk being filled, kept as received: a small object costs no 4 MiB
    // buffer (whose allocation dominated small PUTs through GC), a large chunk is one piece
    // (assembled by the hasher) or costs one copy.
    let pieces: Buffer[] = [];
    /** The pieces `body` yielded that the chunk being filled reads (each once). */
    let sources: Buffer[] = [];
    let filled = 0;
    // Pieces are referenced by the chunk being filled and by chunk writes; released at zero.
    const holds = new Map<Buffer, number>();
    const hold = (piece: Buffer) => holds.set(piece, (holds.get(piece) ?? 0) + 1);
    const drop = (piece: Buffer) => {
      const count = holds.get(piece)! - 1;
      if (count > 0) return void holds.set(piece, count);
      holds.delete(piece);
      options.releasePiece?.(piece);
    };

    const flush = async (): Promise<void> => {
      const whole = pieces.length === 1 && sources.length === 1 && pieces[0] === sources[0];
      const data = pieces.length === 1 ? pieces[0]! : Buffer.concat(pieces, filled);
      const chunkSources = sources;
      const copied = pieces.length !== 1;
      pieces = [];
      sources = [];
      filled = 0;
      // A copy does not read its sources again.
      if (copied) for (const source of chunkSources) drop(source);
      const index = chunks.length;
      chunks.push(undefined as unknown as ChunkRef); // reserve the slot to keep object order
      const knownCrc32 = whole ? options.pieceCrc32?.(data) : undefined;
      const needleWrites: Array<Promise<unknown>> = [];
      const write = this.writeChunk(data, ec, { knownCrc32, needleWrites }).then((chunk) => {
        chunks[index] = chunk;
      });
      // Handled here so a failure while the body is still streaming is not an unhandled
      // rejection; it is rethrown where the write is awaited.
      write.catch(() => undefined);
      // The chunk's pieces are released once every needle write of it settled, past the ack too.
      write
        .catch(() => undefined)
        .then(() => Promise.allSettled(needleWrites))
        .then(() => {
          if (!copied) for (const source of chunkSources) drop(source);
        })
        .catch((error: unknown) => log.error({ error }, "releasing a written chunk's pieces failed"));
      inFlight.push(write);
      if (inFlight.length >= CHUNK_WRITES_IN_FLIGHT_MAX) await inFlight.shift();
    };

    try {
      for await (const piece of body) {
        hold(piece); // while this loop reads it
        try {
          sizeBytes += piece.length;
          if (sizeBytes > options.sizeBytesMax) throw new BodyTooLarge(options.sizeBytesMax);
          let offset = 0;
          while (offset < piece.length) {
            const take = Math.min(piece.length - offset, CHUNK_SIZE_BYTES - filled);
            pieces.push(take === piece.length ? piece : piece.subarray(offset, offset + take));
            if (sources[sources.length - 1] !== piece) {
              sources.push(piece);
              hold(piece);
            }
            filled += take;
            offset += take;
            if (filled === CHUNK_SIZE_BYTES) await flush();
          }
        } finally {
          drop(piece);
        }
      }
      if (filled > 0) await flush();
      await Promise.all(inFlight);
    } catch (error) {
      await Promise.allSettled(inFlight);
      for (const source of sources) drop(source);
      sources = [];
      await this.deleteChunks(chunks.filter((chunk): chunk is ChunkRef => chunk !== undefined));
      throw error;
    }
    for (const chunk of chunks) assert(chunk !== undefined, "every chunk slot was filled");
    return { chunks, sizeBytes };
  }

  /**
   * Write one chunk until its ack level is met, moving to another volume on failure. Every
   * needle write started is added to `needleWrites`, so the caller knows when `data` is no
   * longer read (writes past the ack level go on after this resolves).
   */
  private async writeChunk(
    data: Buffer,
    ec: EcScheme | null,
    options: { knownCrc32: Promise<number> | undefined; needleWrites: Array<Promise<unknown>> },
  ): Promise<ChunkRef> {
    // Either way the CRC was computed over `data`'s own memory, which nothing changes while
    // it is written: an in-process data node may take it without another pass.
    const checksum = options.knownCrc32 === undefined ? crc32(data) : await options.knownCrc32;
    const wanted = codesChunk(ec, data.length) ? ec : null;
    // Shards depend only on the data and the scheme: encoded once, whichever volume takes them.
    let shards: Promise<Array<{ data: Buffer; crc32: number }>> | undefined;
    try {
      const shardsOf = (scheme: EcScheme) => (shards ??= this.encodeShards(data, scheme));
      return await this.writeChunkToAVolume(data, checksum, wanted, shardsOf, options.needleWrites);
    } finally {
      // The stripe's memory is reused once every write of its shards settled (past the ack, and
      // those of abandoned attempts): nothing reads it then. (Should a remote write give up while
      // its bytes still sit in a socket's queue, its data node checks them against the CRC32
      // computed at encoding, so changed bytes are refused, never stored.)
      if (shards !== undefined && this.coder !== undefined) this.releaseShardsOnceWritten(this.coder, shards, options.needleWrites);
    }
  }

  /** writeChunk's attempts: a volume from placement, the needle or shard writes, a retry elsewhere on failure. */
  private async writeChunkToAVolume(
    data: Buffer,
    checksum: number,
    wanted: EcScheme | null,
    shardsOf: (scheme: EcScheme) => Promise<Array<{ data: Buffer; crc32: number }>>,
    needleWrites: Array<Promise<unknown>>,
  ): Promise<ChunkRef> {
    const failedVolumes = new Set<VolumeId>();
    const deadlineMs = Date.now() + CHUNK_WRITE_DEADLINE_MS;
    let lastError: unknown;
    for (let attempt = 1; attempt <= CHUNK_WRITE_ATTEMPTS_MAX && Date.now() < deadlineMs; attempt++) {
      if (attempt > 1 && !(lastError instanceof VolumeFull)) {
        const delayMs = Math.min(CHUNK_WRITE_RETRY_DELAY_MS_MAX, CHUNK_WRITE_RETRY_DELAY_MS_MIN * 2 ** (attempt - 2));
        await new Promise((resolve) => setTimeout(resolve, Math.min(delayMs, Math.max(0, deadlineMs - Date.now()))));
      }
      // A fresh id per attempt: an abandoned attempt's copies are tombstoned (deleteFrom), and a
      // data node acknowledges a write of a tombstoned id without storing it, so an attempt that
      // reused the id on the same volume would be acknowledged by a replica holding nothing.
      const needleId = newNeedleId();
      let target: VolumeReplicaSet;
      try {
        target = await this.placement.writableVolume({ exclude: failedVolumes, ec: wanted });
      } catch (error) {
        // No writable volume right now (placement growing or unreachable): wait and retry.
        lastError = error;
        continue;
      }
      try {
        if (target.ec === null) {
          const input: WriteNeedleInput = { volumeId: target.volumeId, needleId, data, crc32: checksum, crc32OfTheseBytes: true };
          await this.fanOut(
            target.replicas.map((store) => ({ store, input })),
            ackCountFor(this.ackLevel, target.replicas.length),
            needleWrites,
          );
        } else {
          // A placement with one failure domain answers a coded request with a replicated volume.
          assert(wanted !== null && sameLayout(target.ec, wanted), "placement hands out volumes of the asked layout");
          assert(target.replicas.length === wanted.k + wanted.m, "a coded volume has one node per shard");
          const encoded = await shardsOf(wanted);
          await this.fanOut(
            target.replicas.map((store, shardIndex) => {
              const shard = encoded[shardIndex]!;
              return { store, input: { volumeId: target.volumeId, needleId, data: shard.data, crc32: shard.crc32, crc32OfTheseBytes: true } };
            }),
            codedAckCount(this.ackLevel, wanted),
            needleWrites,
          );
        }
        return { volumeId: target.volumeId, needleId, sizeBytes: data.length, crc32: checksum };
      } catch (error) {
        lastError = error;
        failedVolumes.add(target.volumeId);
        if (error instanceof VolumeFull) await this.placement.volumeFull(target.volumeId);
        else log.warn({ volumeId: target.volumeId, attempt, error }, "chunk write missed its ack level; trying another volume");
      }
    }
    throw lastError;
  }

  private releaseShardsOnceWritten(
    coder: EcWorkerPool,
    shards: Promise<Array<{ data: Buffer; crc32: number }>>,
    writes: ReadonlyArray<Promise<unknown>>,
  ): void {
    void Promise.allSettled(writes)
      .then(async () => coder.releaseShards(await shards))
      .catch(() => undefined); // an encoding that failed has nothing to release
  }

  /**
   * k data shards and m parity shards of a chunk, each with its CRC32 (computed once, whichever
   * volume and attempt take them); all but one copy of the chunk is done on a worker thread.
   */
  private encodeShards(data: Buffer, ec: EcScheme): Promise<Array<{ data: Buffer; crc32: number }>> {
    return this.ecCoder().encodeChunk(ec, data);
  }

  /**
   * Write needles to their stores at once and resolve when `ackCount` are durable (the ack
   * level: every replica or shard, a majority, one; k + 1 shards for a coded chunk below `all`).
   * Writes past the ack level go on in the background; one that fails there is reported to
   * placement as a missing needle, for repair. When the ack count cannot be met, the stores
   * that did take a needle are told to delete it (best effort; an orphan needle is harmless).
   */
  private fanOut(writes: readonly NeedleWrite[], ackCount: number, started: Array<Promise<unknown>>): Promise<void> {
    const writeCount = writes.length;
    return new Promise<void>((resolve, reject) => {
      let acked = 0;
      let failed = 0;
      let firstError: unknown;
      let outcome: "pending" | "acknowledged" | "abandoned" = "pending";
      const written: NeedleWrite[] = [];
      const settle = () => {
        if (outcome !== "pending") return;
        if (acked >= ackCount) {
          outcome = "acknowledged";
          resolve();
        } else if (writeCount - failed < ackCount) {
          outcome = "abandoned";
          reject(firstError);
          this.deleteFrom(written).catch(() => undefined);
        }
      };
      for (const write of writes) {
        const { store, input } = write;
        const needleWrite = store.writeNeedle(input);
        started.push(needleWrite);
        needleWrite.then(
          () => {
            acked += 1;
            written.push(write);
            // A late success of an abandoned write leaves an orphan: remove it too.
            if (outcome === "abandoned") this.deleteFrom([write]).catch(() => undefined);
            settle();
          },
          (error: unknown) => {
            failed += 1;
            firstError ??= error;
            if (error instanceof PeerUnavailable) this.placement.reportUnreachable(store.nodeId);
            if (outcome === "acknowledged") {
              // Acknowledged at a lower ack level; this store lacks the needle until repair does it.
              log.warn({ volumeId: input.volumeId, needleId: input.needleId, nodeId: store.nodeId, error }, "needle write failed after ack");
              this.placement.reportDamage({ volumeId: input.volumeId, needleId: input.needleId, nodeId: store.nodeId, reason: "needle-missing" });
            }
            settle();
          },
        );
      }
    });
  }

  private async deleteFrom(writes: readonly NeedleWrite[]): Promise<void> {
    await Promise.allSettled(writes.map(({ store, input }) => store.deleteNeedle({ volumeId: input.volumeId, needleId: input.needleId })));
  }

  /**
   * Bytes [startByte, endByteExclusive) of an object made of `chunks` when they lie in one chunk
   * (every small object), read in one step; undefined when they span chunks (use readRange).
   * With `intoChunkBuffer`, a whole large chunk may come as a view of a pooled chunk buffer,
   * which the caller releases (releaseChunkBufferOf) once done with it.
   */
  readWithinOneChunk(
    chunks: readonly ChunkRef[],
    startByte: number,
    endByteExclusive: number,
    options: { intoChunkBuffer?: boolean } = {},
  ): Promise<Buffer> | undefined {
    const pieces = piecesOf(chunks, startByte, endByteExclusive);
    return pieces.length === 1 ? this.readPiece(pieces[0]!, options.intoChunkBuffer === true) : undefined;
  }

  /**
   * Yield bytes [startByte, endByteExclusive) of an object made of `chunks`, reading
   * READ_AHEAD_PIECE_COUNT chunks ahead of the one being sent. With `intoChunkBuffers`, whole chunks may come as views of
   * pooled chunk buffers: the consumer releases every piece it is given (releaseChunkBufferOf)
   * once done with it; a read ahead that is never yielded is released here.
   */
  async *readRange(chunks: ChunkRef[], startByte: number, endByteExclusive: number, options: { intoChunkBuffers?: boolean } = {}): AsyncGenerator<Buffer> {
    const pieces = piecesOf(chunks, startByte, endByteExclusive);
    const intoChunkBuffer = options.intoChunkBuffers === true;
    const ahead: Promise<Buffer>[] = [];
    let readIndex = 0;
    const readAhead = (count: number): void => {
      while (readIndex < pieces.length && ahead.length < count) {
        const read = this.readPiece(pieces[readIndex]!, intoChunkBuffer);
        // Swallow a read-ahead rejection until it is awaited, so it is never "unhandled".
        read.catch(() => undefined);
        ahead.push(read);
        readIndex += 1;
      }
    };
    try {
      readAhead(1);
      while (ahead.length > 0) {
        const current = ahead.shift()!;
        readAhead(READ_AHEAD_PIECE_COUNT);
        yield await current;
      }
    } finally {
      // Ended early (the client went away, or a read failed): the reads ahead are nobody's.
      if (intoChunkBuffer) for (const read of ahead) read.then((piece) => releaseChunkBufferOf(piece), () => undefined);
    }
  }

  /**
   * Read one piece: from the best replica of a replicated volume, or from the shards of a coded
   * one. When that fails, ask for a fresh cluster map once and try again: a restarted node may
   * have come back at a new address that this gateway's cached map does not know yet.
   */
  private async readPiece(piece: Piece, intoChunkBuffer: boolean): Promise<Buffer> {
    let lastError: unknown;
    for (const fresh of [false, true]) {
      const set = await this.placement.replicasOf(piece.chunk.volumeId, { fresh });
      try {
        return set.ec === null ? await this.readReplicated(piece, set, intoChunkBuffer) : await this.readCoded(piece, set, set.ec, intoChunkBuffer);
      } catch (error) {
        lastError = error;
      }
    }
    throw lastError;
  }

  /** Read from each replica in turn, best first, until one answers with verified bytes. */
  private async readReplicated(piece: Piece, set: VolumeReplicaSet, intoChunkBuffer: boolean): Promise<Buffer> {
    let lastError: unknown;
    for (const store of set.replicas) {
      try {
        const data = await store.readNeedle({
          volumeId: piece.chunk.volumeId,
          needleId: piece.chunk.needleId,
          offsetBytes: piece.offsetBytes,
          lengthBytes: piece.lengthBytes,
          ...(intoChunkBuffer ? { intoChunkBuffer } : {}),
        });
        assert(data.length === piece.lengthBytes, "a needle read returns the requested length");
        return data;
      } catch (error) {
        lastError = error;
        this.noteReadFailure(piece.chunk, store, error);
      }
    }
    throw lastError;
  }

  /** A failed needle read: avoid an unreachable node for a while, report damage for repair. */
  private noteReadFailure(chunk: ChunkRef, store: NeedleStore, error: unknown): void {
    if (error instanceof PeerUnavailable) this.placement.reportUnreachable(store.nodeId);
    const reason = damageReason(error);
    if (reason !== undefined) this.placement.reportDamage({ volumeId: chunk.volumeId, needleId: chunk.needleId, nodeId: store.nodeId, reason });
    log.warn({ volumeId: chunk.volumeId, needleId: chunk.needleId, nodeId: store.nodeId, error }, "needle read failed");
  }

  /**
   * A piece of a coded chunk. With the data shards it touches healthy, read just those byte
   * ranges (a range GET reads only what it needs). When one fails, fails its checksum, or is
   * slower than the backup delay, read whole shards instead, the data shards first and parity
   * as backups, decode from the first k to arrive, and check the rebuilt chunk's CRC32.
   * With `intoChunkBuffer`, ranges read directly may be joined in a pooled chunk buffer (see
   * readShardRanges), which the caller releases.
   */
  private async readCoded(piece: Piece, set: VolumeReplicaSet, ec: EcScheme, intoChunkBuffer: boolean): Promise<Buffer> {
    const shardSizeBytes = shardSizeBytesFor(piece.chunk.sizeBytes, ec.k);
    const ranges = dataShardRanges(shardSizeBytes, piece.offsetBytes, piece.lengthBytes);
    const failed = new Set<number>();
    if (ranges.every((range) => set.healthy[range.shardIndex] === true)) {
      const direct = await this.readShardRanges(piece.chunk, set, ranges, failed, intoChunkBuffer);
      if (direct !== undefined) return direct;
    }
    const chunk = await this.decodeChunk(piece.chunk, set, ec, shardSizeBytes, failed);
    return chunk.subarray(piece.offsetBytes, piece.offsetBytes + piece.lengthBytes);
  }

  /**
   * The ranges joined, or undefined when a read failed (its shard added to `failed`) or the
   * backup delay passed first. The ranges are read straight into their places in one buffer
   * (stores that can answer into a given buffer do: a framed RPC answer is copied there from
   * the socket's reads). With `intoChunkBuffer` that buffer is a pooled chunk buffer when one is
   * spare (a view of it is returned, for the caller to release): a fresh buffer per EC GET, and
   * one per shard answer, count as external memory, which V8 answers with a full mark-compact
   * every 64 MiB or so (in the bench's EC 1 MiB GETs, 27 of them in 4 s of the gateway).
   */
  private async readShardRanges(
    chunk: ChunkRef,
    set: VolumeReplicaSet,
    ranges: readonly ShardRange[],
    failed: Set<number>,
    intoChunkBuffer: boolean,
  ): Promise<Buffer | undefined> {
    let lengthBytes = 0;
    for (const range of ranges) lengthBytes += range.lengthBytes;
    const pooled = intoChunkBuffer && lengthBytes > 0 ? tryTakeChunkBuffer(CHUNK_BUFFER_RESERVE_COUNT) : undefined;
    assert(pooled === undefined || lengthBytes <= pooled.bytes.length, "a chunk's ranges fit a chunk buffer");
    const joined = pooled === undefined ? Buffer.allocUnsafe(lengthBytes) : pooled.bytes.subarray(0, lengthBytes);
    let offsetBytes = 0;
    const reads = ranges.map((range) => {
      const into = joined.subarray(offsetBytes, offsetBytes + range.lengthBytes);
      offsetBytes += range.lengthBytes;
      return this.readShard(chunk, set, range, into).then(
        (data) => {
          if (data !== into) copyBytes(into, data, 0);
        },
        (error: unknown) => {
          failed.add(range.shardIndex);
          throw error;
        },
      );
    });
    let timer: NodeJS.Timeout | undefined;
    const tooSlow = new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), this.shardLatency.backupDelayMs());
    });
    const allRead = Promise.all(reads).then(
      () => true,
      () => false, // the failure was noted; the caller decodes instead
    );
    try {
      if (await Promise.race([allRead, tooSlow])) return joined;
      // The caller decodes instead. Reads still running write into the buffer: it goes back to
      // the pool only once every one of them has settled.
      if (pooled !== undefined) void Promise.allSettled(reads).then(() => releaseChunkBuffer(pooled));
      return undefined;
    } finally {
      clearTimeout(timer);
    }
  }

  /** One shard's range, answered in `into` (exactly its length) where the store can. */
  private async readShard(chunk: ChunkRef, set: VolumeReplicaSet, range: ShardRange, into?: Buffer): Promise<Buffer> {
    const store = set.replicas[range.shardIndex]!;
    const startedAtMs = performance.now();
    try {
      const data = await store.readNeedle({
        volumeId: chunk.volumeId,
        needleId: chunk.needleId,
        offsetBytes: range.offsetBytes,
        lengthBytes: range.lengthBytes,
        ...(into !== undefined ? { into } : {}),
      });
      assert(data.length === range.lengthBytes, "a shard read returns the requested length");
      this.shardLatency.record(performance.now() - startedAtMs);
      return data;
    } catch (error) {
      this.noteReadFailure(chunk, store, error);
      throw error;
    }
  }

  /**
   * The whole chunk from any k of its k + m shards. Reads k shards (healthy nodes first, then
   * those that just failed this caller, data before parity); each failure starts the next shard,
   * and when the backup delay passes with fewer than k in hand every remaining shard is read at
   * once (hedged reads).
   */
  private async decodeChunk(
    chunk: ChunkRef,
    set: VolumeReplicaSet,
    ec: EcScheme,
    shardSizeBytes: number,
    failed: ReadonlySet<number>,
  ): Promise<Buffer> {
    const shardCount = ec.k + ec.m;
    const preference = (shardIndex: number) => (failed.has(shardIndex) ? 2 : set.healthy[shardIndex] === true ? 0 : 1);
    const order = Array.from({ length: shardCount }, (_, shardIndex) => shardIndex).sort(
      (left, right) => preference(left) - preference(right) || left - right,
    );
    const shards: Array<Buffer | undefined> = new Array<Buffer | undefined>(shardCount).fill(undefined);
    await new Promise<void>((resolve, reject) => {
      let next = 0;
      let inFlight = 0;
      let present = 0;
      let lastError: unknown;
      let done = false;
      const finish = (error?: unknown) => {
        if (done) return;
        done = true;
        clearTimeout(hedge);
        if (error === undefined) resolve();
        else reject(error);
      };
      // Every shard tried and none in flight, still short of k: the chunk cannot be read now.
      const giveUpWhenExhausted = () => {
        if (inFlight === 0 && next >= order.length && present < ec.k) finish(lastError ?? new TooFewShards(present, ec.k));
      };
      const launch = (): void => {
        if (done || next >= order.length) return;
        const shardIndex = order[next++]!;
        inFlight += 1;
        this.readShard(chunk, set, { shardIndex, offsetBytes: 0, lengthBytes: shardSizeBytes }).then(
          (data) => {
            inFlight -= 1;
            shards[shardIndex] = data;
            present += 1;
            if (present === ec.k) finish();
            else giveUpWhenExhausted();
          },
          (error: unknown) => {
            inFlight -= 1;
            lastError = error;
            launch();
            giveUpWhenExhausted();
          },
        );
      };
      const hedge = setTimeout(() => {
        while (!done && next < order.length) launch();
      }, this.shardLatency.backupDelayMs());
      for (let started = 0; started < ec.k; started++) launch();
    });
    // A copy: reads still in flight land in `shards` after this and are not used.
    const present = shards.slice();
    const complete = present.slice(0, ec.k).every((shard) => shard !== undefined)
      ? (present as Uint8Array[])
      : await this.ecCoder().reconstruct(ec, present);
    const data = joinDataShards(complete.slice(0, ec.k), ec.k, chunk.sizeBytes);
    // Decoding must not pass rot along: the chunk's own checksum checks what was rebuilt.
    if (crc32(data) !== chunk.crc32) throw new ChecksumMismatch(chunk.volumeId, chunk.needleId);
    return data;
  }

  /** Mark-delete the needles of chunks on every replica; failures are logged, not thrown. */
  async deleteChunks(chunks: ChunkRef[]): Promise<boolean> {
    let allDeleted = true;
    await Promise.all(
      chunks.map(async (chunk) => {
        try {
          const { replicas } = await this.placement.replicasOf(chunk.volumeId);
          await Promise.all(replicas.map((store: NeedleStore) => store.deleteNeedle({ volumeId: chunk.volumeId, needleId: chunk.needleId })));
        } catch (error) {
          allDeleted = false;
          log.warn({ volumeId: chunk.volumeId as VolumeId, needleId: chunk.needleId, error }, "chunk delete failed; left for GC");
        }
      }),
    );
    return allDeleted;
  }
}
