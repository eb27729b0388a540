/**
 * The data node's storage engine: volumes spread over disks, one object mapping per node, and
 * the NeedleStore surface the data path calls (in-process in `cairn server`, over RPC in a
 * cluster).
 *
 * On disk:
 *   <disk>/volumes/<volumeId>.vol   one file per volume (layout in needle-codec.ts)
 *   <disk>/volumes/<volumeId>.vol.compact   a compaction's new file until it is renamed into place
 *   <firstDisk>/mapping.sqlite      object_mapping and per-volume progress (object-mapping.ts)
 *   <firstDisk>/mapping.sqlite.lock held locked while the node runs: one data node per disk
 *
 * Tombstones: a writable volume gets a tombstone needle appended (fsynced) and the mapping flag
 * set; a sealed volume is never appended to again, so its tombstones are kept only in the
 * mapping, committed with synchronous=FULL. Losing the mapping database wholesale therefore
 * loses the sealed-volume tombstones recorded since the volume's last compaction (needles and
 * writable-volume tombstones are rebuilt from the files); compaction rewrites a sealed volume
 * without its dead needles but with a tombstone needle for each, which makes those deletes
 * permanent in the file.
 */
import { mkdir, open, readdir, rename, rm, statfs } from "node:fs/promises";
import { join } from "node:path";
import {
  assert,
  crc32,
  GROUP_COMMIT_WRITES_COUNT_MAX,
  isNeedleId,
  log,
  NEEDLE_DATA_SIZE_BYTES_MAX,
  systemClock,
  type Clock,
  VOLUME_SIZE_BYTES_DEFAULT,
  VOLUME_SIZE_BYTES_MIN,
  type NeedleId,
  type NodeId,
  type VolumeId,
} from "../base/index.js";
import {
  ChecksumMismatch,
  NeedleNotFound,
  VolumeFull,
  VolumeNotFound,
  type ListNeedlesInput,
  type NeedleListEntry,
  type ReadNeedleInput,
  type RepairNeedleStore,
  type RewriteNeedleOutcome,
  type VolumeStatus,
  type WriteNeedleInput,
} from "../cluster/index.js";
import {
  COMPACTION_GARBAGE_RATIO_MIN_DEFAULT,
  COMPACTION_RATE_BYTES_PER_SECOND_DEFAULT,
  compactSealedVolume,
  garbageOf,
  settleCompactionLeftover,
  type CompactionHost,
  type CompactionResult,
  type CompactionTarget,
  type VolumeGarbage,
} from "./compaction.js";
import { crashPoint } from "./crash-point.js";
import { directWritesAllowedIn } from "./direct-write.js";
import {
  encodeSuperblock,
  NEEDLE_ENCODED_SIZE_BYTES_MAX,
  NEEDLE_FLAG_TOMBSTONE,
  SEAL_FOOTER_SIZE_BYTES,
  SUPERBLOCK_SIZE_BYTES,
} from "./needle-codec.js";
import { ObjectMapping, OFFSET_NONE, type MappingRecord, type NeedleCounts, type VolumeRow } from "./object-mapping.js";
import { Volume, type DataNodeStats, type SealedVolumeVerification } from "./volume.js";

export type { DataNodeStats, SealedVolumeVerification } from "./volume.js";

export interface DataNodeOptions {
  nodeId: NodeId;
  /** One directory per disk; the mapping database lives on the first. */
  diskDirectories: string[];
  /** A volume is sealed when the next append would pass this size. Default VOLUME_SIZE_BYTES_DEFAULT. */
  volumeSizeBytes?: number;
  /**
   * Test-only: accept a volumeSizeBytes below VOLUME_SIZE_BYTES_MIN (8 MiB) so tests can fill
   * and seal volumes with a few small needles. Such a volume cannot hold a full 4 MiB chunk.
   */
  allowVolumeSizeBelowMinimumForTests?: boolean;
  /**
   * Write large needles' data around the page cache with O_DIRECT where the disk allows it
   * (direct-write.ts): about a fifth less CPU per large PUT, but the first reads of those
   * objects then come from the disk. Default false here; `cairn server` and `cairn datanode`
   * turn it on unless started with --direct-io=false.
   */
  directIo?: boolean;
}

/** Payloads larger than NEEDLE_DATA_SIZE_BYTES_MAX are refused (the data path cuts chunks). */
export class NeedleTooLarge extends Error {
  override name = "NeedleTooLarge";
  constructor(readonly volumeId: VolumeId, readonly needleId: NeedleId, readonly dataSizeBytes: number) {
    super(`needle ${needleId} for volume ${volumeId} has ${dataSizeBytes} bytes, over the limit`);
  }
}

/** A read range outside the needle's payload. */
export class NeedleRangeInvalid extends Error {
  override name = "NeedleRangeInvalid";
  constructor(readonly volumeId: VolumeId, readonly needleId: NeedleId, readonly offsetBytes: number, readonly lengthBytes: number) {
    super(`range ${offsetBytes}+${lengthBytes} is outside needle ${needleId} in volume ${volumeId}`);
  }
}

const MAPPING_FILE_NAME = "mapping.sqlite";
const VOLUMES_DIRECTORY_NAME = "volumes";
const VOLUME_FILE_PATTERN = /^([1-9][0-9]*)\.vol$/;
const COMPACTION_FILE_PATTERN = /^([1-9][0-9]*)\.vol\.compact$/;
/** Smallest volume even tests may ask for: superblock, one tombstone, footer. */
const VOLUME_SIZE_BYTES_FLOOR_FOR_TESTS = SUPERBLOCK_SIZE_BYTES + 64 + SEAL_FOOTER_SIZE_BYTES;

interface PendingSealedTombstone {
  volumeId: VolumeId;
  needleId: NeedleId;
  resolve: () => void;
  reject: (error: unknown) => void;
}

/** A sealed volume as the scrubber reads it: its file, and its mapping rows in file order. */
export interface VolumeScrubAccess {
  readonly volumeId: VolumeId;
  readonly stateKind: Volume["stateKind"];
  readonly sealFooter: Volume["sealFooter"];
  readBytes(positionBytes: number, lengthBytes: number): Promise<Buffer>;
  /**
   * The next rows after `afterOffsetBytes`, or undefined once compaction has replaced the
   * volume (the rows would describe another file).
   */
  needlesInFileOrder(afterOffsetBytes: number, countMax: number): MappingRecord[] | undefined;
}

export class DataNode implements RepairNeedleStore, CompactionTarget {
  readonly nodeId: NodeId;
  private readonly diskDirectories: readonly string[];
  private readonly volumeSizeBytes: number;
  private readonly directIo: boolean;
  private readonly mapping: ObjectMapping;
  private readonly volumes = new Map<VolumeId, Volume>();
  private readonly volumesBeingCreated = new Map<VolumeId, Promise<void>>();
  /** Volume ids whose file exists but could not be opened; never re-created over. */
  private readonly unusableVolumeIds = new Set<VolumeId>();
  private readonly statistics: DataNodeStats = { fsyncCount: 0, groupCommitCount: 0, needleAppendCount: 0, directWriteBytes: 0, directReadBytes: 0 };
  private pendingSealedTombstones: PendingSealedTombstone[] = [];
  /** Set and cleared synchronously (see Volume.flushRunning). */
  private sealedTombstoneFlushRunning = false;
  private sealedTombstoneFlushDone: Promise<void> = Promise.resolve();
  private closed = false;
  private readonly clock: Clock = systemClock;
  /** The compaction running now: one at a time per node bounds the extra disk space and IO. */
  private compactionRunning: Promise<CompactionResult> | undefined;

  private constructor(options: { nodeId: NodeId; diskDirectories: string[]; volumeSizeBytes: number; directIo: boolean; mapping: ObjectMapping }) {
    this.nodeId = options.nodeId;
    this.diskDirectories = options.diskDirectories;
    this.volumeSizeBytes = options.volumeSizeBytes;
    this.directIo = options.directIo;
    this.mapping = options.mapping;
  }

  static async open(options: DataNodeOptions): Promise<DataNode> {
    const volumeSizeBytes = options.volumeSizeBytes ?? VOLUME_SIZE_BYTES_DEFAULT;
    const volumeSizeBytesMin = options.allowVolumeSizeBelowMinimumForTests ? VOLUME_SIZE_BYTES_FLOOR_FOR_TESTS : VOLUME_SIZE_BYTES_MIN;
    if (!Number.isSafeInteger(volumeSizeBytes) || volumeSizeBytes < volumeSizeBytesMin) {
      throw new RangeError(`volumeSizeBytes must be an integer >= ${volumeSizeBytesMin}, got ${volumeSizeBytes}`);
    }
    const firstDisk = options.diskDirectories[0];
    if (firstDisk === undefined) throw new RangeError("a data node needs at least one disk directory");
    if (new Set(options.diskDirectories).size !== options.diskDirectories.length) {
      throw new RangeError("disk directories must be distinct");
    }
    for (const disk of options.diskDirectories) await mkdir(join(disk, VOLUMES_DIRECTORY_NAME), { recursive: true });
    if (options.directIo === true) {
      for (const disk of options.diskDirectories) {
        // Direct I/O is the roles' default, so a disk without it (tmpfs) is no cause for alarm.
        if (!(await directWritesAllowedIn(join(disk, VOLUMES_DIRECTORY_NAME)))) log.info({ disk }, "this disk refuses O_DIRECT; its volumes write large chunks through the page cache");
      }
    }
    const mapping = ObjectMapping.open(join(firstDisk, MAPPING_FILE_NAME));
    const node = new DataNode({ nodeId: options.nodeId, diskDirectories: [...options.diskDirectories], volumeSizeBytes, directIo: options.directIo ?? false, mapping });
    try {
      await node.openVolumes();
    } catch (error) {
      await node.close();
      throw error;
    }
    return node;
  }

  /** Finds every volume file on every disk and recovers it against the mapping. */
  private async openVolumes(): Promise<void> {
    const rows = new Map(this.mapping.loadVolumes().map((row) => [row.volumeId, row]));
    const counts = this.mapping.countNeedles();
    for (const disk of this.diskDirectories) {
      const directory = join(disk, VOLUMES_DIRECTORY_NAME);
      // Compactions a crash interrupted are finished or undone before any volume file is read.
      for (const name of await readdir(directory)) {
        const match = COMPACTION_FILE_PATTERN.exec(name);
        if (match?.[1] === undefined) continue;
        const volumeId = Number(match[1]) as VolumeId;
        await settleCompactionLeftover({
          volumeId,
          compactPath: join(directory, name),
          volumePath: join(directory, `${volumeId}.vol`),
          row: rows.get(volumeId),
        });
      }
      for (const name of await readdir(directory)) {
        if (name.endsWith(".tmp")) {
          // A createVolume that crashed before its rename; it was never acknowledged.
          await rm(join(directory, name), { force: true });
          continue;
        }
        const match = VOLUME_FILE_PATTERN.exec(name);
        if (match?.[1] === undefined) continue;
        const volumeId = Number(match[1]) as VolumeId;
        const path = join(directory, name);
        if (this.volumes.has(volumeId) || this.unusableVolumeIds.has(volumeId)) {
          log.error({ volumeId, path }, "volume file found on more than one disk; ignoring this copy");
          this.unusableVolumeIds.add(volumeId);
          continue;
        }
        try {
          const volume = await this.openVolume({ volumeId, path, diskDirectory: disk, row: rows.get(volumeId), counts: counts.get(volumeId) });
          this.volumes.set(volumeId, volume);
        } catch (error) {
          log.error({ volumeId, path, error }, "volume file could not be opened; not serving it");
          this.unusableVolumeIds.add(volumeId);
        }
      }
    }
    for (const volumeId of rows.keys()) {
      if (!this.volumes.has(volumeId) && !this.unusableVolumeIds.has(volumeId)) {
        log.error({ volumeId }, "volume is in the mapping but its file is missing");
      }
    }
  }

  private openVolume(input: {
    volumeId: VolumeId;
    path: string;
    openPath?: string;
    diskDirectory: string;
    row: VolumeRow | undefined;
    counts: NeedleCounts | undefined;
  }): Promise<Volume> {
    return Volume.open({
      volumeId: input.volumeId,
      path: input.path,
      ...(input.openPath === undefined ? {} : { openPath: input.openPath }),
      diskDirectory: input.diskDirectory,
      row: input.row,
      mapping: this.mapping,
      counts: input.counts ?? { needleCount: 0, deletedNeedleCount: 0 },
      volumeSizeBytes: this.volumeSizeBytes,
      directIo: this.directIo,
      stats: this.statistics,
      recordSealedTombstone: (needleId) => this.recordSealedTombstone(input.volumeId, needleId),
    });
  }

  async createVolume(volumeId: VolumeId): Promise<void> {
    assert(!this.closed, "data node is open");
    assert(Number.isSafeInteger(volumeId) && volumeId > 0, "volume id is a positive integer");
    if (this.volumes.has(volumeId)) return;
    if (this.unusableVolumeIds.has(volumeId)) {
      throw new Error(`volume ${volumeId} has a file on disk that could not be opened; not creating it over`);
    }
    const pending = this.volumesBeingCreated.get(volumeId);
    if (pending !== undefined) return pending;
    const creation = this.createVolumeFile(volumeId).finally(() => this.volumesBeingCreated.delete(volumeId));
    this.volumesBeingCreated.set(volumeId, creation);
    return creation;
  }

  /**
   * Create protocol: write the superblock to `<id>.vol.tmp`, fsync it, rename it into place,
   * fsync the directory, then add the mapping row. A crash before the rename leaves a .tmp file
   * that open() deletes; a crash after it leaves a valid empty volume that open() adopts even if
   * the mapping row never committed.
   */
  private async createVolumeFile(volumeId: VolumeId): Promise<void> {
    const disk = await this.pickDiskForNewVolume();
    const directory = join(disk, VOLUMES_DIRECTORY_NAME);
    const path = join(directory, `${volumeId}.vol`);
    const temporaryPath = `${path}.tmp`;
    const superblock = encodeSuperblock(volumeId);
    const file = await open(temporaryPath, "w");
    try {
      await file.writeFile(superblock);
      await file.sync();
    } finally {
      await file.close();
    }
    await rename(temporaryPath, path);
    const directoryHandle = await open(directory, "r");
    try {
      await directoryHandle.sync();
    } finally {
      await directoryHandle.close();
    }
    crashPoint("datanode.create-volume.after-rename");
    const row: VolumeRow = { volumeId, state: "writable", mappedUpToBytes: SUPERBLOCK_SIZE_BYTES, fileCrc32UpTo: crc32(superblock) };
    this.mapping.resetVolume(row);
    const volume = await this.openVolume({ volumeId, path, diskDirectory: disk, row, counts: this.mapping.countNeedlesOf(volumeId) });
    this.volumes.set(volumeId, volume);
    log.info({ volumeId, path }, "volume created");
  }

  /**
   * The disk with the most free space. Disks within one volume size of each other count as equal
   * (free space moves as volumes fill), and among equals the one holding the fewest volumes wins,
   * so fresh disks of one size still take turns.
   */
  private async pickDiskForNewVolume(): Promise<string> {
    let best: { disk: string; freeBytes: number; volumeCount: number } | undefined;
    for (const disk of this.diskDirectories) {
      const stats = await statfs(disk);
      const freeBytes = stats.bavail * stats.bsize;
      let volumeCount = 0;
      for (const volume of this.volumes.values()) if (volume.diskDirectory === disk) volumeCount += 1;
      if (
        best === undefined ||
        freeBytes > best.freeBytes + this.volumeSizeBytes ||
        (freeBytes >= best.freeBytes - this.volumeSizeBytes && volumeCount < best.volumeCount)
      ) {
        best = { disk, freeBytes, volumeCount };
      }
    }
    assert(best !== undefined, "a data node has at least one disk");
    return best.disk;
  }

  async writeNeedle(input: WriteNeedleInput): Promise<void> {
    assert(!this.closed, "data node is open");
    assert(isNeedleId(input.needleId), "needle id is 32 lowercase hex characters");
    const volume = this.volumes.get(input.volumeId);
    if (volume === undefined) throw new VolumeNotFound(input.volumeId);
    if (input.data.length > NEEDLE_DATA_SIZE_BYTES_MAX) {
      throw new NeedleTooLarge(input.volumeId, input.needleId, input.data.length);
    }
    // Verify before writing and again on every read: rot in transit never reaches the disk.
    // A CRC the in-process writer computed over these very bytes has no transit to guard: the
    // pass would only repeat it (a tenth of a large PUT's event loop).
    const dataCrc32 = input.crc32OfTheseBytes === true ? input.crc32 >>> 0 : crc32(input.data);
    if (dataCrc32 !== input.crc32 >>> 0) throw new ChecksumMismatch(input.volumeId, input.needleId);
    const existing = this.mapping.lookup(input.volumeId, input.needleId);
    if (existing !== undefined && existing.flags & NEEDLE_FLAG_TOMBSTONE) {
      // A late copy of a deleted needle (a retry, or repair from a stale replica): it stays
      // dead. Acknowledging is right, as the tombstone is already durable; appending is waste.
      log.debug({ volumeId: input.volumeId, needleId: input.needleId }, "write of a tombstoned needle ignored");
      return;
    }
    if (existing !== undefined && existing.offsetBytes >= 0 && (volume.stateKind === "sealed" || volume.stateKind === "damaged")) {
      await this.rewriteSealedNeedle(input);
      return;
    }
    await volume.appendNeedle(input.needleId, input.data, dataCrc32);
  }

  /**
   * A write of a needle a sealed volume already holds: a retry (the needle verifies; nothing to
   * do) or repair of a needle the scrubber or a read found corrupt. A sealed file takes no
   * appends, but the needle's slot has exactly the size of its good bytes, and a needle's
   * encoding is deterministic, so writing them in place restores the file to the bytes its
   * footer's checksum was computed over. A crash mid-write leaves the needle as corrupt as it
   * was, never a good needle broken. Runs outside any compaction, so the slot cannot move.
   */
  private async rewriteSealedNeedle(input: WriteNeedleInput): Promise<void> {
    while (this.compactionRunning !== undefined) await this.compactionRunning.catch(() => undefined);
    const volume = this.volumes.get(input.volumeId);
    const row = this.mapping.lookup(input.volumeId, input.needleId);
    if (volume === undefined) throw new VolumeNotFound(input.volumeId);
    if (row === undefined || row.flags & NEEDLE_FLAG_TOMBSTONE || row.offsetBytes < 0) return; // deleted meanwhile: stays dead
    if (row.dataSizeBytes !== input.data.length) throw new VolumeFull(input.volumeId); // not this needle's bytes
    try {
      const stored = await volume.readNeedleData(input.needleId, row);
      // Intact: a retried write. Needle ids are never reused for other bytes, so equal CRCs
      // mean the same needle; anything else is refused as the sealed volume it is.
      if (crc32(stored) !== input.crc32 >>> 0) throw new VolumeFull(input.volumeId);
      return;
    } catch (error) {
      if (!(error instanceof ChecksumMismatch)) throw error;
    }
    await volume.rewriteNeedleInPlace(input.needleId, row, input.data);
    log.warn({ volumeId: input.volumeId, needleId: input.needleId, offsetBytes: row.offsetBytes }, "corrupt needle of a sealed volume rewritten in place");
  }

  async readNeedle(input: ReadNeedleInput): Promise<Buffer> {
    assert(!this.closed, "data node is open");
    assert(isNeedleId(input.needleId), "needle id is 32 lowercase hex characters");
    const volume = this.volumes.get(input.volumeId);
    if (volume === undefined) throw new VolumeNotFound(input.volumeId);
    const row = this.mapping.lookup(input.volumeId, input.needleId);
    if (row === undefined || row.flags & NEEDLE_FLAG_TOMBSTONE) throw new NeedleNotFound(input.volumeId, input.needleId);
    const offsetBytes = input.offsetBytes ?? 0;
    const lengthBytes = input.lengthBytes ?? row.dataSizeBytes - offsetBytes;
    if (
      !Number.isSafeInteger(offsetBytes) ||
      !Number.isSafeInteger(lengthBytes) ||
      offsetBytes < 0 ||
      lengthBytes < 0 ||
      offsetBytes + lengthBytes > row.dataSizeBytes
    ) {
      throw new NeedleRangeInvalid(input.volumeId, input.needleId, offsetBytes, lengthBytes);
    }
    // Needles are at most one chunk: read and verify the whole needle, then slice.
    const whole = offsetBytes === 0 && lengthBytes === row.dataSizeBytes;
    const data = await volume.readNeedleData(input.needleId, row, { intoChunkBuffer: whole && input.intoChunkBuffer === true });
    if (whole) return data;
    return Buffer.from(data.subarray(offsetBytes, offsetBytes + lengthBytes)); // copy: do not pin the chunk
  }

  async deleteNeedle(input: { volumeId: VolumeId; needleId: NeedleId }): Promise<void> {
    assert(!this.closed, "data node is open");
    assert(isNeedleId(input.needleId), "needle id is 32 lowercase hex characters");
    const volume = this.volumes.get(input.volumeId);
    if (volume === undefined) throw new VolumeNotFound(input.volumeId);
    const existing = this.mapping.lookup(input.volumeId, input.needleId);
    if (existing !== undefined && existing.flags & NEEDLE_FLAG_TOMBSTONE) return; // already durable
    // An unknown needle gets a tombstone too, so a copy arriving later stays dead.
    await volume.deleteNeedle(input.needleId);
  }

  async volumeStatuses(): Promise<VolumeStatus[]> {
    const statuses: VolumeStatus[] = [];
    for (const volume of [...this.volumes.values()].sort((a, b) => a.volumeId - b.volumeId)) {
      // 'damaged' and 'failed' volumes take no appends; to placement they are sealed.
      const state = volume.stateKind === "writable" ? "writable" : "sealed";
      statuses.push({ volumeId: volume.volumeId, state, sizeBytes: volume.sizeBytes, ...volume.needleCounts });
    }
    return statuses;
  }

  /**
   * Repair and drain: seal a volume the cluster map has sealed, as a full one is sealed (after
   * the appends already queued; later ones get VolumeFull), so the scrubber and the compactor
   * take it and its unused tail is not held. Idempotent; a damaged or failed volume is left as it
   * is. Answers the volume's status afterwards.
   */
  async sealVolume(input: { volumeId: VolumeId }): Promise<VolumeStatus> {
    assert(!this.closed, "data node is open");
    const volume = this.volumes.get(input.volumeId);
    if (volume === undefined) throw new VolumeNotFound(input.volumeId);
    await volume.requestSeal();
    // 'damaged' and 'failed' volumes take no appends; to placement they are sealed.
    return { volumeId: volume.volumeId, state: volume.stateKind === "writable" ? "writable" : "sealed", sizeBytes: volume.sizeBytes, ...volume.needleCounts };
  }

  /** Repair: a page of a volume's needles and tombstones in needle-id order. */
  async listNeedles(input: ListNeedlesInput): Promise<NeedleListEntry[]> {
    assert(!this.closed, "data node is open");
    if (!this.volumes.has(input.volumeId)) throw new VolumeNotFound(input.volumeId);
    return this.mapping.listNeedles(input.volumeId, input.afterNeedleId, input.countMax).map((row) => ({
      needleId: row.needleId,
      dataSizeBytes: row.dataSizeBytes,
      tombstone: (row.flags & NEEDLE_FLAG_TOMBSTONE) !== 0,
    }));
  }

  /**
   * Repair: put back a needle this node lost or rotted, from a copy the caller read (verified)
   * on another replica. A tombstone wins; an intact copy is left alone (a stale report). In a
   * writable volume the good copy is appended (the later copy's row wins); in a sealed one it
   * is written over the rotted bytes in place (rewriteSealedNeedle, which waits out compaction),
   * so the file's footer checksum holds again. A sealed volume with no row for the needle cannot
   * take it: NeedleNotFound, and the caller re-creates the replica elsewhere.
   */
  async rewriteNeedle(input: WriteNeedleInput): Promise<RewriteNeedleOutcome> {
    assert(!this.closed, "data node is open");
    assert(isNeedleId(input.needleId), "needle id is 32 lowercase hex characters");
    const volume = this.volumes.get(input.volumeId);
    if (volume === undefined) throw new VolumeNotFound(input.volumeId);
    if (input.data.length > NEEDLE_DATA_SIZE_BYTES_MAX) throw new NeedleTooLarge(input.volumeId, input.needleId, input.data.length);
    if (crc32(input.data) !== input.crc32 >>> 0) throw new ChecksumMismatch(input.volumeId, input.needleId);
    const row = this.mapping.lookup(input.volumeId, input.needleId);
    if (row !== undefined && row.flags & NEEDLE_FLAG_TOMBSTONE) return "tombstoned";
    if (row === undefined || row.offsetBytes === OFFSET_NONE) {
      if (volume.stateKind !== "writable") throw new NeedleNotFound(input.volumeId, input.needleId);
      await volume.appendNeedle(input.needleId, input.data, input.crc32 >>> 0);
      return "appended";
    }
    // Same id, different size: not a copy of this needle. Refuse rather than overwrite a neighbour.
    if (row.dataSizeBytes !== input.data.length) throw new ChecksumMismatch(input.volumeId, input.needleId);
    try {
      if (crc32(await volume.readNeedleData(input.needleId, row)) === input.crc32 >>> 0) return "intact";
    } catch (error) {
      if (!(error instanceof ChecksumMismatch)) throw error;
    }
    if (volume.stateKind === "writable") {
      await volume.appendNeedle(input.needleId, input.data, input.crc32 >>> 0);
      return "appended";
    }
    await this.rewriteSealedNeedle(input);
    return "rewritten-in-place";
  }

  /** Re-reads a sealed volume and checks its whole-file checksum (for the scrubber). */
  async verifySealedVolume(volumeId: VolumeId): Promise<SealedVolumeVerification> {
    const volume = this.volumes.get(volumeId);
    if (volume === undefined) throw new VolumeNotFound(volumeId);
    return volume.verifySealed();
  }

  /** Garbage of every sealed volume (what a compaction of each would give back now). */
  sealedVolumeGarbage(): VolumeGarbage[] {
    const garbage: VolumeGarbage[] = [];
    for (const volume of this.volumes.values()) {
      if (volume.stateKind !== "sealed") continue;
      // Only deletes make garbage in a sealed volume (and duplicate copies of a retried write).
      garbage.push(garbageOf(this.mapping, volume));
    }
    return garbage.sort((a, b) => a.volumeId - b.volumeId);
  }

  /**
   * Compacts one sealed volume if its garbage ratio is at least `garbageRatioMin` (protocol in
   * compaction.ts). Compactions run one at a time; a second call waits for the first.
   */
  async compactVolume(
    volumeId: VolumeId,
    options: { garbageRatioMin?: number; rateBytesPerSecond?: number; force?: boolean; signal?: AbortSignal } = {},
  ): Promise<CompactionResult> {
    while (this.compactionRunning !== undefined) await this.compactionRunning.catch(() => undefined);
    if (this.closed) return { volumeId, outcome: "aborted", reason: "data node closing" };
    const volume = this.volumes.get(volumeId);
    if (volume === undefined) throw new VolumeNotFound(volumeId);
    const host: CompactionHost = {
      mapping: this.mapping,
      clock: this.clock,
      isClosed: () => this.closed,
      isCurrent: (candidate) => this.volumes.get(candidate.volumeId) === candidate,
      openCompacted: ({ volume: old, openPath, row }) =>
        this.openVolume({ volumeId: old.volumeId, path: old.path, openPath, diskDirectory: old.diskDirectory, row, counts: old.needleCounts }),
      replaceVolume: (next) => {
        assert(this.volumes.has(next.volumeId), "compaction replaces a volume the node serves");
        this.volumes.set(next.volumeId, next);
      },
    };
    const running = compactSealedVolume({
      host,
      volume,
      garbageRatioMin: options.garbageRatioMin ?? COMPACTION_GARBAGE_RATIO_MIN_DEFAULT,
      rateBytesPerSecond: options.rateBytesPerSecond ?? COMPACTION_RATE_BYTES_PER_SECOND_DEFAULT,
      ...(options.force === undefined ? {} : { force: options.force }),
      ...(options.signal === undefined ? {} : { signal: options.signal }),
    });
    this.compactionRunning = running;
    try {
      return await running;
    } finally {
      this.compactionRunning = undefined;
    }
  }

  /** Ids of the volumes a scrubber should read (sealed or damaged), in id order. */
  scrubbableVolumeIds(): VolumeId[] {
    return [...this.volumes.values()]
      .filter((volume) => volume.stateKind === "sealed" || volume.stateKind === "damaged")
      .map((volume) => volume.volumeId)
      .sort((a, b) => a - b);
  }

  /** When the scrubber last finished reading the volume (ms since the epoch), if ever. */
  volumeScrubbedAtMs(volumeId: VolumeId): number | undefined {
    return this.mapping.scrubbedAtMs(volumeId);
  }

  recordVolumeScrubbed(volumeId: VolumeId, scrubbedAtMs: number): void {
    if (!this.closed) this.mapping.recordScrubbed(volumeId, scrubbedAtMs);
  }

  /** The volume the node serves now for `volumeId`, as the scrubber reads it. */
  scrubAccess(volumeId: VolumeId): VolumeScrubAccess | undefined {
    const volume = this.volumes.get(volumeId);
    if (volume === undefined) return undefined;
    return {
      volumeId,
      stateKind: volume.stateKind,
      sealFooter: volume.sealFooter,
      readBytes: (positionBytes, lengthBytes) => volume.readBytes(positionBytes, lengthBytes),
      needlesInFileOrder: (afterOffsetBytes, countMax) =>
        this.closed || this.volumes.get(volumeId) !== volume ? undefined : this.mapping.needlesInFileOrder(volumeId, afterOffsetBytes, countMax),
    };
  }

  /** Counters since open (fsyncs, group commits, appends). */
  stats(): DataNodeStats {
    return { ...this.statistics };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.allSettled(this.volumesBeingCreated.values());
    // A compaction sees `closed` at its next step and stops before switching, or finishes a
    // switch it already made; either way it is done with the volumes before they close.
    await this.compactionRunning?.catch(() => undefined);
    // Volumes first: a seal may route queued tombstones to the sealed-tombstone batch.
    await Promise.all([...this.volumes.values()].map((volume) => volume.close()));
    while (this.sealedTombstoneFlushRunning) await this.sealedTombstoneFlushDone;
    this.volumes.clear();
    await this.mapping.close();
  }

  // ---- Sealed-volume tombstones: batched, one durable (synchronous=FULL) commit per batch ----

  private recordSealedTombstone(volumeId: VolumeId, needleId: NeedleId): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.pendingSealedTombstones.push({ volumeId, needleId, resolve, reject });
      if (!this.sealedTombstoneFlushRunning) {
        this.sealedTombstoneFlushRunning = true;
        this.sealedTombstoneFlushDone = this.flushSealedTombstones();
      }
    });
  }

  private async flushSealedTombstones(): Promise<void> {
    // Let tombstones issued in the same turn of the event loop share one durable commit.
    await new Promise<void>((done) => setImmediate(done));
    try {
      await this.flushSealedTombstoneBatches();
    } finally {
      this.sealedTombstoneFlushRunning = false;
    }
  }

  private async flushSealedTombstoneBatches(): Promise<void> {
    while (this.pendingSealedTombstones.length > 0) {
      const batch = this.pendingSealedTombstones.splice(0, GROUP_COMMIT_WRITES_COUNT_MAX);
      try {
        const deltas = await this.mapping.recordTombstonesDurably(batch);
        for (const [volumeId, delta] of deltas) this.volumes.get(volumeId)?.addCounts(delta);
        for (const entry of batch) entry.resolve();
      } catch (error) {
        for (const entry of batch) entry.reject(error);
      }
      // Let tombstones that arrived during this commit join the next batch.
      if (this.pendingSealedTombstones.length > 0) await new Promise<void>((done) => setImmediate(done));
    }
  }
}

// Every needle must fit an empty volume of the default size, with its superblock and footer.
assert(
  SUPERBLOCK_SIZE_BYTES + NEEDLE_ENCODED_SIZE_BYTES_MAX + SEAL_FOOTER_SIZE_BYTES <= VOLUME_SIZE_BYTES_MIN,
  "one largest needle fits in the smallest volume",
);
