/**
 * One volume: an append-only file of needles, its group-commit writer, its seal, its recovery
 * scan and its checksum-verified positioned reads. The DataNode owns the object mapping and
 * routes requests here; a Volume writes mapping rows only for needles it has fsynced.
 */
import { readSync } from "node:fs";
import { open, type FileHandle } from "node:fs/promises";
import {
  assert,
  CHUNK_BUFFER_RESERVE_COUNT,
  CHUNK_BUFFER_SIZE_BYTES,
  crc32,
  crc32Combine,
  GROUP_COMMIT_BYTES_MAX,
  GROUP_COMMIT_WRITES_COUNT_MAX,
  KIBIBYTE,
  log,
  NEEDLE_READ_SYNC_SIZE_BYTES_MAX,
  pageOffsetOf,
  releaseChunkBuffer,
  tryTakeChunkBuffer,
  type ChunkBuffer,
  type NeedleId,
  type VolumeId,
} from "../base/index.js";
import { ChecksumMismatch, DiskFull, VolumeFull } from "../cluster/index.js";
import { crashPoint } from "./crash-point.js";
import {
  DIRECT_IO_ALIGNMENT_BYTES,
  DIRECT_WRITE_BYTES_MIN,
  DirectWriteRefused,
  openDirect,
  writeAllAt,
  writeAllAtSync,
  writeParts,
  type GroupPart,
} from "./direct-write.js";
import {
  decodeNeedle,
  decodeNeedleHeader,
  decodeSealFooter,
  decodeSuperblock,
  encodeNeedle,
  encodePaddingNeedle,
  encodeSealFooter,
  frameNeedle,
  NEEDLE_ALIGNMENT_BYTES,
  NEEDLE_FLAG_PADDING,
  NEEDLE_FLAG_TOMBSTONE,
  NEEDLE_HEADER_SIZE_BYTES,
  needleEncodedSizeBytes,
  PADDING_NEEDLE_SIZE_BYTES_MIN,
  SEAL_FOOTER_SIZE_BYTES,
  startsWithSealFooterMagic,
  SUPERBLOCK_SIZE_BYTES,
  VOLUME_FORMAT_VERSION_PADDING,
  type NeedleDecoded,
  type SealFooter,
} from "./needle-codec.js";
import { NEEDLE_VERIFY_OFFLOAD_SIZE_BYTES_MIN, readAndVerifyNeedle } from "./needle-verifier.js";
import type { MappingRecord, NeedleCounts, NeedleRow, ObjectMapping, VolumeRow } from "./object-mapping.js";

/** Counters for observability and tests, shared by every volume of a node. */
export interface DataNodeStats {
  /** fsync/fdatasync calls on volume files (appends, seals, recovery truncations). */
  fsyncCount: number;
  /** Groups of appends written with one write and made durable with one fsync. */
  groupCommitCount: number;
  /** Needles (tombstones included) appended to volume files. */
  needleAppendCount: number;
  /** Bytes of appends written around the page cache (O_DIRECT; see direct-write.ts). */
  directWriteBytes: number;
  /** Needle bytes read back through the O_DIRECT descriptor (large needles, see linesUpForDirectRead). */
  directReadBytes: number;
}

/** A read through a Volume object that has been closed (replaced by compaction, or shut down). */
export class VolumeClosed extends Error {
  override name = "VolumeClosed";
  constructor(readonly volumeId: VolumeId) {
    super(`volume ${volumeId}'s file was closed`);
  }
}

export type VolumeState =
  | { kind: "writable" }
  | { kind: "sealed"; footer: SealFooter }
  /** Marked sealed but its footer is gone or garbled: read-only, reported to the scrubber. */
  | { kind: "damaged"; reason: string }
  /** A write or fsync failed: the file's tail is unknown, so no more appends; reads go on. */
  | { kind: "failed"; reason: string };

export interface SealedVolumeVerification {
  volumeId: VolumeId;
  ok: boolean;
  reason?: string;
  expectedCrc32?: number;
  actualCrc32?: number;
}

interface PendingAppend {
  needleId: NeedleId;
  flags: number;
  dataSizeBytes: number;
  /** The needle's encoding: one buffer, or head + data + tail for a large needle (no copy). */
  encoded: Buffer[];
  encodedSizeBytes: number;
  /** CRC32 of `encoded`, folded into the file CRC without another pass over it. */
  encodedCrc32: number;
  /**
   * The needle's data (one of `encoded`) when it may be written around the page cache: large,
   * in page-aligned memory, starting `pageOffset` bytes into a page (direct-write.ts).
   */
  direct: { data: Buffer; pageOffset: number } | undefined;
  resolve: () => void;
  reject: (error: unknown) => void;
}

export interface VolumeOpenOptions {
  volumeId: VolumeId;
  path: string;
  /** The file to open when it is not (yet) at `path`: compaction opens its new file before the rename. */
  openPath?: string;
  diskDirectory: string;
  /** The mapping's row for this volume; absent when the file is new to the mapping. */
  row: VolumeRow | undefined;
  mapping: ObjectMapping;
  counts: NeedleCounts;
  volumeSizeBytes: number;
  stats: DataNodeStats;
  /** Records a tombstone on this volume once sealed (durably, in the mapping only). */
  recordSealedTombstone: (needleId: NeedleId) => Promise<void>;
  /** Write large needles around the page cache where the disk allows it (DataNodeOptions.directIo). */
  directIo: boolean;
}

const READ_CHUNK_SIZE_BYTES = 8 * 1024 * 1024;
/** Groups up to this size are written on the event loop (Volume.writeGroup); larger ones on the thread pool. */
const GROUP_INLINE_WRITE_BYTES_MAX = 64 * KIBIBYTE;
/**
 * Needles with at least this much data are written as head + data + tail in the group's writev
 * rather than copied into one buffer: copying a 4 MiB chunk (and collecting the copy) cost a
 * large PUT's event loop about as much as a CRC pass. Smaller ones are copied: three iovecs per
 * 4 KiB needle would cost the writev more than the copy saves.
 */
const NEEDLE_FRAME_SIZE_BYTES_MIN = 64 * 1024;

export class Volume {
  readonly volumeId: VolumeId;
  readonly path: string;
  readonly diskDirectory: string;
  private state: VolumeState;
  private readonly fileHandle: FileHandle;
  /** The superblock's: padding needles go only into files of VOLUME_FORMAT_VERSION_PADDING on. */
  private readonly formatVersion: number;
  /** The same file opened with O_DIRECT for large appends, while writable and where allowed. */
  private directHandle: FileHandle | undefined;
  /**
   * The same file opened read-only with O_DIRECT, for reads of large needles that line up with
   * pages (needle-verifier.ts); opened at the first such read, where direct I/O is on, through
   * /proc/self/fd so that it is this inode even after compaction put another file at `path`.
   */
  private directReadHandle: Promise<FileHandle | undefined> | undefined;
  private readonly directReads: boolean;
  /** An O_DIRECT write failed with EINVAL: appends go through the page cache from then on. */
  private directWritesRefused = false;
  private readonly mapping: ObjectMapping;
  private readonly volumeSizeBytes: number;
  private readonly stats: DataNodeStats;
  private readonly recordSealedTombstone: (needleId: NeedleId) => Promise<void>;
  /** Where the next group is written: every byte before it is fsynced and mapped. */
  private endOffsetBytes: number;
  /** CRC32 of the file's bytes [0, endOffsetBytes). */
  private fileCrc32: number;
  private readonly counts: NeedleCounts;
  private readonly queue: PendingAppend[] = [];
  /** Set and cleared synchronously, so an append queued as a loop ends always starts a new one. */
  private flushRunning = false;
  private flushDone: Promise<void> = Promise.resolve();
  /**
   * A seal was requested (requestSeal): how many of the queued appends still go in before the
   * footer. Appends queued behind them are answered as a full volume's are (VolumeFull).
   */
  private sealAfterAppendsCount: number | undefined;
  /** requestSeal callers waiting for the seal (or the failure that ended the volume's appends). */
  private readonly sealWaiters: { resolve: () => void; reject: (error: unknown) => void }[] = [];
  /**
   * Positioned reads running on the file handle. Compaction swaps a volume for its rewritten
   * file while reads that looked up their offsets in the old one may still be running; close()
   * waits for them, so the old file's descriptor (and with it the unlinked old inode) outlives
   * every read that needs it.
   */
  private readsInFlight = 0;
  private readsDrained: (() => void) | undefined;
  private closed = false;

  private constructor(
    options: VolumeOpenOptions,
    fileHandle: FileHandle,
    state: VolumeState,
    endOffsetBytes: number,
    fileCrc32: number,
    formatVersion: number,
  ) {
    this.formatVersion = formatVersion;
    this.directReads = options.directIo;
    this.volumeId = options.volumeId;
    this.path = options.path;
    this.diskDirectory = options.diskDirectory;
    this.mapping = options.mapping;
    this.volumeSizeBytes = options.volumeSizeBytes;
    this.stats = options.stats;
    this.recordSealedTombstone = options.recordSealedTombstone;
    this.counts = { ...options.counts };
    this.fileHandle = fileHandle;
    this.state = state;
    this.endOffsetBytes = endOffsetBytes;
    this.fileCrc32 = fileCrc32;
  }

  /**
   * Opens a volume file and brings it and the mapping back into agreement:
   * - a sealed volume is checked for its footer;
   * - a writable one is scanned from the offset the mapping has reached: complete needles with
   *   a valid CRC get their rows (a crash between fsync and the mapping commit, or a lost
   *   NORMAL commit), a torn tail is cut off and the cut fsynced, and a valid footer found at the
   *   end (a crash after writing the footer, before recording the seal) seals the volume.
   */
  static async open(options: VolumeOpenOptions): Promise<Volume> {
    const path = options.openPath ?? options.path;
    const fileHandle = await open(path, "r+");
    try {
      const volume = await Volume.recover(options, fileHandle);
      if (options.directIo && volume.state.kind === "writable") volume.directHandle = await openDirect(path, "write");
      return volume;
    } catch (error) {
      await fileHandle.close();
      throw error;
    }
  }

  private static async recover(options: VolumeOpenOptions, fileHandle: FileHandle): Promise<Volume> {
    const { volumeId, mapping } = options;
    const fileSizeBytes = (await fileHandle.stat()).size;
    const superblockBytes = await readAt(fileHandle, SUPERBLOCK_SIZE_BYTES, 0);
    const superblock = decodeSuperblock(superblockBytes);
    if (superblock.kind === "invalid") throw new Error(`volume ${volumeId}: bad superblock (${superblock.reason})`);
    if (superblock.volumeId !== volumeId) {
      throw new Error(`volume ${volumeId}: superblock names volume ${superblock.volumeId}`);
    }
    let row = options.row;
    if (row === undefined) {
      // The file exists but the mapping never heard of it (mapping lost or a crash right after
      // createVolume renamed the file): adopt it and map it from the start.
      row = { volumeId, state: "writable", mappedUpToBytes: SUPERBLOCK_SIZE_BYTES, fileCrc32UpTo: crc32(superblockBytes) };
      mapping.insertVolume(row);
      log.warn({ volumeId, path: options.path }, "volume file not in the mapping; rebuilding its rows from the file");
    }

    if (row.state === "sealed") {
      const footerOffsetBytes = fileSizeBytes - SEAL_FOOTER_SIZE_BYTES;
      const footerBytes =
        footerOffsetBytes >= SUPERBLOCK_SIZE_BYTES ? await readAt(fileHandle, SEAL_FOOTER_SIZE_BYTES, footerOffsetBytes) : Buffer.alloc(0);
      const decoded = decodeSealFooter(footerBytes);
      if (
        decoded.kind === "footer" &&
        decoded.footer.volumeId === volumeId &&
        decoded.footer.dataEndOffsetBytes === footerOffsetBytes
      ) {
        return new Volume(options, fileHandle, { kind: "sealed", footer: decoded.footer }, footerOffsetBytes, decoded.footer.fileCrc32, superblock.formatVersion);
      }
      const reason = decoded.kind === "invalid" ? `footer ${decoded.reason}` : "footer does not match the file";
      log.error({ volumeId, path: options.path, reason }, "sealed volume has no valid footer; serving it read-only");
      return new Volume(options, fileHandle, { kind: "damaged", reason }, fileSizeBytes, 0, superblock.formatVersion);
    }

    let scanStartBytes = row.mappedUpToBytes;
    let scanStartCrc32 = row.fileCrc32UpTo;
    if (scanStartBytes > fileSizeBytes || scanStartBytes < SUPERBLOCK_SIZE_BYTES) {
      // The mapping claims bytes the file does not hold (the file lost fsynced data, or was
      // replaced): trust the file, re-map it whole and drop rows beyond what it holds.
      log.error({ volumeId, mappedUpToBytes: scanStartBytes, fileSizeBytes }, "mapping is ahead of the volume file; re-scanning it");
      scanStartBytes = SUPERBLOCK_SIZE_BYTES;
      scanStartCrc32 = crc32(superblockBytes);
    }
    const scan = await scanNeedles({ fileHandle, volumeId, fileSizeBytes, startOffsetBytes: scanStartBytes, startCrc32: scanStartCrc32 });
    if (scan.footer === undefined && scan.endOffsetBytes < fileSizeBytes) {
      // Torn tail: only the last group can be torn, because each group is fsynced before the
      // next is written, and a group is acknowledged only after its fsync. So nothing cut here
      // was ever acknowledged.
      log.warn(
        { volumeId, cutFromBytes: scan.endOffsetBytes, fileSizeBytes, reason: scan.stopReason },
        "cutting a torn tail off a volume",
      );
      await fileHandle.truncate(scan.endOffsetBytes);
      await fileHandle.sync();
      options.stats.fsyncCount += 1;
    }
    const rowsDropped = mapping.deleteNeedlesFrom(volumeId, scan.endOffsetBytes);
    const state: VolumeState = scan.footer === undefined ? { kind: "writable" } : { kind: "sealed", footer: scan.footer };
    const delta = mapping.applyAppends(volumeId, scan.records, {
      mappedUpToBytes: scan.endOffsetBytes,
      fileCrc32UpTo: scan.crc32,
      state: state.kind === "sealed" ? "sealed" : "writable",
    });
    if (scan.records.length > 0 || state.kind === "sealed") {
      log.info({ volumeId, needlesRecovered: scan.records.length, sealed: state.kind === "sealed" }, "volume recovered");
    }
    const counts = rowsDropped > 0 ? mapping.countNeedlesOf(volumeId) : addCounts(options.counts, delta);
    return new Volume({ ...options, counts }, fileHandle, state, scan.endOffsetBytes, scan.crc32, superblock.formatVersion);
  }

  get stateKind(): VolumeState["kind"] {
    return this.state.kind;
  }

  /** The file's size: every mapped byte plus the footer when sealed. */
  get sizeBytes(): number {
    return this.endOffsetBytes + (this.state.kind === "sealed" ? SEAL_FOOTER_SIZE_BYTES : 0);
  }

  get needleCounts(): NeedleCounts {
    return { ...this.counts };
  }

  /** The seal footer, or undefined while writable (or damaged, failed). */
  get sealFooter(): SealFooter | undefined {
    return this.state.kind === "sealed" ? this.state.footer : undefined;
  }

  setCounts(counts: NeedleCounts): void {
    this.counts.needleCount = counts.needleCount;
    this.counts.deletedNeedleCount = counts.deletedNeedleCount;
  }

  addCounts(delta: NeedleCounts): void {
    this.counts.needleCount += delta.needleCount;
    this.counts.deletedNeedleCount += delta.deletedNeedleCount;
  }

  /**
   * Appends a needle; resolves once it is fsynced and mapped. Rejects with VolumeFull once sealed.
   * `dataCrc32` (CRC32 of `data`, when the caller verified it) spares a pass over the data.
   */
  appendNeedle(needleId: NeedleId, data: Buffer, dataCrc32?: number): Promise<void> {
    if (this.state.kind !== "writable") return Promise.reject(new VolumeFull(this.volumeId));
    const header = { needleId, flags: 0, dataSizeBytes: data.length };
    const encodedSizeBytes = needleEncodedSizeBytes(header);
    if (data.length >= NEEDLE_FRAME_SIZE_BYTES_MIN) {
      // `data` is written as it is: the caller does not change it before this resolves.
      const frame = frameNeedle({ header, data }, dataCrc32);
      const encoded = [frame.head, data, frame.tail];
      const pageOffset = directWritablePageOffset(data);
      return this.enqueue({
        needleId,
        flags: 0,
        dataSizeBytes: data.length,
        encoded,
        encodedSizeBytes,
        encodedCrc32: frame.encodedCrc32,
        direct: pageOffset === undefined ? undefined : { data, pageOffset },
      });
    }
    const encoded = Buffer.allocUnsafe(encodedSizeBytes);
    const encodedCrc32 = encodeNeedle({ header, data }, encoded, dataCrc32);
    return this.enqueue({ needleId, flags: 0, dataSizeBytes: data.length, encoded: [encoded], encodedSizeBytes, encodedCrc32, direct: undefined });
  }

  /**
   * Mark-delete. A writable volume gets a tombstone needle (fsynced, then mapped); a sealed one
   * is never appended to again, so its tombstones live only in the mapping, committed durably.
   */
  deleteNeedle(needleId: NeedleId): Promise<void> {
    if (this.state.kind !== "writable") return this.recordSealedTombstone(needleId);
    const header = { needleId, flags: NEEDLE_FLAG_TOMBSTONE, dataSizeBytes: 0 };
    const encoded = Buffer.allocUnsafe(needleEncodedSizeBytes(header));
    const encodedCrc32 = encodeNeedle({ header, data: Buffer.alloc(0) }, encoded);
    return this.enqueue({
      needleId,
      flags: NEEDLE_FLAG_TOMBSTONE,
      dataSizeBytes: 0,
      encoded: [encoded],
      encodedSizeBytes: encoded.length,
      encodedCrc32,
      direct: undefined,
    });
  }

  /**
   * Reads and verifies the needle `row` points at; resolves with its whole payload. With
   * `intoChunkBuffer`, a large needle is read into a pooled chunk buffer and the payload is a view
   * of it: the caller releases it (releaseChunkBufferOf) once done; a small one is plain memory.
   */
  async readNeedleData(needleId: NeedleId, row: NeedleRow, options: { intoChunkBuffer?: boolean } = {}): Promise<Buffer> {
    const encodedSizeBytes = needleEncodedSizeBytes(row);
    assert(row.offsetBytes >= SUPERBLOCK_SIZE_BYTES, "a mapped needle starts after the superblock");
    assert(row.offsetBytes + encodedSizeBytes <= this.endOffsetBytes, "a mapped needle ends within the volume's mapped bytes");
    // One pass over the bytes; for a large needle the read and the pass run on a worker thread.
    let into: ChunkBuffer | undefined;
    let decoded: NeedleDecoded;
    if (encodedSizeBytes >= NEEDLE_VERIFY_OFFLOAD_SIZE_BYTES_MIN) {
      // Only a spare one: without it the worker reads into a buffer of its own, as for others.
      if (options.intoChunkBuffer === true && encodedSizeBytes <= CHUNK_BUFFER_SIZE_BYTES) into = tryTakeChunkBuffer(CHUNK_BUFFER_RESERVE_COUNT);
      try {
        decoded = await this.readOnWorker(row.offsetBytes, encodedSizeBytes, into);
      } catch (error) {
        if (into !== undefined) releaseChunkBuffer(into);
        throw error;
      }
    } else {
      decoded = decodeNeedle(await this.readBytes(row.offsetBytes, encodedSizeBytes));
    }
    if (
      decoded.kind !== "needle" ||
      decoded.header.needleId !== needleId ||
      decoded.header.dataSizeBytes !== row.dataSizeBytes ||
      (decoded.header.flags & NEEDLE_FLAG_TOMBSTONE) !== 0
    ) {
      if (into !== undefined) releaseChunkBuffer(into);
      log.error({ volumeId: this.volumeId, needleId, offsetBytes: row.offsetBytes }, "needle failed verification on read");
      throw new ChecksumMismatch(this.volumeId, needleId);
    }
    return decoded.data;
  }

  /**
   * Writes a needle's good bytes over its corrupt copy in a sealed (or damaged) file, fsyncs, and
   * verifies them by reading back (see DataNode.rewriteSealedNeedle for why this is sound).
   */
  async rewriteNeedleInPlace(needleId: NeedleId, row: NeedleRow, data: Buffer): Promise<void> {
    assert(this.state.kind === "sealed" || this.state.kind === "damaged", "only a sealed volume's needle is rewritten in place");
    assert(data.length === row.dataSizeBytes, "the good bytes fill exactly the needle's slot");
    const header = { needleId, flags: 0, dataSizeBytes: data.length };
    const encoded = Buffer.allocUnsafe(needleEncodedSizeBytes(header));
    encodeNeedle({ header, data }, encoded);
    assert(row.offsetBytes >= SUPERBLOCK_SIZE_BYTES && row.offsetBytes + encoded.length <= this.endOffsetBytes, "the slot lies within the sealed data");
    if (this.closed) throw new VolumeClosed(this.volumeId);
    await writeAllAt(this.fileHandle, [encoded], row.offsetBytes);
    await this.fileHandle.datasync();
    this.stats.fsyncCount += 1;
    // A disk that does not keep what it is given fails here with ChecksumMismatch, as reads would.
    await this.readNeedleData(needleId, row);
  }

  /**
   * Raw bytes [positionBytes, positionBytes + lengthBytes) of the file, shorter only at its end
   * (needle reads, compaction and the scrubber verify what they read themselves).
   */
  async readBytes(positionBytes: number, lengthBytes: number): Promise<Buffer> {
    // Only a holder of a stale reference gets here (the scrubber, after compaction swapped
    // the volume out); reads through the DataNode always find the current volume.
    if (this.closed) throw new VolumeClosed(this.volumeId);
    // A small read is one pread on the event loop: the thread-pool hand-off costs more than it.
    if (lengthBytes <= NEEDLE_READ_SYNC_SIZE_BYTES_MAX) return readAtSync(this.fileHandle, lengthBytes, positionBytes);
    this.readsInFlight += 1;
    try {
      return await readAt(this.fileHandle, lengthBytes, positionBytes);
    } finally {
      this.readsInFlight -= 1;
      if (this.readsInFlight === 0) this.readsDrained?.();
    }
  }

  private async readOnWorker(positionBytes: number, lengthBytes: number, into: ChunkBuffer | undefined): Promise<NeedleDecoded> {
    if (this.closed) throw new VolumeClosed(this.volumeId);
    // Counted like any read, so close() keeps the descriptor open until the worker is done with it.
    this.readsInFlight += 1;
    try {
      // The descriptor is offered for reads into a chunk buffer; which of them it serves is
      // linesUpForDirectRead's to say.
      const directFd = into !== undefined && this.directReads ? (await (this.directReadHandle ??= openDirect(`/proc/self/fd/${this.fileHandle.fd}`, "read")))?.fd : undefined;
      if (this.closed) throw new VolumeClosed(this.volumeId);
      const read = await readAndVerifyNeedle(this.fileHandle.fd, positionBytes, lengthBytes, into, directFd);
      this.stats.directReadBytes += read.directReadBytes;
      return read.decoded;
    } finally {
      this.readsInFlight -= 1;
      if (this.readsInFlight === 0) this.readsDrained?.();
    }
  }

  /** Re-reads a sealed volume and checks its whole-file checksum against the footer. */
  async verifySealed(): Promise<SealedVolumeVerification> {
    const state = this.state;
    if (state.kind !== "sealed") {
      return { volumeId: this.volumeId, ok: false, reason: state.kind === "damaged" ? state.reason : `volume is ${state.kind}` };
    }
    let actualCrc32 = 0;
    for (let offset = 0; offset < state.footer.dataEndOffsetBytes; offset += READ_CHUNK_SIZE_BYTES) {
      const length = Math.min(READ_CHUNK_SIZE_BYTES, state.footer.dataEndOffsetBytes - offset);
      const chunk = await this.readBytes(offset, length);
      if (chunk.length !== length) return { volumeId: this.volumeId, ok: false, reason: "file is shorter than its footer says" };
      actualCrc32 = crc32(chunk, actualCrc32);
    }
    const footerBytes = await this.readBytes(state.footer.dataEndOffsetBytes, SEAL_FOOTER_SIZE_BYTES);
    const footer = decodeSealFooter(footerBytes);
    if (footer.kind !== "footer" || footer.footer.fileCrc32 !== state.footer.fileCrc32) {
      return { volumeId: this.volumeId, ok: false, reason: "footer on disk changed" };
    }
    const expectedCrc32 = state.footer.fileCrc32;
    const ok = actualCrc32 === expectedCrc32;
    return ok
      ? { volumeId: this.volumeId, ok, expectedCrc32, actualCrc32 }
      : { volumeId: this.volumeId, ok, reason: "whole-file checksum mismatch", expectedCrc32, actualCrc32 };
  }

  /**
   * Seals the volume on request (repair and drain), exactly as a full one is sealed: after the
   * appends already queued, with footer, fsync and mapping state; appends queued later get
   * VolumeFull. A volume that already takes no appends (sealed, damaged, failed) is left as it
   * is. Rejects with the write failure if the footer or a queued group cannot be written (the
   * volume is then 'failed', as after a failed seal of a full volume).
   */
  requestSeal(): Promise<void> {
    if (this.state.kind !== "writable") return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      this.sealWaiters.push({ resolve, reject });
      this.sealAfterAppendsCount ??= this.queue.length;
      if (!this.flushRunning) {
        this.flushRunning = true;
        this.flushDone = this.flushLoop();
      }
    });
  }

  /** Waits for queued appends, then closes the file. */
  async close(): Promise<void> {
    while (this.flushRunning) await this.flushDone;
    while (this.readsInFlight > 0) await new Promise<void>((resolve) => (this.readsDrained = resolve));
    if (this.closed) return;
    this.closed = true;
    await this.closeDirect();
    await (await this.directReadHandle)?.close();
    await this.fileHandle.close();
  }

  /** Only where no append is being written: in close(), or by the append loop itself. */
  private async closeDirect(): Promise<void> {
    const directHandle = this.directHandle;
    this.directHandle = undefined;
    await directHandle?.close();
  }

  // ---- Group commit ----

  private enqueue(append: Omit<PendingAppend, "resolve" | "reject">): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ ...append, resolve, reject });
      if (!this.flushRunning) {
        this.flushRunning = true;
        this.flushDone = this.flushLoop();
      }
    });
  }

  /**
   * One group at a time: appends that arrive while a group is being written and fsynced wait in
   * the queue and form the next group, so N concurrent writers share about N / group-size fsyncs.
   */
  private async flushLoop(): Promise<void> {
    try {
      while (this.queue.length > 0 || this.sealAfterAppendsCount !== undefined) {
        if (this.state.kind !== "writable") {
          this.drainAfterWritable();
          break;
        }
        const { group, sealNeeded } = this.takeGroup();
        if (group.length > 0) await this.commitGroup(group);
        if (sealNeeded && this.state.kind === "writable") await this.seal();
      }
    } catch (error) {
      // Only a bug or a mapping (SQLite) failure gets here; never leave a writer hanging.
      log.error({ volumeId: this.volumeId, error }, "volume append loop failed");
      this.state = { kind: "failed", reason: String(error) };
      for (const append of this.queue.splice(0)) append.reject(error);
      this.settleSealWaiters(error);
    } finally {
      if (this.state.kind !== "writable") this.settleSealWaiters(undefined);
      this.flushRunning = false;
    }
  }

  private takeGroup(): { group: PendingAppend[]; sealNeeded: boolean } {
    let groupSizeBytes = 0;
    let count = 0;
    let sealNeeded = false;
    const sealAfterAppendsCount = this.sealAfterAppendsCount;
    const padsForDirectIo = this.padsForDirectIo();
    for (const append of this.queue) {
      if (count >= GROUP_COMMIT_WRITES_COUNT_MAX || count === sealAfterAppendsCount) break;
      // The padding commitGroup may put before it is counted at its largest.
      const sizeBytes = append.encodedSizeBytes + (padsForDirectIo && append.direct !== undefined ? DIRECT_PADDING_BYTES_MAX : 0);
      if (count > 0 && groupSizeBytes + sizeBytes > GROUP_COMMIT_BYTES_MAX) break;
      // The footer must always fit behind the last needle, so the check includes it.
      if (this.endOffsetBytes + groupSizeBytes + sizeBytes + SEAL_FOOTER_SIZE_BYTES > this.volumeSizeBytes) {
        sealNeeded = true;
        break;
      }
      groupSizeBytes += sizeBytes;
      count += 1;
    }
    if (sealAfterAppendsCount !== undefined) {
      this.sealAfterAppendsCount = sealAfterAppendsCount - count;
      if (this.sealAfterAppendsCount === 0) sealNeeded = true;
    }
    return { group: this.queue.splice(0, count), sealNeeded };
  }

  private async commitGroup(group: PendingAppend[]): Promise<void> {
    assert(this.state.kind === "writable", "no append to a sealed volume");
    const groupStartBytes = this.endOffsetBytes;
    const records: MappingRecord[] = [];
    const parts: GroupPart[] = [];
    const padsForDirectIo = this.padsForDirectIo();
    let offsetBytes = groupStartBytes;
    let groupCrc32 = this.fileCrc32;
    for (const append of group) {
      const direct = padsForDirectIo ? append.direct : undefined;
      if (direct !== undefined) {
        // The data's file offset takes its memory's offset within a page (direct-write.ts).
        const paddingBytes = paddingBytesBefore(offsetBytes + NEEDLE_HEADER_SIZE_BYTES, direct.pageOffset);
        if (paddingBytes > 0) {
          const padding = encodePaddingNeedle(paddingBytes);
          parts.push({ bytes: padding.bytes, direct: false });
          groupCrc32 = crc32Combine(groupCrc32, padding.crc32, paddingBytes);
          offsetBytes += paddingBytes;
        }
      }
      assert(offsetBytes % 8 === 0, "needles start 8-aligned");
      records.push({ needleId: append.needleId, offsetBytes, dataSizeBytes: append.dataSizeBytes, flags: append.flags });
      for (const bytes of append.encoded) parts.push({ bytes, direct: bytes === direct?.data });
      groupCrc32 = crc32Combine(groupCrc32, append.encodedCrc32, append.encodedSizeBytes);
      offsetBytes += append.encodedSizeBytes;
    }
    assert(offsetBytes + SEAL_FOOTER_SIZE_BYTES <= this.volumeSizeBytes, "a group never passes the volume size limit");
    try {
      await this.writeGroup(parts, groupStartBytes);
      crashPoint("datanode.after-append-before-fsync");
      await this.fileHandle.datasync();
      this.stats.fsyncCount += 1;
      crashPoint("datanode.after-fsync-before-mapping");
    } catch (error) {
      await this.failAppends(group, error, groupStartBytes);
      return;
    }
    // The bytes are durable; the mapping rows and the new mapped-up-to offset commit together.
    // A crash before this commit is repaired by the recovery scan.
    let delta: NeedleCounts;
    try {
      delta = this.mapping.applyAppends(this.volumeId, records, {
        mappedUpToBytes: offsetBytes,
        fileCrc32UpTo: groupCrc32,
        state: "writable",
      });
    } catch (error) {
      // The needles are durable but unmapped; the next open's recovery scan maps them.
      for (const append of group) append.reject(error);
      throw error;
    }
    this.endOffsetBytes = offsetBytes;
    this.fileCrc32 = groupCrc32;
    this.addCounts(delta);
    this.stats.groupCommitCount += 1;
    this.stats.needleAppendCount += group.length;
    for (const append of group) append.resolve();
  }

  /** Whether large needles are written around the page cache, with padding needles to line them up. */
  private padsForDirectIo(): boolean {
    return this.directHandle !== undefined && !this.directWritesRefused && this.formatVersion >= VOLUME_FORMAT_VERSION_PADDING;
  }

  /**
   * A group's parts: large data around the page cache where the file allows it (direct-write.ts);
   * a small group written on the event loop itself. Why: a writev of a few KiB into the page cache
   * takes microseconds, while handing it to libuv's thread pool wakes a thread that, on a busy
   * machine, takes the loop's core, and the group then waits for a loop turn to hear back (a
   * --cpu-prof of 4 KiB PUTs had the loop off its core in those hand-offs for 30% of its wall
   * time). Alternated 4 KiB PUT runs, six pairs: 1,880-2,488 vs 1,669-2,318 ops/s, server CPU
   * 0.30-0.40 vs 0.33-0.46 ms per PUT. The fsync stays on the thread pool: it waits for the disk.
   */
  private async writeGroup(parts: GroupPart[], positionBytes: number): Promise<void> {
    const sizeBytes = parts.reduce((sum, part) => sum + part.bytes.length, 0);
    if (sizeBytes <= GROUP_INLINE_WRITE_BYTES_MAX && !parts.some((part) => part.direct)) {
      writeAllAtSync(this.fileHandle.fd, parts.map((part) => part.bytes), positionBytes);
      return;
    }
    // Parts are marked direct only while padsForDirectIo() holds (commitGroup, just before).
    if (this.directHandle !== undefined && parts.some((part) => part.direct)) {
      try {
        this.stats.directWriteBytes += await writeParts(this.fileHandle, this.directHandle, parts, positionBytes);
        return;
      } catch (error) {
        if (!(error instanceof DirectWriteRefused)) throw error;
        // Padding already placed stays: it is valid in the file whichever way it is written.
        log.warn({ volumeId: this.volumeId, reason: error.message }, "O_DIRECT write refused; this volume writes through the page cache");
        this.directWritesRefused = true;
      }
    }
    await writeAllAt(
      this.fileHandle,
      parts.map((part) => part.bytes),
      positionBytes,
    );
  }

  /**
   * Seal protocol, each step with what a crash there leaves:
   * 1. append the footer at the end: a crash before its fsync leaves a torn or complete footer
   *    that the recovery scan either cuts (torn) or accepts (complete, CRC matching the file);
   * 2. fsync: from here the footer is durable; the mapping still says writable;
   * 3. record state 'sealed' in the mapping: a crash before this commit is caught by the same
   *    scan, which finds the footer exactly at the mapped end and seals the volume.
   */
  private async seal(): Promise<void> {
    assert(this.state.kind === "writable", "only a writable volume is sealed");
    const footer: SealFooter = { volumeId: this.volumeId, dataEndOffsetBytes: this.endOffsetBytes, fileCrc32: this.fileCrc32 };
    try {
      await writeAllAt(this.fileHandle, [encodeSealFooter(footer)], this.endOffsetBytes);
      crashPoint("datanode.seal.after-footer");
      await this.fileHandle.datasync();
      this.stats.fsyncCount += 1;
      crashPoint("datanode.seal.after-footer-fsync");
    } catch (error) {
      const waiting = this.queue.splice(0);
      await this.failAppends(waiting, error, this.endOffsetBytes);
      return;
    }
    this.mapping.applyAppends(this.volumeId, [], {
      mappedUpToBytes: this.endOffsetBytes,
      fileCrc32UpTo: this.fileCrc32,
      state: "sealed",
    });
    this.state = { kind: "sealed", footer };
    await this.closeDirect();
    log.info({ volumeId: this.volumeId, sizeBytes: this.sizeBytes, requested: this.sealWaiters.length > 0 }, "volume sealed");
    this.settleSealWaiters(undefined);
  }

  /** The volume takes no more appends: answer seal requests (with the failure, if one ended it). */
  private settleSealWaiters(failure: unknown): void {
    this.sealAfterAppendsCount = undefined;
    for (const waiter of this.sealWaiters.splice(0)) {
      if (failure === undefined) waiter.resolve();
      else waiter.reject(failure);
    }
  }

  /** After a seal (or failure): data appends go elsewhere; tombstones go to the mapping. */
  private drainAfterWritable(): void {
    for (const append of this.queue.splice(0)) {
      if (append.flags & NEEDLE_FLAG_TOMBSTONE) {
        this.recordSealedTombstone(append.needleId).then(append.resolve, append.reject);
      } else {
        append.reject(new VolumeFull(this.volumeId));
      }
    }
  }

  /**
   * A failed write or fsync leaves the tail in an unknown state (after a failed fsync Linux may
   * drop the dirty pages and report success next time), so the volume takes no more appends.
   * We try to cut what this group wrote; recovery on the next open would cut it anyway.
   */
  private async failAppends(group: PendingAppend[], error: unknown, cutToBytes: number): Promise<void> {
    const code = (error as NodeJS.ErrnoException).code;
    log.error({ volumeId: this.volumeId, error, code }, "volume write failed; volume takes no more appends");
    this.state = { kind: "failed", reason: code ?? String(error) };
    const failure = code === "ENOSPC" ? new DiskFull(this.volumeId) : error;
    for (const append of group) append.reject(failure);
    this.settleSealWaiters(failure);
    try {
      await this.fileHandle.truncate(cutToBytes);
    } catch (truncateError) {
      // Ignored on purpose: the next open's recovery scan cuts the same torn tail.
      log.warn({ volumeId: this.volumeId, error: truncateError }, "could not cut a failed group's bytes");
    }
  }
}

/** The most padding one needle can get: almost a page, or a page and a minimal padding needle. */
const DIRECT_PADDING_BYTES_MAX = DIRECT_IO_ALIGNMENT_BYTES + PADDING_NEEDLE_SIZE_BYTES_MIN;

/**
 * Where in a page large `data` starts, when it may be written around the page cache: page-aligned
 * memory (a chunk buffer), and a page offset a needle's data can have in a file (needles start
 * 8-aligned, their data a header later).
 */
function directWritablePageOffset(data: Buffer): number | undefined {
  if (data.length < DIRECT_WRITE_BYTES_MIN) return undefined;
  const pageOffset = pageOffsetOf(data);
  if (pageOffset === undefined || (pageOffset - NEEDLE_HEADER_SIZE_BYTES) % NEEDLE_ALIGNMENT_BYTES !== 0) return undefined;
  return pageOffset;
}

/** Padding bytes that move data about to start at `dataOffsetBytes` to `pageOffset` within a page: 0, or a whole padding needle. */
function paddingBytesBefore(dataOffsetBytes: number, pageOffset: number): number {
  const gapBytes = (((pageOffset - dataOffsetBytes) % DIRECT_IO_ALIGNMENT_BYTES) + DIRECT_IO_ALIGNMENT_BYTES) % DIRECT_IO_ALIGNMENT_BYTES;
  if (gapBytes === 0) return 0;
  return gapBytes < PADDING_NEEDLE_SIZE_BYTES_MIN ? gapBytes + DIRECT_IO_ALIGNMENT_BYTES : gapBytes;
}

function addCounts(base: NeedleCounts, delta: NeedleCounts): NeedleCounts {
  return { needleCount: base.needleCount + delta.needleCount, deletedNeedleCount: base.deletedNeedleCount + delta.deletedNeedleCount };
}

interface ScanResult {
  records: MappingRecord[];
  endOffsetBytes: number;
  crc32: number;
  footer: SealFooter | undefined;
  stopReason: string;
}

/** Walks needles from `startOffsetBytes`, stopping at the first incomplete or invalid one. */
async function scanNeedles(input: {
  fileHandle: FileHandle;
  volumeId: VolumeId;
  fileSizeBytes: number;
  startOffsetBytes: number;
  startCrc32: number;
}): Promise<ScanResult> {
  const { fileHandle, volumeId, fileSizeBytes } = input;
  const records: MappingRecord[] = [];
  let offsetBytes = input.startOffsetBytes;
  let runningCrc32 = input.startCrc32;
  let stopReason = "end of file";
  while (offsetBytes < fileSizeBytes) {
    const headerBytes = await readAt(fileHandle, Math.min(NEEDLE_HEADER_SIZE_BYTES, fileSizeBytes - offsetBytes), offsetBytes);
    if (startsWithSealFooterMagic(headerBytes)) {
      const footerBytes = await readAt(fileHandle, SEAL_FOOTER_SIZE_BYTES, offsetBytes);
      const decoded = decodeSealFooter(footerBytes);
      if (
        decoded.kind === "footer" &&
        decoded.footer.volumeId === volumeId &&
        decoded.footer.dataEndOffsetBytes === offsetBytes &&
        offsetBytes + SEAL_FOOTER_SIZE_BYTES === fileSizeBytes &&
        decoded.footer.fileCrc32 === runningCrc32
      ) {
        return { records, endOffsetBytes: offsetBytes, crc32: runningCrc32, footer: decoded.footer, stopReason: "footer" };
      }
      stopReason = "invalid footer";
      break;
    }
    const header = decodeNeedleHeader(headerBytes);
    if (header.kind === "invalid") {
      stopReason = `needle header ${header.reason}`;
      break;
    }
    if (offsetBytes + header.encodedSizeBytes > fileSizeBytes) {
      stopReason = "needle short";
      break;
    }
    const encoded = await readAt(fileHandle, header.encodedSizeBytes, offsetBytes);
    const needle = decodeNeedle(encoded);
    if (needle.kind === "invalid") {
      stopReason = `needle ${needle.reason}`;
      break;
    }
    // Padding is checksummed with the file but never mapped.
    if ((needle.header.flags & NEEDLE_FLAG_PADDING) === 0) {
      records.push({
        needleId: needle.header.needleId,
        offsetBytes,
        dataSizeBytes: needle.header.dataSizeBytes,
        flags: needle.header.flags,
      });
    }
    runningCrc32 = crc32(encoded, runningCrc32);
    offsetBytes += encoded.length;
  }
  return { records, endOffsetBytes: offsetBytes, crc32: runningCrc32, footer: undefined, stopReason };
}

/** Reads up to `lengthBytes` at `positionBytes`; shorter only at end of file. */
async function readAt(fileHandle: FileHandle, lengthBytes: number, positionBytes: number): Promise<Buffer> {
  const buffer = Buffer.allocUnsafe(lengthBytes);
  let filledBytes = 0;
  while (filledBytes < lengthBytes) {
    const { bytesRead } = await fileHandle.read(buffer, filledBytes, lengthBytes - filledBytes, positionBytes + filledBytes);
    if (bytesRead === 0) break;
    filledBytes += bytesRead;
  }
  return filledBytes === lengthBytes ? buffer : buffer.subarray(0, filledBytes);
}

/** readAt for small reads (NEEDLE_READ_SYNC_SIZE_BYTES_MAX): one pread on the event loop. */
function readAtSync(fileHandle: FileHandle, lengthBytes: number, positionBytes: number): Buffer {
  const buffer = Buffer.allocUnsafe(lengthBytes);
  let filledBytes = 0;
  while (filledBytes < lengthBytes) {
    const bytesRead = readSync(fileHandle.fd, buffer, filledBytes, lengthBytes - filledBytes, positionBytes + filledBytes);
    if (bytesRead === 0) break;
    filledBytes += bytesRead;
  }
  return filledBytes === lengthBytes ? buffer : buffer.subarray(0, filledBytes);
}

