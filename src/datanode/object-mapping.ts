/**
 * The data node's object_mapping: needle id -> volume, offset, size, flags, in the node's own
 * SQLite database (one file per node, WAL mode, checkpointed on the checkpoint thread of
 * base/wal-checkpointer.ts), beside a lock file that keeps a second data node off the disk.
 *
 * Durability choice: the connection runs with `synchronous=NORMAL`. In WAL mode a commit then
 * survives a process crash (the WAL is in the OS page cache) but a power cut may lose the last
 * commits. That is safe here because the volume files, not the mapping, are the record of which
 * needles exist: every needle is fsynced in its volume before its mapping row is committed, each
 * volume row remembers how far its file has been mapped (`mapped_up_to_bytes`, updated in the
 * same transaction as the rows), and recovery re-scans every writable volume from there and
 * re-inserts whatever rows a crash lost. Batching commits on NORMAL keeps one fsync per group.
 *
 * The one thing that lives only in the mapping is a tombstone on a sealed volume (the sealed file
 * is never appended to again). Those commits are followed by an fdatasync of the WAL on libuv's
 * thread pool, which makes them and every earlier NORMAL commit durable, before the delete is
 * acknowledged. The switch to a compacted file commits with `synchronous=FULL` (once per
 * compaction).
 */
import Database from "better-sqlite3";
import { closeSync, fdatasync } from "node:fs";
import { promisify } from "node:util";
import { assert, BackgroundCheckpoints, openWalFileForSync, setInBoundedCache, type NeedleId, type VolumeId } from "../base/index.js";
import {
  NEEDLE_ALIGNMENT_BYTES,
  NEEDLE_CHECKSUM_SIZE_BYTES,
  NEEDLE_FLAG_TOMBSTONE,
  NEEDLE_HEADER_SIZE_BYTES,
  needleIdFromBytes,
  needleIdToBytes,
} from "./needle-codec.js";

/** Thrown by ObjectMapping.open when another data node (process or instance) holds the files. */
export class MappingInUse extends Error {
  constructor(path: string) {
    super(`${path} is locked by another data node: one data node per disk`);
    this.name = "MappingInUse";
  }
}

/**
 * Keeps a second process off the data node's files: a SQLite file in exclusive locking mode,
 * once written, keeps its write lock until its connection closes, and the kernel drops the lock
 * of a process that dies, so no stale lock outlives a crash. Another process fails to write it.
 */
function holdExclusively(path: string): Database.Database {
  // No busy timeout: the holder keeps the lock for as long as it runs, so waiting is pointless.
  const guard = new Database(path, { timeout: 0 });
  try {
    guard.pragma("locking_mode = EXCLUSIVE");
    guard.exec(`CREATE TABLE IF NOT EXISTS holder (pid INTEGER NOT NULL); DELETE FROM holder; INSERT INTO holder (pid) VALUES (${process.pid});`);
    return guard;
  } catch (error) {
    guard.close();
    if ((error as { code?: string }).code === "SQLITE_BUSY") throw new MappingInUse(path);
    throw error;
  }
}

/** A tombstone kept only in the mapping (sealed volume) has no needle in the file. */
export const OFFSET_NONE = -1;

const MAPPING_SCHEMA_VERSION = 1;

export type VolumeStateName = "writable" | "sealed";

export interface VolumeRow {
  volumeId: VolumeId;
  state: VolumeStateName;
  /** Every needle in [SUPERBLOCK, mappedUpToBytes) of the file has its row committed. */
  mappedUpToBytes: number;
  /** CRC32 of the file's bytes [0, mappedUpToBytes): continued by appends, written in the footer. */
  fileCrc32UpTo: number;
}

export interface NeedleRow {
  offsetBytes: number;
  dataSizeBytes: number;
  flags: number;
}

/** One needle appended to (or found in) a volume file, in file order. */
export interface MappingRecord {
  needleId: NeedleId;
  offsetBytes: number;
  dataSizeBytes: number;
  flags: number;
}

export interface NeedleCounts {
  needleCount: number;
  deletedNeedleCount: number;
}

interface RawNeedleRow {
  offset_bytes: number;
  data_size_bytes: number;
  flags: number;
}

interface RawVolumeRow {
  volume_id: number;
  state: string;
  mapped_up_to_bytes: number;
  file_crc32_up_to: number;
}

const fdatasyncAsync = promisify(fdatasync);

/** Needle rows kept in memory at most (about 100 bytes each); past it the cache starts over. */
const NEEDLE_ROW_CACHE_ENTRIES_MAX = 100_000;

export class ObjectMapping {
  private readonly db: Database.Database;
  private readonly selectNeedle: Database.Statement<[number, Buffer], RawNeedleRow>;
  /**
   * Rows of recently read needles, by "volume/needle": a GET of a hot object costs no query.
   * Every change to object_mapping goes through this class and drops what it touches (applyOne
   * a needle; resetVolume, deleteNeedlesFrom and switchToCompacted everything), and lookups
   * fill it only outside transactions, so it holds committed rows.
   */
  private readonly rowCache = new Map<string, NeedleRow>();
  /**
   * The greatest needle id with a row, per volume: read once, then raised as rows are inserted
   * ("" for none). Needle ids are time-ordered, so the lookup before every fresh write (is this id
   * tombstoned?) finds its id above the mark and asks no query. Rows only ever go below it
   * (deletes leave it high), so an id above it has no row.
   */
  private readonly newestNeedleIdByVolume = new Map<VolumeId, string>();
  private readonly selectNewestNeedleId: Database.Statement<[number], Buffer>;
  /** Runs its body in a transaction; made once, as every group commit uses it. */
  private readonly inTransaction: Database.Transaction<(body: () => unknown) => unknown>;
  /** The same as an array: every needle read looks one up, and an array row is cheaper to build. */
  private readonly selectNeedleRaw: Database.Statement<[number, Buffer], [number, number, number]>;
  /** Inserts unless the id has a row already (then changes nothing): a new needle in one statement. */
  private readonly insertNewNeedle: Database.Statement<[number, Buffer, number, number, number]>;
  private readonly replaceLiveNeedle: Database.Statement<[number, number, number, Buffer]>;
  private readonly setTombstoneFlag: Database.Statement<[number, Buffer]>;
  private readonly updateVolumeProgress: Database.Statement<[number, number, string, number]>;

  private readonly checkpoints: BackgroundCheckpoints | undefined;
  /** The -wal file, fdatasynced after commits that must be durable; undefined: they commit FULL. */
  private readonly walFd: number | undefined;

  private constructor(
    db: Database.Database,
    /** Held open for the exclusive lock on `<mapping>.lock` (holdExclusively). */
    private readonly guard: Database.Database,
  ) {
    this.db = db;
    this.inTransaction = db.transaction((body: () => unknown) => body());
    this.selectNeedle = db.prepare(
      "SELECT offset_bytes, data_size_bytes, flags FROM object_mapping WHERE volume_id = ? AND needle_id = ?",
    );
    this.selectNeedleRaw = db
      .prepare<[number, Buffer], [number, number, number]>(
        "SELECT offset_bytes, data_size_bytes, flags FROM object_mapping WHERE volume_id = ? AND needle_id = ?",
      )
      .raw(true);
    this.selectNewestNeedleId = db
      .prepare<[number], Buffer>("SELECT needle_id FROM object_mapping WHERE volume_id = ? ORDER BY needle_id DESC LIMIT 1")
      .pluck(true);
    this.insertNewNeedle = db.prepare(
      `INSERT INTO object_mapping (volume_id, needle_id, offset_bytes, data_size_bytes, flags) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (volume_id, needle_id) DO NOTHING`,
    );
    this.replaceLiveNeedle = db.prepare(
      "UPDATE object_mapping SET offset_bytes = ?, data_size_bytes = ? WHERE volume_id = ? AND needle_id = ?",
    );
    this.setTombstoneFlag = db.prepare(
      `UPDATE object_mapping SET flags = flags | ${NEEDLE_FLAG_TOMBSTONE} WHERE volume_id = ? AND needle_id = ?`,
    );
    this.updateVolumeProgress = db.prepare(
      "UPDATE volumes SET mapped_up_to_bytes = ?, file_crc32_up_to = ?, state = ? WHERE volume_id = ?",
    );
    this.walFd = openWalFileForSync(db);
    // Last: once registered, the checkpoint thread holds the file until close().
    this.checkpoints = BackgroundCheckpoints.start(db);
  }

  static open(path: string): ObjectMapping {
    const guard = holdExclusively(`${path}.lock`);
    let db: Database.Database | undefined;
    try {
      db = new Database(path);
      return ObjectMapping.initialize(db, guard);
    } catch (error) {
      db?.close();
      guard.close();
      throw error;
    }
  }

  private static initialize(db: Database.Database, guard: Database.Database): ObjectMapping {
    // Not in exclusive locking mode, which would have kept the WAL index out of shared memory
    // and saved a lookup its file-lock system calls: the checkpoint thread needs a connection of
    // its own. Lookups of hot needles come from rowCache anyway; the guard file keeps a second
    // process off the disk instead.
    db.pragma("journal_mode = WAL");
    db.pragma("synchronous = NORMAL");
    db.exec(`
      CREATE TABLE IF NOT EXISTS mapping_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
      CREATE TABLE IF NOT EXISTS volumes (
        volume_id INTEGER PRIMARY KEY,
        state TEXT NOT NULL CHECK (state IN ('writable', 'sealed')),
        mapped_up_to_bytes INTEGER NOT NULL,
        file_crc32_up_to INTEGER NOT NULL
      );
      -- Keyed by volume first: a needle id is unique per volume, and a read names both.
      CREATE TABLE IF NOT EXISTS object_mapping (
        volume_id INTEGER NOT NULL,
        needle_id BLOB NOT NULL,
        offset_bytes INTEGER NOT NULL,
        data_size_bytes INTEGER NOT NULL,
        flags INTEGER NOT NULL,
        PRIMARY KEY (volume_id, needle_id)
      ) WITHOUT ROWID;
      -- Compaction and the scrubber walk a volume's needles in file order, a page at a time.
      CREATE INDEX IF NOT EXISTS object_mapping_by_offset ON object_mapping (volume_id, offset_bytes);
      -- Where compaction put each needle in the new file, staged in batches so a volume of many
      -- small needles never needs them all in memory; applied in one transaction at the switch.
      CREATE TABLE IF NOT EXISTS compaction_relocations (
        volume_id INTEGER NOT NULL,
        needle_id BLOB NOT NULL,
        offset_bytes INTEGER NOT NULL,
        data_size_bytes INTEGER NOT NULL,
        PRIMARY KEY (volume_id, needle_id)
      ) WITHOUT ROWID;
      -- When the scrubber last read each volume whole, so restarts do not reset its schedule.
      CREATE TABLE IF NOT EXISTS volume_scrubs (volume_id INTEGER PRIMARY KEY, scrubbed_at_ms INTEGER NOT NULL);
    `);
    const version = db.prepare("SELECT value FROM mapping_meta WHERE key = 'schema_version'").get() as
      | { value: number }
      | undefined;
    if (version === undefined) {
      db.prepare("INSERT INTO mapping_meta (key, value) VALUES ('schema_version', ?)").run(MAPPING_SCHEMA_VERSION);
    } else {
      assert(version.value === MAPPING_SCHEMA_VERSION, `mapping schema version ${version.value} is supported`);
    }
    return new ObjectMapping(db, guard);
  }

  loadVolumes(): VolumeRow[] {
    const rows = this.db.prepare("SELECT * FROM volumes ORDER BY volume_id").all() as RawVolumeRow[];
    return rows.map((row) => {
      assert(row.state === "writable" || row.state === "sealed", "volume state is known");
      return {
        volumeId: row.volume_id as VolumeId,
        state: row.state,
        mappedUpToBytes: row.mapped_up_to_bytes,
        fileCrc32UpTo: row.file_crc32_up_to,
      };
    });
  }

  insertVolume(row: VolumeRow): void {
    this.db
      .prepare("INSERT INTO volumes (volume_id, state, mapped_up_to_bytes, file_crc32_up_to) VALUES (?, ?, ?, ?)")
      .run(row.volumeId, row.state, row.mappedUpToBytes, row.fileCrc32UpTo);
  }

  /**
   * Records a freshly created (empty) volume. A row left by an earlier volume of the same id
   * whose file is gone is replaced; its live needle rows point into that lost file and go, its
   * tombstones stay so a late copy of a deleted needle stays dead.
   */
  resetVolume(row: VolumeRow): void {
    this.rowCache.clear();
    const reset = this.db.transaction(() => {
      this.db
        .prepare(
          `INSERT INTO volumes (volume_id, state, mapped_up_to_bytes, file_crc32_up_to) VALUES (?, ?, ?, ?)
           ON CONFLICT (volume_id) DO UPDATE SET state = excluded.state,
             mapped_up_to_bytes = excluded.mapped_up_to_bytes, file_crc32_up_to = excluded.file_crc32_up_to`,
        )
        .run(row.volumeId, row.state, row.mappedUpToBytes, row.fileCrc32UpTo);
      this.db
        .prepare(`DELETE FROM object_mapping WHERE volume_id = ? AND (flags & ${NEEDLE_FLAG_TOMBSTONE}) = 0`)
        .run(row.volumeId);
      this.db
        .prepare(`UPDATE object_mapping SET offset_bytes = ${OFFSET_NONE}, data_size_bytes = 0 WHERE volume_id = ?`)
        .run(row.volumeId);
    });
    reset();
  }

  countNeedlesOf(volumeId: VolumeId): NeedleCounts {
    const row = this.db
      .prepare(
        `SELECT COUNT(*) AS needle_count, SUM(flags & ${NEEDLE_FLAG_TOMBSTONE}) AS deleted_count
         FROM object_mapping WHERE volume_id = ?`,
      )
      .get(volumeId) as { needle_count: number; deleted_count: number | null };
    return { needleCount: row.needle_count, deletedNeedleCount: row.deleted_count ?? 0 };
  }

  /** Needle and tombstone counts per volume (a tombstoned needle counts in both). */
  countNeedles(): Map<VolumeId, NeedleCounts> {
    const rows = this.db
      .prepare(
        `SELECT volume_id, COUNT(*) AS needle_count, SUM(flags & ${NEEDLE_FLAG_TOMBSTONE}) AS deleted_count
         FROM object_mapping GROUP BY volume_id`,
      )
      .all() as { volume_id: number; needle_count: number; deleted_count: number | null }[];
    return new Map(
      rows.map((row) => [
        row.volume_id as VolumeId,
        { needleCount: row.needle_count, deletedNeedleCount: row.deleted_count ?? 0 },
      ]),
    );
  }

  lookup(volumeId: VolumeId, needleId: NeedleId): NeedleRow | undefined {
    const cacheKey = volumeId + "/" + needleId;
    const cached = this.rowCache.get(cacheKey);
    if (cached !== undefined) return cached;
    if (needleId > this.newestNeedleIdOf(volumeId)) return undefined;
    const row = this.selectNeedleRaw.get(volumeId, needleIdToBytes(needleId));
    if (row === undefined) return undefined;
    const found: NeedleRow = Object.freeze({ offsetBytes: row[0], dataSizeBytes: row[1], flags: row[2] });
    if (!this.db.inTransaction) setInBoundedCache(this.rowCache, cacheKey, found, NEEDLE_ROW_CACHE_ENTRIES_MAX);
    return found;
  }

  /** Hex compares as the BLOB key does (fixed length, lower case), so string order is key order. */
  private newestNeedleIdOf(volumeId: VolumeId): string {
    let newest = this.newestNeedleIdByVolume.get(volumeId);
    if (newest === undefined) {
      const bytes = this.selectNewestNeedleId.get(volumeId);
      newest = bytes === undefined ? "" : needleIdFromBytes(bytes);
      this.newestNeedleIdByVolume.set(volumeId, newest);
    }
    return newest;
  }

  /**
   * Applies needles appended to (or found by recovery in) a writable volume, in file order, and
   * advances the volume's mapped-up-to offset, in one transaction. A tombstone wins over any
   * needle of the same id before or after it, so a late copy never makes a deleted needle live.
   */
  applyAppends(
    volumeId: VolumeId,
    records: readonly MappingRecord[],
    progress: { mappedUpToBytes: number; fileCrc32UpTo: number; state: VolumeStateName },
  ): NeedleCounts {
    return this.inTransaction((): NeedleCounts => {
      const delta: NeedleCounts = { needleCount: 0, deletedNeedleCount: 0 };
      for (const record of records) this.applyOne(volumeId, record, delta);
      const changed = this.updateVolumeProgress.run(
        progress.mappedUpToBytes,
        progress.fileCrc32UpTo >>> 0,
        progress.state,
        volumeId,
      );
      assert(changed.changes === 1, `volume ${volumeId} has a row`);
      return delta;
    }) as NeedleCounts;
  }

  /** Drops rows that point at or past `offsetBytes` (recovery cut the file there). */
  deleteNeedlesFrom(volumeId: VolumeId, offsetBytes: number): number {
    this.rowCache.clear();
    return this.db
      .prepare("DELETE FROM object_mapping WHERE volume_id = ? AND offset_bytes >= ?")
      .run(volumeId, offsetBytes).changes;
  }

  /**
   * Records tombstones that live only in the mapping (sealed volumes), durable when this
   * resolves: committed with synchronous=NORMAL, then the WAL fdatasynced on libuv's thread pool
   * (as the metadata store commits), not with synchronous=FULL, whose fsync inside COMMIT held
   * the event loop for the disk on every batch of deletes that reached a sealed volume. Commits
   * of other writes that land before the fdatasync are made durable by it too, which is harmless.
   */
  async recordTombstonesDurably(entries: readonly { volumeId: VolumeId; needleId: NeedleId }[]): Promise<Map<VolumeId, NeedleCounts>> {
    const apply = this.db.transaction(() => {
      const deltas = new Map<VolumeId, NeedleCounts>();
      for (const entry of entries) {
        let delta = deltas.get(entry.volumeId);
        if (delta === undefined) {
          delta = { needleCount: 0, deletedNeedleCount: 0 };
          deltas.set(entry.volumeId, delta);
        }
        this.applyOne(
          entry.volumeId,
          { needleId: entry.needleId, offsetBytes: OFFSET_NONE, dataSizeBytes: 0, flags: NEEDLE_FLAG_TOMBSTONE },
          delta,
        );
      }
      return deltas;
    });
    if (this.walFd === undefined) return this.commitFull(apply);
    const deltas = apply();
    await fdatasyncAsync(this.walFd);
    return deltas;
  }

  /** What this connection runs with; tests check that no commit fsyncs inside COMMIT on the loop. */
  durabilitySettings(): { synchronous: number; tombstonesSyncedOnThreadPool: boolean } {
    return { synchronous: this.db.pragma("synchronous", { simple: true }) as number, tombstonesSyncedOnThreadPool: this.walFd !== undefined };
  }

  /** Where the WAL cannot be synced on its own (":memory:", no -wal file): an fsync inside COMMIT. */
  private commitFull<T>(apply: () => T): T {
    this.db.pragma("synchronous = FULL");
    try {
      return apply();
    } finally {
      this.db.pragma("synchronous = NORMAL");
    }
  }

  /**
   * A page of a volume's rows in needle-id order, after `afterNeedleId` (for repair, which
   * merges the listings of every replica). Tombstoned rows included, flagged.
   */
  listNeedles(volumeId: VolumeId, afterNeedleId: NeedleId | undefined, countMax: number): Array<{ needleId: NeedleId; dataSizeBytes: number; flags: number }> {
    assert(Number.isSafeInteger(countMax) && countMax > 0, "a listing page holds at least one row");
    const after = afterNeedleId === undefined ? Buffer.alloc(0) : needleIdToBytes(afterNeedleId);
    const rows = this.db
      .prepare("SELECT needle_id, data_size_bytes, flags FROM object_mapping WHERE volume_id = ? AND needle_id > ? ORDER BY needle_id LIMIT ?")
      .all(volumeId, after, countMax) as Array<{ needle_id: Buffer; data_size_bytes: number; flags: number }>;
    return rows.map((row) => ({ needleId: needleIdFromBytes(row.needle_id), dataSizeBytes: row.data_size_bytes, flags: row.flags }));
  }

  /** Up to `countMax` needle rows (tombstoned ones too) at offsets past `afterOffsetBytes`, in file order. */
  needlesInFileOrder(volumeId: VolumeId, afterOffsetBytes: number, countMax: number): MappingRecord[] {
    const rows = this.db
      .prepare(
        `SELECT needle_id, offset_bytes, data_size_bytes, flags FROM object_mapping
         WHERE volume_id = ? AND offset_bytes > ? ORDER BY offset_bytes LIMIT ?`,
      )
      .all(volumeId, Math.max(afterOffsetBytes, OFFSET_NONE), countMax) as (RawNeedleRow & { needle_id: Buffer })[];
    return rows.map((row) => ({ needleId: needleIdFromBytes(row.needle_id), offsetBytes: row.offset_bytes, dataSizeBytes: row.data_size_bytes, flags: row.flags }));
  }

  /** Up to `countMax` tombstones kept only in the mapping (no needle in the file), by needle id. */
  tombstonesWithoutNeedle(volumeId: VolumeId, afterNeedleId: NeedleId | undefined, countMax: number): NeedleId[] {
    const after = afterNeedleId === undefined ? Buffer.alloc(0) : needleIdToBytes(afterNeedleId);
    const rows = this.db
      .prepare(
        `SELECT needle_id FROM object_mapping WHERE volume_id = ? AND offset_bytes = ${OFFSET_NONE} AND needle_id > ?
         ORDER BY needle_id LIMIT ?`,
      )
      .all(volumeId, after, countMax) as { needle_id: Buffer }[];
    return rows.map((row) => needleIdFromBytes(row.needle_id));
  }

  /**
   * What a compacted copy of the volume would hold: the encoded bytes of its live needles, and
   * how many tombstones it has (each becomes a data-less tombstone needle in the copy).
   */
  compactedContentOf(volumeId: VolumeId): { liveEncodedBytes: number; tombstoneCount: number } {
    const overheadBytes = NEEDLE_HEADER_SIZE_BYTES + NEEDLE_CHECKSUM_SIZE_BYTES + NEEDLE_ALIGNMENT_BYTES - 1;
    const row = this.db
      .prepare(
        `SELECT
           SUM(CASE WHEN (flags & ${NEEDLE_FLAG_TOMBSTONE}) = 0 AND offset_bytes >= 0
                    THEN ((data_size_bytes + ${overheadBytes}) / ${NEEDLE_ALIGNMENT_BYTES}) * ${NEEDLE_ALIGNMENT_BYTES}
                    ELSE 0 END) AS live_bytes,
           SUM(flags & ${NEEDLE_FLAG_TOMBSTONE}) AS tombstone_count
         FROM object_mapping WHERE volume_id = ?`,
      )
      .get(volumeId) as { live_bytes: number | null; tombstone_count: number | null };
    return { liveEncodedBytes: row.live_bytes ?? 0, tombstoneCount: row.tombstone_count ?? 0 };
  }

  scrubbedAtMs(volumeId: VolumeId): number | undefined {
    const row = this.db.prepare("SELECT scrubbed_at_ms FROM volume_scrubs WHERE volume_id = ?").get(volumeId) as { scrubbed_at_ms: number } | undefined;
    return row?.scrubbed_at_ms;
  }

  /** Commits with synchronous=NORMAL: losing the newest scrub time only scrubs a volume early. */
  recordScrubbed(volumeId: VolumeId, scrubbedAtMs: number): void {
    this.db
      .prepare("INSERT INTO volume_scrubs (volume_id, scrubbed_at_ms) VALUES (?, ?) ON CONFLICT (volume_id) DO UPDATE SET scrubbed_at_ms = excluded.scrubbed_at_ms")
      .run(volumeId, scrubbedAtMs);
  }

  /** Forgets relocations a crashed or abandoned compaction of the volume staged. */
  clearRelocations(volumeId: VolumeId): void {
    this.db.prepare("DELETE FROM compaction_relocations WHERE volume_id = ?").run(volumeId);
  }

  /** Stages where needles sit in a volume's compacted file (not visible to reads until the switch). */
  stageRelocations(volumeId: VolumeId, records: readonly MappingRecord[]): void {
    const insert = this.db.prepare(
      "INSERT OR REPLACE INTO compaction_relocations (volume_id, needle_id, offset_bytes, data_size_bytes) VALUES (?, ?, ?, ?)",
    );
    const stage = this.db.transaction(() => {
      for (const record of records) insert.run(volumeId, needleIdToBytes(record.needleId), record.offsetBytes, record.dataSizeBytes);
    });
    stage();
  }

  /**
   * The switch to a compacted file: every staged relocation moves its row (flags untouched, so a
   * needle deleted while compaction ran stays deleted), the volume row takes the new file's end
   * and checksum, and the staging rows go, in one transaction committed with synchronous=FULL.
   * The volume row is the commit record recovery reads: a `.compact` file whose footer matches
   * it is the volume; one that does not is an unfinished compaction and is deleted.
   */
  switchToCompacted(volumeId: VolumeId, progress: { mappedUpToBytes: number; fileCrc32UpTo: number }): NeedleCounts {
    this.rowCache.clear();
    const apply = this.db.transaction((): NeedleCounts => {
      this.db
        .prepare(
          `UPDATE object_mapping AS m SET offset_bytes = r.offset_bytes, data_size_bytes = r.data_size_bytes
           FROM compaction_relocations AS r
           WHERE m.volume_id = ? AND r.volume_id = m.volume_id AND r.needle_id = m.needle_id`,
        )
        .run(volumeId);
      this.clearRelocations(volumeId);
      const changed = this.updateVolumeProgress.run(progress.mappedUpToBytes, progress.fileCrc32UpTo >>> 0, "sealed", volumeId);
      assert(changed.changes === 1, `volume ${volumeId} has a row`);
      return this.countNeedlesOf(volumeId);
    });
    return this.commitFull(apply);
  }

  async close(): Promise<void> {
    await this.checkpoints?.close();
    this.db.close();
    if (this.walFd !== undefined) closeSync(this.walFd);
    this.guard.close();
  }

  private applyOne(volumeId: VolumeId, record: MappingRecord, delta: NeedleCounts): void {
    const needleIdBytes = needleIdToBytes(record.needleId);
    this.rowCache.delete(volumeId + "/" + record.needleId);
    const isTombstone = (record.flags & NEEDLE_FLAG_TOMBSTONE) !== 0;
    // Nearly every append is a new id: try the insert first, look the row up only if it exists.
    const inserted = this.insertNewNeedle.run(volumeId, needleIdBytes, record.offsetBytes, record.dataSizeBytes, record.flags);
    if (inserted.changes === 1) {
      if (record.needleId > this.newestNeedleIdOf(volumeId)) this.newestNeedleIdByVolume.set(volumeId, record.needleId);
      delta.needleCount += 1;
      if (isTombstone) delta.deletedNeedleCount += 1;
      return;
    }
    const existing = this.selectNeedle.get(volumeId, needleIdBytes);
    assert(existing !== undefined, "a needle whose insert conflicted has a row");
    const wasTombstone = (existing.flags & NEEDLE_FLAG_TOMBSTONE) !== 0;
    if (wasTombstone) return; // dead stays dead: neither a second tombstone nor a late copy changes it
    if (isTombstone) {
      // Keep the row pointing at the data needle (compaction needs it); only the flag changes.
      this.setTombstoneFlag.run(volumeId, needleIdBytes);
      delta.deletedNeedleCount += 1;
      return;
    }
    // A second live copy of the same id (a retried write): the later one wins; bytes are equal
    // in practice because needle ids are never reused for different data.
    this.replaceLiveNeedle.run(record.offsetBytes, record.dataSizeBytes, volumeId, needleIdBytes);
  }
}
