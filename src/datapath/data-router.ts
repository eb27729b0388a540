/**
 * The gateway side of the data path: cuts a streamed body into chunks, writes each chunk as a
 * needle to every replica of a writable volume, and reads byte ranges of an object back from
 * the best replica, chunk by chunk, with checksums verified by the data node.
 *
 * Memory per request is bounded: a PUT holds the chunk being filled plus at most
 * CHUNK_WRITES_IN_FLIGHT_MAX chunks being written; a GET holds the chunk being sent plus one
 * chunk read ahead.
 */
import { assert, CHUNK_SIZE_BYTES, crc32, log, newNeedleId, type VolumeId } from "../base/index.js";
import {
  ChecksumMismatch,
  NeedleNotFound,
  PeerUnavailable,
  VolumeFull,
  type DamageReport,
  type NeedleStore,
  type WriteNeedleInput,
} from "../cluster/index.js";
import type { ChunkRef } from "../meta/index.js";
import type { Placement, VolumeReplicaSet } from "../placement/index.js";

/** Chunks of one PUT being written while the next fills; 2 overlaps network and disk. */
export const CHUNK_WRITES_IN_FLIGHT_MAX = 2;
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

export class DataRouter {
  constructor(
    private readonly placement: Placement,
    private readonly ackLevel: AckLevel = "all",
  ) {}

  /**
   * Stream `body` into needles. On any failure the needles already written are deleted
   * (best effort; the GC collects what this misses) and the error is rethrown.
   */
  async writeBody(body: AsyncIterable<Buffer>, options: { sizeBytesMax: number }): Promise<WriteBodyResult> {
    const chunks: ChunkRef[] = [];
    const inFlight: Array<Promise<void>> = [];
    let sizeBytes = 0;
    let buffer = Buffer.allocUnsafe(CHUNK_SIZE_BYTES);
    let filled = 0;

    const flush = async (): Promise<void> => {
      const data = buffer.subarray(0, filled);
      const index = chunks.length;
      chunks.push(undefined as unknown as ChunkRef); // reserve the slot to keep object order
      const write = this.writeChunk(data).then((chunk) => {
        chunks[index] = chunk;
      });
      // Handled here so a failure while the body is still streaming is not an unhandled
      // rejection; it is rethrown where the write is awaited.
      write.catch(() => undefined);
      inFlight.push(write);
      buffer = Buffer.allocUnsafe(CHUNK_SIZE_BYTES);
      filled = 0;
      if (inFlight.length >= CHUNK_WRITES_IN_FLIGHT_MAX) await inFlight.shift();
    };

    try {
      for await (const piece of body) {
        sizeBytes += piece.length;
        if (sizeBytes > options.sizeBytesMax) throw new BodyTooLarge(options.sizeBytesMax);
        let offset = 0;
        while (offset < piece.length) {
          const take = Math.min(piece.length - offset, CHUNK_SIZE_BYTES - filled);
          piece.copy(buffer, filled, offset, offset + take);
          filled += take;
          offset += take;
          if (filled === CHUNK_SIZE_BYTES) await flush();
        }
      }
      if (filled > 0) await flush();
      await Promise.all(inFlight);
    } catch (error) {
      await Promise.allSettled(inFlight);
      await this.deleteChunks(chunks.filter((chunk): chunk is ChunkRef => chunk !== undefined));
      throw error;
    }
    for (const chunk of chunks) assert(chunk !== undefined, "every chunk slot was filled");
    return { chunks, sizeBytes };
  }

  private async writeChunk(data: Buffer): Promise<ChunkRef> {
    const checksum = crc32(data);
    const needleId = newNeedleId();
    const failedVolumes = new Set<VolumeId>();
    const deadlineMs = Date.now() + CHUNK_WRITE_DEADLINE_MS;
    let lastError: unknown;
    for (let attempt = 1; attempt <= CHUNK_WRITE_ATTEMPTS_MAX && Date.now() < deadlineMs; attempt++) {
      if (attempt > 1 && !(lastError instanceof VolumeFull)) {
        const delayMs = Math.min(CHUNK_WRITE_RETRY_DELAY_MS_MAX, CHUNK_WRITE_RETRY_DELAY_MS_MIN * 2 ** (attempt - 2));
        await new Promise((resolve) => setTimeout(resolve, Math.min(delayMs, Math.max(0, deadlineMs - Date.now()))));
      }
      let target: VolumeReplicaSet;
      try {
        target = await this.placement.writableVolume({ exclude: failedVolumes });
      } catch (error) {
        // No writable volume right now (placement growing or unreachable): wait and retry.
        lastError = error;
        continue;
      }
      try {
        await this.fanOut(target, { volumeId: target.volumeId, needleId, data, crc32: checksum });
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

  /**
   * Write one needle to every replica at once and resolve when the ack level is met: `all`
   * waits for every replica, `majority` for more than half, `one` for the first. Writes past
   * the ack level go on in the background. When the ack level cannot be met, the replicas that
   * did take the needle are told to delete it (best effort; an orphan needle is harmless).
   */
  private fanOut(target: VolumeReplicaSet, input: WriteNeedleInput): Promise<void> {
    const replicaCount = target.replicas.length;
    const ackCount = ackCountFor(this.ackLevel, replicaCount);
    return new Promise<void>((resolve, reject) => {
      let acked = 0;
      let failed = 0;
      let firstError: unknown;
      let outcome: "pending" | "acknowledged" | "abandoned" = "pending";
      const written: NeedleStore[] = [];
      const settle = () => {
        if (outcome !== "pending") return;
        if (acked >= ackCount) {
          outcome = "acknowledged";
          resolve();
        } else if (replicaCount - failed < ackCount) {
          outcome = "abandoned";
          reject(firstError);
          this.deleteFrom(written, input).catch(() => undefined);
        }
      };
      for (const store of target.replicas) {
        store.writeNeedle(input).then(
          () => {
            acked += 1;
            written.push(store);
            // A late success of an abandoned write leaves an orphan: remove it too.
            if (outcome === "abandoned") this.deleteFrom([store], input).catch(() => undefined);
            settle();
          },
          (error: unknown) => {
            failed += 1;
            firstError ??= error;
            if (error instanceof PeerUnavailable) this.placement.reportUnreachable(store.nodeId);
            if (outcome === "acknowledged") {
              // Acknowledged at a lower ack level; this replica lacks the needle until repair.
              log.warn({ volumeId: input.volumeId, needleId: input.needleId, nodeId: store.nodeId, error }, "replica write failed after ack");
            }
            settle();
          },
        );
      }
    });
  }

  private async deleteFrom(stores: NeedleStore[], input: WriteNeedleInput): Promise<void> {
    await Promise.allSettled(stores.map((store) => store.deleteNeedle({ volumeId: input.volumeId, needleId: input.needleId })));
  }

  /**
   * Yield bytes [startByte, endByteExclusive) of an object made of `chunks`, reading one chunk
   * ahead of the one being sent.
   */
  async *readRange(chunks: ChunkRef[], startByte: number, endByteExclusive: number): AsyncGenerator<Buffer> {
    const pieces: Array<{ chunk: ChunkRef; offsetBytes: number; lengthBytes: number }> = [];
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
    let next = pieces.length > 0 ? this.readPiece(pieces[0]!) : undefined;
    for (let index = 0; index < pieces.length; index++) {
      const current = next!;
      // Swallow a read-ahead rejection until it is awaited, so it is never "unhandled".
      current.catch(() => undefined);
      next = index + 1 < pieces.length ? this.readPiece(pieces[index + 1]!) : undefined;
      next?.catch(() => undefined);
      yield await current;
    }
  }

  /**
   * Read one piece from the best replica, falling over to the next on any error. When every
   * replica fails, ask for a fresh cluster map once and try again: a restarted node may have
   * come back at a new address that this gateway's cached map does not know yet.
   */
  private async readPiece(piece: { chunk: ChunkRef; offsetBytes: number; lengthBytes: number }): Promise<Buffer> {
    let lastError: unknown;
    for (const fresh of [false, true]) {
      const { replicas } = await this.placement.replicasOf(piece.chunk.volumeId, { fresh });
      for (const store of replicas) {
        try {
          const data = await store.readNeedle({
            volumeId: piece.chunk.volumeId,
            needleId: piece.chunk.needleId,
            offsetBytes: piece.offsetBytes,
            lengthBytes: piece.lengthBytes,
          });
          assert(data.length === piece.lengthBytes, "a needle read returns the requested length");
          return data;
        } catch (error) {
          // Try the next replica; the damage report to placement comes with repair (issue 6).
          lastError = error;
          if (error instanceof PeerUnavailable) this.placement.reportUnreachable(store.nodeId);
          const reason = damageReason(error);
          if (reason !== undefined) {
            this.placement.reportDamage({ volumeId: piece.chunk.volumeId, needleId: piece.chunk.needleId, nodeId: store.nodeId, reason });
          }
          log.warn({ volumeId: piece.chunk.volumeId, needleId: piece.chunk.needleId, nodeId: store.nodeId, error }, "replica read failed");
        }
      }
    }
    throw lastError;
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
