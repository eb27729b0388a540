/**
 * Compaction: gives back the space of deleted needles in sealed volumes. A sealed volume whose
 * garbage ratio (bytes a rewrite would drop / file size) reaches a threshold is rewritten into
 * `<id>.vol.compact` with only its live needles plus one data-less tombstone needle per deleted
 * needle, sealed with a new footer, and swapped in for the old file.
 *
 * Tombstones are kept on purpose: a tombstone may only be dropped once every replica holds it,
 * or a replica that missed the delete (or repair copying from one) brings the needle back. They
 * cost 32 bytes each, and writing them into the file makes a sealed volume's tombstones survive
 * even the loss of the mapping database.
 *
 * Protocol, with what a crash at each step leaves and how DataNode.open recovers
 * (settleCompactionLeftover below runs before any volume file is opened):
 *   1. write `<id>.vol.compact` (superblock, needles, footer) and fsync it. The mapping still
 *      describes `<id>.vol`. Crash: the leftover's footer does not match the mapping's volume
 *      row (or is torn), so it is deleted; the old volume is untouched.
 *   2. switch the mapping in one transaction committed with synchronous=FULL: every needle row
 *      takes its offset in the new file, the volume row takes the new file's end and checksum.
 *      In memory the new Volume replaces the old one in the same synchronous step, so a read
 *      looks up (volume, row) pairs that always belong together. Crash: the leftover's footer
 *      matches the volume row, so it is renamed over `<id>.vol`, completing the swap.
 *   3. rename `<id>.vol.compact` over `<id>.vol` and fsync the directory. Crash: nothing to do.
 *   4. close the old Volume once the reads running on it finish: only then is the old file's
 *      inode (already unlinked by the rename) freed, so no read ever loses its file.
 */
import { SerialPasses } from "./serial-passes.js";
import { open, rename, rm, type FileHandle } from "node:fs/promises";
import { dirname } from "node:path";
import {
  assert,
  crc32,
  HOUR_MS,
  log,
  MEBIBYTE,
  MINUTE_MS,
  type Clock,
  type NeedleId,
  type VolumeId,
} from "../base/index.js";
import { crashPoint } from "./crash-point.js";
import {
  decodeNeedle,
  decodeSealFooter,
  encodeNeedle,
  encodeSealFooter,
  encodeSuperblock,
  NEEDLE_FLAG_TOMBSTONE,
  needleEncodedSizeBytes,
  SEAL_FOOTER_SIZE_BYTES,
  SUPERBLOCK_SIZE_BYTES,
} from "./needle-codec.js";
import type { MappingRecord, NeedleCounts, ObjectMapping, VolumeRow } from "./object-mapping.js";
import { RateLimiter } from "./rate-limiter.js";
import type { Volume } from "./volume.js";

/** A sealed volume is compacted once this share of its file would be given back. */
export const COMPACTION_GARBAGE_RATIO_MIN_DEFAULT = 0.3;
/** Bytes per second compaction reads (and as many writes): about a tenth of a slow disk. */
export const COMPACTION_RATE_BYTES_PER_SECOND_DEFAULT = 32 * MEBIBYTE;
/** How often the background compactor looks for volumes to compact. */
export const COMPACTION_INTERVAL_MS_DEFAULT = HOUR_MS;
/**
 * The first look comes this soon after start (or after one interval, if shorter), so a node
 * restarted more often than the interval still compacts.
 */
export const COMPACTION_FIRST_PASS_DELAY_MS = 2 * MINUTE_MS;
/** Mapping rows read (and relocations staged) per step: bounds compaction's memory. */
export const COMPACTION_ROWS_PAGE_COUNT_MAX = 1024;
/** Needles gathered into one write of the new file. */
export const COMPACTION_WRITE_BATCH_BYTES_MAX = 4 * MEBIBYTE;
/** Suffix of a volume's file while it is being compacted; never matches a volume file name. */
export const COMPACTION_FILE_SUFFIX = ".compact";

export interface VolumeGarbage {
  volumeId: VolumeId;
  sizeBytes: number;
  /** Size of the file a compaction would write now. */
  compactedSizeBytes: number;
  /** sizeBytes - compactedSizeBytes, at least 0. */
  reclaimableBytes: number;
  /** reclaimableBytes / sizeBytes. */
  garbageRatio: number;
}

export type CompactionResult =
  | { volumeId: VolumeId; outcome: "compacted"; sizeBytesBefore: number; sizeBytesAfter: number; garbageRatio: number }
  | { volumeId: VolumeId; outcome: "skipped" | "aborted"; reason: string; garbageRatio?: number };

/** What compaction needs from the DataNode that owns the volume. */
export interface CompactionHost {
  readonly mapping: ObjectMapping;
  readonly clock: Clock;
  isClosed(): boolean;
  /** True while `volume` is the one the node serves for its id. */
  isCurrent(volume: Volume): boolean;
  /** Opens the new file (at `openPath`) as a sealed Volume that will live at `volume.path`. */
  openCompacted(input: { volume: Volume; openPath: string; row: VolumeRow }): Promise<Volume>;
  /** Serves `next` instead of the volume of the same id; synchronous. */
  replaceVolume(next: Volume): void;
}

export function compactionPathOf(volumePath: string): string {
  return `${volumePath}${COMPACTION_FILE_SUFFIX}`;
}

export function garbageOf(mapping: ObjectMapping, volume: Volume): VolumeGarbage {
  const { liveEncodedBytes, tombstoneCount } = mapping.compactedContentOf(volume.volumeId);
  const compactedSizeBytes =
    SUPERBLOCK_SIZE_BYTES + liveEncodedBytes + tombstoneCount * needleEncodedSizeBytes({ dataSizeBytes: 0 }) + SEAL_FOOTER_SIZE_BYTES;
  const sizeBytes = volume.sizeBytes;
  const reclaimableBytes = Math.max(0, sizeBytes - compactedSizeBytes);
  return { volumeId: volume.volumeId, sizeBytes, compactedSizeBytes, reclaimableBytes, garbageRatio: sizeBytes > 0 ? reclaimableBytes / sizeBytes : 0 };
}

/** A compaction that must stop; the old volume stays in service untouched. */
class CompactionAborted extends Error {
  override name = "CompactionAborted";
}

/**
 * Runs the protocol above on one sealed volume. The caller runs one compaction at a time per
 * node (DataNode.compactVolume), so no two rewrite the same volume.
 */
export async function compactSealedVolume(input: {
  host: CompactionHost;
  volume: Volume;
  garbageRatioMin: number;
  rateBytesPerSecond: number;
  /** Rewrite even below the threshold: heals a file whose bytes between live needles rotted. */
  force?: boolean;
  signal?: AbortSignal;
}): Promise<CompactionResult> {
  const { host, volume } = input;
  const volumeId = volume.volumeId;
  const footer = volume.sealFooter;
  if (footer === undefined) return { volumeId, outcome: "skipped", reason: `volume is ${volume.stateKind}` };
  const garbage = garbageOf(host.mapping, volume);
  if (input.force !== true && (garbage.garbageRatio < input.garbageRatioMin || garbage.reclaimableBytes === 0)) {
    return { volumeId, outcome: "skipped", reason: "garbage ratio below the threshold", garbageRatio: garbage.garbageRatio };
  }
  const compactPath = compactionPathOf(volume.path);
  const limiter = new RateLimiter(input.rateBytesPerSecond, host.clock, input.signal);
  host.mapping.clearRelocations(volumeId);
  let written: { dataEndOffsetBytes: number; fileCrc32: number };
  try {
    written = await writeCompactedFile({ host, volume, compactPath, limiter });
  } catch (error) {
    host.mapping.clearRelocations(volumeId);
    await rm(compactPath, { force: true });
    if (error instanceof CompactionAborted || input.signal?.aborted) {
      const reason = error instanceof Error ? error.message : String(error);
      log.warn({ volumeId, reason }, "compaction aborted; the volume stays as it was");
      return { volumeId, outcome: "aborted", reason, garbageRatio: garbage.garbageRatio };
    }
    throw error;
  }
  crashPoint("datanode.compaction.after-new-file-fsync");

  // Step 2: open the new file, then switch mapping and memory in one synchronous step.
  const row: VolumeRow = { volumeId, state: "sealed", mappedUpToBytes: written.dataEndOffsetBytes, fileCrc32UpTo: written.fileCrc32 };
  let next: Volume;
  try {
    next = await host.openCompacted({ volume, openPath: compactPath, row });
  } catch (error) {
    host.mapping.clearRelocations(volumeId);
    await rm(compactPath, { force: true });
    throw error;
  }
  const nextFooter = next.sealFooter;
  assert(nextFooter !== undefined && nextFooter.dataEndOffsetBytes === row.mappedUpToBytes, "the new file opens sealed where it was written to end");
  assert(nextFooter.fileCrc32 >>> 0 === row.fileCrc32UpTo, "the mapping will record the new footer's checksum (recovery compares them)");
  if (host.isClosed() || !host.isCurrent(volume)) {
    await next.close();
    host.mapping.clearRelocations(volumeId);
    await rm(compactPath, { force: true });
    return { volumeId, outcome: "aborted", reason: "data node closing", garbageRatio: garbage.garbageRatio };
  }
  let counts: NeedleCounts;
  try {
    counts = host.mapping.switchToCompacted(volumeId, { mappedUpToBytes: row.mappedUpToBytes, fileCrc32UpTo: row.fileCrc32UpTo });
  } catch (error) {
    // Rolled back: the mapping still describes the old file, which stays in service.
    await next.close();
    await rm(compactPath, { force: true });
    throw error;
  }
  next.setCounts(counts);
  host.replaceVolume(next);
  crashPoint("datanode.compaction.after-mapping-switch");

  // Step 3: the new file takes the volume's name; the old name's inode lives on while open.
  await rename(compactPath, volume.path);
  await syncDirectory(dirname(volume.path));
  crashPoint("datanode.compaction.after-rename");

  // Step 4: reads that looked up the old (volume, row) pair finish on the old descriptor.
  await volume.close();
  log.info(
    { volumeId, sizeBytesBefore: garbage.sizeBytes, sizeBytesAfter: next.sizeBytes, garbageRatio: garbage.garbageRatio },
    "volume compacted",
  );
  return { volumeId, outcome: "compacted", sizeBytesBefore: garbage.sizeBytes, sizeBytesAfter: next.sizeBytes, garbageRatio: garbage.garbageRatio };
}

/**
 * The new file as it is written: needles are gathered into batches of up to
 * COMPACTION_WRITE_BATCH_BYTES_MAX, each written at its offset and paced by the limiter, and the
 * relocations of the batch's needles are staged in the mapping as it goes.
 */
class CompactedFileWriter {
  /** Bytes appended so far: the offset of the next needle. */
  offsetBytes = 0;
  /** CRC32 of every byte appended so far. */
  fileCrc32 = 0;
  private batch: Buffer[] = [];
  private batchBytes = 0;
  private relocations: MappingRecord[] = [];

  constructor(
    private readonly file: FileHandle,
    private readonly volumeId: VolumeId,
    private readonly mapping: ObjectMapping,
    private readonly limiter: RateLimiter,
  ) {}

  /** Appends encoded bytes; `relocatedNeedle` is the needle they hold, if any. */
  async append(encoded: Buffer, relocatedNeedle?: Omit<MappingRecord, "offsetBytes">): Promise<void> {
    if (relocatedNeedle !== undefined) this.relocations.push({ ...relocatedNeedle, offsetBytes: this.offsetBytes });
    this.batch.push(encoded);
    this.batchBytes += encoded.length;
    this.fileCrc32 = crc32(encoded, this.fileCrc32);
    this.offsetBytes += encoded.length;
    if (this.batchBytes >= COMPACTION_WRITE_BATCH_BYTES_MAX || this.relocations.length >= COMPACTION_ROWS_PAGE_COUNT_MAX) await this.flush();
  }

  async flush(): Promise<void> {
    let positionBytes = this.offsetBytes - this.batchBytes;
    for (const buffer of this.batch) {
      for (let doneBytes = 0; doneBytes < buffer.length; ) {
        const { bytesWritten } = await this.file.write(buffer, doneBytes, buffer.length - doneBytes, positionBytes + doneBytes);
        assert(bytesWritten > 0, "write makes progress");
        doneBytes += bytesWritten;
      }
      positionBytes += buffer.length;
    }
    if (this.batchBytes > 0) await this.limiter.consume(this.batchBytes);
    if (this.relocations.length > 0) this.mapping.stageRelocations(this.volumeId, this.relocations);
    this.batch = [];
    this.batchBytes = 0;
    this.relocations = [];
  }
}

/**
 * Step 1: the new file. Live needles are copied only after their checksum verifies (a rewrite
 * must never turn rot into a needle with a fresh, valid footer checksum over it); a needle that
 * fails aborts the compaction, leaving the damage where the scrubber and reads report it.
 */
async function writeCompactedFile(input: {
  host: CompactionHost;
  volume: Volume;
  compactPath: string;
  limiter: RateLimiter;
}): Promise<{ dataEndOffsetBytes: number; fileCrc32: number }> {
  const { host, volume, compactPath } = input;
  const volumeId = volume.volumeId;
  const file = await open(compactPath, "w");
  try {
    const writer = new CompactedFileWriter(file, volumeId, host.mapping, input.limiter);
    await writer.append(encodeSuperblock(volumeId));
    await copyNeedles({ host, volume, writer, limiter: input.limiter });
    // Tombstones that lived only in the mapping (deletes of a sealed volume's unknown needles).
    let afterNeedleId: NeedleId | undefined;
    for (;;) {
      checkStillWanted(host, volume);
      const page = host.mapping.tombstonesWithoutNeedle(volumeId, afterNeedleId, COMPACTION_ROWS_PAGE_COUNT_MAX);
      if (page.length === 0) break;
      for (const needleId of page) await writer.append(encodeTombstone(needleId), { needleId, dataSizeBytes: 0, flags: NEEDLE_FLAG_TOMBSTONE });
      afterNeedleId = page[page.length - 1];
    }
    const sealed = { dataEndOffsetBytes: writer.offsetBytes, fileCrc32: writer.fileCrc32 >>> 0 };
    await writer.append(encodeSealFooter({ volumeId, ...sealed }));
    await writer.flush();
    crashPoint("datanode.compaction.after-new-file-written");
    await file.sync();
    // The new name must be durable before the mapping switch commits: after a power cut the
    // mapping would otherwise describe a file recovery cannot find.
    await syncDirectory(dirname(compactPath));
    return sealed;
  } finally {
    await file.close();
  }
}

/** The needles with a place in the old file, in file order: live ones copied, dead ones as tombstones. */
async function copyNeedles(input: { host: CompactionHost; volume: Volume; writer: CompactedFileWriter; limiter: RateLimiter }): Promise<void> {
  const { host, volume, writer } = input;
  let afterOffsetBytes = -1;
  for (;;) {
    checkStillWanted(host, volume);
    // Fetched in the same turn as the check, so these rows describe `volume`'s file.
    const page = host.mapping.needlesInFileOrder(volume.volumeId, afterOffsetBytes, COMPACTION_ROWS_PAGE_COUNT_MAX);
    if (page.length === 0) return;
    for (const row of page) {
      if (row.flags & NEEDLE_FLAG_TOMBSTONE) {
        await writer.append(encodeTombstone(row.needleId), { needleId: row.needleId, dataSizeBytes: 0, flags: NEEDLE_FLAG_TOMBSTONE });
        continue;
      }
      const encoded = await volume.readBytes(row.offsetBytes, needleEncodedSizeBytes(row));
      await input.limiter.consume(encoded.length);
      const decoded = decodeNeedle(encoded);
      if (
        decoded.kind !== "needle" ||
        decoded.header.needleId !== row.needleId ||
        decoded.header.dataSizeBytes !== row.dataSizeBytes ||
        (decoded.header.flags & NEEDLE_FLAG_TOMBSTONE) !== 0
      ) {
        throw new CompactionAborted(`needle ${row.needleId} at ${row.offsetBytes} failed verification`);
      }
      await writer.append(encoded, { needleId: row.needleId, dataSizeBytes: row.dataSizeBytes, flags: row.flags });
    }
    afterOffsetBytes = page[page.length - 1]!.offsetBytes;
  }
}

function checkStillWanted(host: CompactionHost, volume: Volume): void {
  if (host.isClosed()) throw new CompactionAborted("data node closing");
  if (!host.isCurrent(volume)) throw new CompactionAborted("volume replaced while compacting");
}

function encodeTombstone(needleId: NeedleId): Buffer {
  const header = { needleId, flags: NEEDLE_FLAG_TOMBSTONE, dataSizeBytes: 0 };
  const encoded = Buffer.alloc(needleEncodedSizeBytes(header));
  encodeNeedle({ header, data: Buffer.alloc(0) }, encoded);
  return encoded;
}

async function syncDirectory(directory: string): Promise<void> {
  const handle = await open(directory, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Startup recovery for a `<id>.vol.compact` left by a crash (see the protocol above): it is the
 * volume if and only if the mapping's volume row already describes it (its footer's end and
 * checksum), and then it is renamed into place; otherwise it is deleted.
 */
export async function settleCompactionLeftover(input: {
  volumeId: VolumeId;
  compactPath: string;
  volumePath: string;
  row: VolumeRow | undefined;
}): Promise<"finished" | "discarded"> {
  const { volumeId, compactPath, volumePath, row } = input;
  let matches = false;
  const handle = await open(compactPath, "r");
  try {
    const sizeBytes = (await handle.stat()).size;
    if (sizeBytes >= SUPERBLOCK_SIZE_BYTES + SEAL_FOOTER_SIZE_BYTES) {
      const footerBytes = Buffer.alloc(SEAL_FOOTER_SIZE_BYTES);
      await handle.read(footerBytes, 0, SEAL_FOOTER_SIZE_BYTES, sizeBytes - SEAL_FOOTER_SIZE_BYTES);
      const decoded = decodeSealFooter(footerBytes);
      matches =
        decoded.kind === "footer" &&
        decoded.footer.volumeId === volumeId &&
        decoded.footer.dataEndOffsetBytes === sizeBytes - SEAL_FOOTER_SIZE_BYTES &&
        row !== undefined &&
        row.state === "sealed" &&
        row.mappedUpToBytes === decoded.footer.dataEndOffsetBytes &&
        row.fileCrc32UpTo >>> 0 === decoded.footer.fileCrc32 >>> 0;
    }
  } finally {
    await handle.close();
  }
  if (!matches) {
    // The switch never committed: the old file is the volume and this one was never used.
    await rm(compactPath, { force: true });
    log.warn({ volumeId, compactPath }, "deleted an unfinished compaction's file");
    return "discarded";
  }
  // The switch committed (step 2) but the rename (step 3) did not happen: finish it.
  await rename(compactPath, volumePath);
  await syncDirectory(dirname(volumePath));
  log.warn({ volumeId, volumePath }, "finished a compaction interrupted after its mapping switch");
  return "finished";
}

/** Background compaction: every interval, the sealed volumes past the threshold, one at a time. */
export interface CompactorOptions {
  garbageRatioMin?: number;
  rateBytesPerSecond?: number;
  intervalMs?: number;
}

/** The part of DataNode the compactor drives. */
export interface CompactionTarget {
  sealedVolumeGarbage(): VolumeGarbage[];
  compactVolume(volumeId: VolumeId, options: { garbageRatioMin: number; rateBytesPerSecond: number; force?: boolean; signal?: AbortSignal }): Promise<CompactionResult>;
}

export class Compactor {
  readonly garbageRatioMin: number;
  readonly rateBytesPerSecond: number;
  private readonly intervalMs: number;
  private readonly abort = new AbortController();
  private timer: NodeJS.Timeout | undefined;
  private readonly passes = new SerialPasses<CompactionResult[]>();
  private stopped = false;
  /** Reclaimed bytes since start, for logs and tests. */
  reclaimedBytes = 0;

  constructor(
    private readonly target: CompactionTarget,
    options: CompactorOptions = {},
  ) {
    this.garbageRatioMin = options.garbageRatioMin ?? COMPACTION_GARBAGE_RATIO_MIN_DEFAULT;
    this.rateBytesPerSecond = options.rateBytesPerSecond ?? COMPACTION_RATE_BYTES_PER_SECOND_DEFAULT;
    this.intervalMs = options.intervalMs ?? COMPACTION_INTERVAL_MS_DEFAULT;
    assert(this.garbageRatioMin > 0 && this.garbageRatioMin <= 1, "the garbage ratio threshold is in (0, 1]");
  }

  start(): void {
    if (this.stopped || this.timer !== undefined) return;
    const loop = async (): Promise<void> => {
      try {
        await this.runOnce();
      } catch (error) {
        log.warn({ error }, "compaction pass failed");
      }
      if (!this.stopped) this.timer = setTimeout(() => void loop(), this.intervalMs);
    };
    this.timer = setTimeout(() => void loop(), Math.min(this.intervalMs, COMPACTION_FIRST_PASS_DELAY_MS));
  }

  /**
   * One pass: compacts every sealed volume at or past the threshold (or only `volumeId`), the one
   * that gives back most first. Passes never overlap.
   */
  runOnce(options: { volumeId?: VolumeId; garbageRatioMin?: number } = {}): Promise<CompactionResult[]> {
    return this.passes.run(() => this.pass(options));
  }

  private async pass(options: { volumeId?: VolumeId; garbageRatioMin?: number }): Promise<CompactionResult[]> {
    const garbageRatioMin = options.garbageRatioMin ?? this.garbageRatioMin;
    const candidates = this.target
      .sealedVolumeGarbage()
      .filter((garbage) => (options.volumeId === undefined || garbage.volumeId === options.volumeId) && garbage.reclaimableBytes > 0)
      .sort((a, b) => b.reclaimableBytes - a.reclaimableBytes);
    const results: CompactionResult[] = [];
    for (const candidate of candidates) {
      if (this.stopped) break;
      if (candidate.garbageRatio < garbageRatioMin) continue;
      let result: CompactionResult;
      try {
        result = await this.target.compactVolume(candidate.volumeId, {
          garbageRatioMin,
          rateBytesPerSecond: this.rateBytesPerSecond,
          signal: this.abort.signal,
        });
      } catch (error) {
        // One volume's failure (a full disk for the new file, an IO error) must not stop the
        // others; the volume stays as it was and the next pass tries again.
        log.warn({ error, volumeId: candidate.volumeId }, "compaction of a volume failed");
        result = { volumeId: candidate.volumeId, outcome: "aborted", reason: String(error), garbageRatio: candidate.garbageRatio };
      }
      if (result.outcome === "compacted") this.reclaimedBytes += result.sizeBytesBefore - result.sizeBytesAfter;
      results.push(result);
    }
    return results;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.abort.abort();
    await this.passes.settled();
  }
}
