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
import { VolumeFull, type NeedleStore } from "../cluster/index.js";
import type { ChunkRef } from "../meta/index.js";
import type { Placement } from "../placement/index.js";

/** Chunks of one PUT being written while the next fills; 2 overlaps network and disk. */
export const CHUNK_WRITES_IN_FLIGHT_MAX = 2;
/** A chunk write that hits full volumes moves on to another volume this many times at most. */
export const CHUNK_WRITE_ATTEMPTS_MAX = 8;

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

export class DataRouter {
  constructor(private readonly placement: Placement) {}

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
    for (let attempt = 1; ; attempt++) {
      const target = await this.placement.writableVolume();
      try {
        // Fan-out: every replica at once; the chunk is durable when all have fsynced it.
        await Promise.all(
          target.replicas.map((store) => store.writeNeedle({ volumeId: target.volumeId, needleId, data, crc32: checksum })),
        );
        return { volumeId: target.volumeId, needleId, sizeBytes: data.length, crc32: checksum };
      } catch (error) {
        if (!(error instanceof VolumeFull) || attempt >= CHUNK_WRITE_ATTEMPTS_MAX) throw error;
        await this.placement.volumeFull(target.volumeId);
      }
    }
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

  private async readPiece(piece: { chunk: ChunkRef; offsetBytes: number; lengthBytes: number }): Promise<Buffer> {
    const { replicas } = await this.placement.replicasOf(piece.chunk.volumeId);
    let lastError: unknown;
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
        log.warn({ volumeId: piece.chunk.volumeId, needleId: piece.chunk.needleId, nodeId: store.nodeId, error }, "replica read failed");
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
