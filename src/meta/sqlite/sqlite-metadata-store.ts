/**
 * The SQLite engine of the metadata store: the embedded default, one file in the data directory.
 *
 * Durability: WAL, and no write resolves before the WAL holding its commit is fsynced, so an
 * acknowledged write survives power loss, not only a process crash. Do not weaken this; batch
 * commits instead (DESIGN "Lessons"). The fsync runs on libuv's thread pool, not inside COMMIT
 * on the event loop (synchronous=NORMAL, then fdatasync of the -wal file): with FULL, every
 * batch held the loop for a whole fsync (milliseconds on a busy disk), which stalled every
 * other request. A read answers only once every commit it could have seen is durable (see
 * `visible`), so nobody observes a write that a power loss could still take back. An in-memory
 * database, or one whose WAL file cannot be opened, keeps synchronous=FULL. Checkpoints, the
 * other fsyncs SQLite would make inside a COMMIT, run on a thread of their own
 * (base/wal-checkpointer.ts).
 *
 * Every interface method is one transaction. Writes use BEGIN IMMEDIATE so a second process on
 * the same file waits on busy_timeout at BEGIN instead of failing to upgrade a read lock after
 * it has checked a write condition. The methods are async (PostgreSQL is async); here they wrap
 * synchronous better-sqlite3 calls, so a method never interleaves with another of this process.
 *
 * Listings walk the index `(bucket, key, version_seq DESC)` with one seek per key or common
 * prefix (see schema.ts and `listObjects`), so their cost follows the page, not the bucket.
 */
import Database from "better-sqlite3";
import { closeSync, fdatasync } from "node:fs";
import {
  assert,
  BackgroundCheckpoints,
  ByteSlabs,
  GenerationalCache,
  LOOP_TURN_BUDGET_MS,
  MEBIBYTE,
  openWalFileForSync,
  runInTurns,
  setInBoundedCache,
  systemClock,
} from "../../base/index.js";
import type { Clock, NeedleId, VolumeId } from "../../base/index.js";
import {
  AccessKeyAlreadyExists,
  BucketAlreadyExists,
  BucketNotEmpty,
  NoSuchAccessKey,
  NoSuchBucket,
  NoSuchKey,
  NoSuchUpload,
  NoSuchUser,
  NoSuchVersion,
  PreconditionFailed,
  UserAlreadyExists,
} from "../errors.js";
import { commonPrefixOf, compareKeys, prefixSuccessor } from "../key-order.js";
import { bucketAndObjectVersion, NULL_VERSION_ID, uploadsPageResult, versionsPageResult, type BucketAndObjectVersion, type KeyWalkPage } from "../metadata-store.js";
import type {
  AccessKey,
  Bucket,
  VersioningState,
  ChunkRef,
  DeleteObjectResult,
  GarbageChunk,
  ListMultipartUploadsInput,
  ListMultipartUploadsResult,
  ListObjectsInput,
  ListObjectsResult,
  ListObjectVersionsInput,
  ListedVersion,
  ListObjectVersionsResult,
  MetadataStore,
  MultipartUpload,
  ObjectVersion,
  Part,
  PutObjectResult,
  User,
  WriteCondition,
} from "../metadata-store.js";
import { MIGRATIONS, SCHEMA_VERSION_LATEST } from "./schema.js";
import {
  accessKeyFromRow,
  bucketFromRow,
  versionInsertValues,
  type VersionInsertValues,
  encodeChunks,
  encodeOptional,
  LISTED_OBJECT_COLUMNS,
  LISTED_VERSION_COLUMNS,
  listedObjectFromRow,
  listedVersionFromRow,
  partFromRow,
  uploadFromRow,
  userFromRow,
  versionFromRow,
  type AccessKeyRow,
  type BucketRow,
  type GarbageRow,
  type ListedObjectRow,
  type ListedVersionRow,
  type ObjectVersionRow,
  type PartRow,
  type UploadRow,
  type UserRow,
} from "../rows.js";

/** A second process holding the write lock makes us wait this long before SQLITE_BUSY. */
const BUSY_TIMEOUT_MS = 5_000;
/**
 * SQLite reads the database file through a memory map of up to this much (address space, not
 * memory: the pages are the kernel's page cache either way) instead of a pread and a copy into its
 * own page cache per page. A GET that misses the latest-version cache reads an index page, a row
 * and its inline bytes' overflow page: with the map, 5-8% less server CPU per such GET (A/Bs of five
 * alternated rounds). Writes still go through the WAL, and checkpoints through write(2). The
 * price: a disk error under a mapped page is a SIGBUS that ends the process rather than an
 * SQLITE_IOERR for the one query, on a metadata disk that is failing either way.
 */
const MMAP_SIZE_BYTES = 1024 * MEBIBYTE;

export interface SqliteMetadataStoreOptions {
  /** Stamps garbage chunks with their queue time. */
  clock?: Clock;
  /**
   * How long a listing reads before it gives the event loop back: LOOP_TURN_BUDGET_MS. A test sets
   * 0 to get a turn every few steps whatever the machine's speed.
   */
  listTurnBudgetMs?: number;
}

/** Counters that tests read to prove listing cost follows the page and writes share commits. */
export interface SqliteMetadataStoreCounters {
  /** Write transactions committed (each a group of writes sharing one durable COMMIT). */
  writeCommits: number;
  /** Rows SQLite returned to the listing methods (seeks and fetches), summed since open. */
  listRowsRead: number;
  /** Statements the listing methods executed, summed since open. */
  listStatementsRun: number;
}

/** Where the next seek of a listing starts. */
interface Cursor {
  key: string;
  inclusive: boolean;
}

function migrate(db: Database.Database): void {
  const versionCurrent = db.pragma("user_version", { simple: true }) as number;
  assert(
    versionCurrent <= SCHEMA_VERSION_LATEST,
    `metadata schema version ${versionCurrent} is newer than this build knows (${SCHEMA_VERSION_LATEST})`,
  );
  for (const migration of MIGRATIONS) {
    if (migration.version <= versionCurrent) continue;
    // A crash inside leaves the previous version: the schema change and the version bump
    // commit together, and user_version lives in the database header, which is transactional.
    db.transaction(() => {
      migration.up(db);
      db.pragma(`user_version = ${migration.version}`);
    }).immediate();
  }
}

/** An object_versions row as an array in `versionColumns` order (inline_data and inline_crc32 only in single-version reads). */
type RawVersionRow = [
  number, string, string, string, 0 | 1, number, string, number, string, string, string | null, string, string, string,
  string | null, string | null, string, (Buffer | null)?, (number | null)?,
];

function versionRowFromRaw(raw: RawVersionRow): ObjectVersionRow {
  return {
    version_seq: raw[0],
    bucket: raw[1],
    key: raw[2],
    version_id: raw[3],
    is_delete_marker: raw[4],
    size_bytes: raw[5],
    etag: raw[6],
    last_modified_ms: raw[7],
    owner_id: raw[8],
    storage_class: raw[9],
    content_type: raw[10],
    system_metadata_json: raw[11],
    user_metadata_json: raw[12],
    tags_json: raw[13],
    checksum_json: raw[14],
    part_sizes_json: raw[15],
    chunks_json: raw[16],
    inline_data: raw[17] ?? null,
    inline_crc32: raw[18] ?? null,
  };
}

/** A listing's row as an array in LISTED_OBJECT_COLUMNS order. */
type RawListedRow = [string, 0 | 1, number, string, number, string, string, string | null];

function listedRowFromRaw(raw: RawListedRow): ListedObjectRow {
  return {
    key: raw[0],
    is_delete_marker: raw[1],
    size_bytes: raw[2],
    etag: raw[3],
    last_modified_ms: raw[4],
    owner_id: raw[5],
    storage_class: raw[6],
    checksum_json: raw[7],
  };
}

function prepareStatements(db: Database.Database) {
  const versionColumns = `version_seq, bucket, key, version_id, is_delete_marker, size_bytes, etag,
    last_modified_ms, owner_id, storage_class, content_type, system_metadata_json, user_metadata_json,
    tags_json, checksum_json, part_sizes_json, chunks_json`;
  // inline_data and its CRC are the row's last columns: queries that do not select them (listings,
  // and the writes' reads of what they replace) never read its overflow pages.
  const versionColumnsWithData = `${versionColumns}, inline_data, inline_crc32`;
  return {
    // buckets
    bucketInsert: db.prepare<[string, string, number, string, string, string, string]>(
      "INSERT INTO buckets (name, owner_id, created_at_ms, region, versioning, acl, tags_json) VALUES (?, ?, ?, ?, ?, ?, ?)",
    ),
    bucketGet: db.prepare<[string], BucketRow>("SELECT * FROM buckets WHERE name = ?"),
    bucketList: db.prepare<[], BucketRow>("SELECT * FROM buckets ORDER BY name"),
    bucketDelete: db.prepare<[string]>("DELETE FROM buckets WHERE name = ?"),
    bucketUpdate: db.prepare<[string, string, string, string]>(
      "UPDATE buckets SET versioning = ?, acl = ?, tags_json = ? WHERE name = ?",
    ),
    bucketHasVersion: db.prepare<[string], { found: number }>(
      "SELECT 1 AS found FROM object_versions WHERE bucket = ? LIMIT 1",
    ),
    bucketHasUpload: db.prepare<[string], { found: number }>(
      "SELECT 1 AS found FROM multipart_uploads WHERE bucket = ? LIMIT 1",
    ),

    // object versions
    // Positional parameters: binding eighteen named ones looks each up on an object, per insert.
    versionInsert: db.prepare<VersionInsertValues<0 | 1>>(
      `INSERT INTO object_versions (bucket, key, version_id, is_delete_marker, size_bytes, etag, last_modified_ms,
         owner_id, storage_class, content_type, system_metadata_json, user_metadata_json, tags_json, checksum_json,
         part_sizes_json, chunks_json, inline_data, inline_crc32)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ),
    /** The first row at (bucket, key) in the newest-first index is the latest version. */
    versionLatest: db.prepare<[string, string], ObjectVersionRow>(
      `SELECT ${versionColumns} FROM object_versions WHERE bucket = ? AND key = ? ORDER BY version_seq DESC LIMIT 1`,
    ),
    versionById: db.prepare<[string, string, string], ObjectVersionRow>(
      `SELECT ${versionColumns} FROM object_versions WHERE bucket = ? AND key = ? AND version_id = ?`,
    ),
    // The same two as arrays, for GET and HEAD: better-sqlite3 builds a row object by setting
    // each column by name, which cost more than the lookup itself; a literal built here does not.
    versionLatestRaw: db
      .prepare<[string, string], RawVersionRow>(
        `SELECT ${versionColumnsWithData} FROM object_versions WHERE bucket = ? AND key = ? ORDER BY version_seq DESC LIMIT 1`,
      )
      .raw(true),
    versionByIdRaw: db
      .prepare<[string, string, string], RawVersionRow>(
        `SELECT ${versionColumnsWithData} FROM object_versions WHERE bucket = ? AND key = ? AND version_id = ?`,
      )
      .raw(true),
    versionDelete: db.prepare<[number]>("DELETE FROM object_versions WHERE version_seq = ?"),
    versionSetTags: db.prepare<[string, number]>("UPDATE object_versions SET tags_json = ? WHERE version_seq = ?"),
    versionSetSystemMetadata: db.prepare<[string, number]>("UPDATE object_versions SET system_metadata_json = ? WHERE version_seq = ?"),
    /** Latest version of the first key >= ?, one index seek. */
    listLatestFromInclusive: db
      .prepare<[string, string], RawListedRow>(
        `SELECT ${LISTED_OBJECT_COLUMNS} FROM object_versions WHERE bucket = ? AND key >= ?
         ORDER BY key, version_seq DESC LIMIT 1`,
      )
      .raw(true),
    /** Latest version of the first key > ?, one index seek. */
    listLatestFromExclusive: db
      .prepare<[string, string], RawListedRow>(
        `SELECT ${LISTED_OBJECT_COLUMNS} FROM object_versions WHERE bucket = ? AND key > ?
         ORDER BY key, version_seq DESC LIMIT 1`,
      )
      .raw(true),
    /** Versions from the first key >= ?, newest first within a key: a run of keys in one statement. */
    listRangeFromInclusive: db
      .prepare<[string, string, number], RawListedRow>(
        `SELECT ${LISTED_OBJECT_COLUMNS} FROM object_versions WHERE bucket = ? AND key >= ?
         ORDER BY key, version_seq DESC LIMIT ?`,
      )
      .raw(true),
    listRangeFromExclusive: db
      .prepare<[string, string, number], RawListedRow>(
        `SELECT ${LISTED_OBJECT_COLUMNS} FROM object_versions WHERE bucket = ? AND key > ?
         ORDER BY key, version_seq DESC LIMIT ?`,
      )
      .raw(true),
    listVersionKeyFromInclusive: db.prepare<[string, string], { key: string }>(
      "SELECT key FROM object_versions WHERE bucket = ? AND key >= ? ORDER BY key LIMIT 1",
    ),
    listVersionKeyFromExclusive: db.prepare<[string, string], { key: string }>(
      "SELECT key FROM object_versions WHERE bucket = ? AND key > ? ORDER BY key LIMIT 1",
    ),
    listVersionsOfKey: db.prepare<[string, string, number], ListedVersionRow>(
      `SELECT ${LISTED_VERSION_COLUMNS} FROM object_versions WHERE bucket = ? AND key = ?
       ORDER BY version_seq DESC LIMIT ?`,
    ),
    listVersionsOfKeyOlderThan: db.prepare<[string, string, number, number], ListedVersionRow>(
      `SELECT ${LISTED_VERSION_COLUMNS} FROM object_versions WHERE bucket = ? AND key = ? AND version_seq < ?
       ORDER BY version_seq DESC LIMIT ?`,
    ),

    // multipart uploads and parts
    uploadInsert: db.prepare(
      `INSERT INTO multipart_uploads (upload_id, bucket, key, initiated_at_ms, owner_id, storage_class, content_type,
         system_metadata_json, user_metadata_json, tags_json, checksum_algorithm)
       VALUES (@upload_id, @bucket, @key, @initiated_at_ms, @owner_id, @storage_class, @content_type,
         @system_metadata_json, @user_metadata_json, @tags_json, @checksum_algorithm)`,
    ),
    uploadGet: db.prepare<[string], UploadRow>("SELECT * FROM multipart_uploads WHERE upload_id = ?"),
    uploadDelete: db.prepare<[string]>("DELETE FROM multipart_uploads WHERE upload_id = ?"),
    uploadsInitiatedBefore: db.prepare<[number, number], UploadRow>(
      "SELECT * FROM multipart_uploads WHERE initiated_at_ms < ? ORDER BY initiated_at_ms, upload_id LIMIT ?",
    ),
    listUploadKeyFromInclusive: db.prepare<[string, string], { key: string }>(
      "SELECT key FROM multipart_uploads WHERE bucket = ? AND key >= ? ORDER BY key LIMIT 1",
    ),
    listUploadKeyFromExclusive: db.prepare<[string, string], { key: string }>(
      "SELECT key FROM multipart_uploads WHERE bucket = ? AND key > ? ORDER BY key LIMIT 1",
    ),
    listUploadsOfKey: db.prepare<[string, string, number], UploadRow>(
      "SELECT * FROM multipart_uploads WHERE bucket = ? AND key = ? ORDER BY upload_id LIMIT ?",
    ),
    listUploadsOfKeyAfter: db.prepare<[string, string, string, number], UploadRow>(
      "SELECT * FROM multipart_uploads WHERE bucket = ? AND key = ? AND upload_id > ? ORDER BY upload_id LIMIT ?",
    ),
    partUpsert: db.prepare(
      `INSERT INTO parts (upload_id, part_number, size_bytes, etag, last_modified_ms, checksum_json, chunks_json)
       VALUES (@upload_id, @part_number, @size_bytes, @etag, @last_modified_ms, @checksum_json, @chunks_json)
       ON CONFLICT (upload_id, part_number) DO UPDATE SET size_bytes = excluded.size_bytes, etag = excluded.etag,
         last_modified_ms = excluded.last_modified_ms, checksum_json = excluded.checksum_json,
         chunks_json = excluded.chunks_json`,
    ),
    partGet: db.prepare<[string, number], PartRow>("SELECT * FROM parts WHERE upload_id = ? AND part_number = ?"),
    partsOfUpload: db.prepare<[string], PartRow>("SELECT * FROM parts WHERE upload_id = ? ORDER BY part_number"),
    partsOfUploadAfter: db.prepare<[string, number, number], PartRow>(
      "SELECT * FROM parts WHERE upload_id = ? AND part_number > ? ORDER BY part_number LIMIT ?",
    ),
    partsDelete: db.prepare<[string]>("DELETE FROM parts WHERE upload_id = ?"),

    // garbage
    garbageInsert: db.prepare<[number, string, number, number, number]>(
      "INSERT INTO garbage_chunks (volume_id, needle_id, size_bytes, crc32, queued_at_ms) VALUES (?, ?, ?, ?, ?)",
    ),
    garbageOldest: db.prepare<[number], GarbageRow>("SELECT * FROM garbage_chunks ORDER BY garbage_id LIMIT ?"),
    garbageDelete: db.prepare<[number]>("DELETE FROM garbage_chunks WHERE garbage_id = ?"),

    // users and keys
    userInsert: db.prepare<[string, string, number, number]>(
      "INSERT INTO users (user_id, display_name, created_at_ms, is_root) VALUES (?, ?, ?, ?)",
    ),
    userGet: db.prepare<[string], UserRow>("SELECT * FROM users WHERE user_id = ?"),
    userList: db.prepare<[], UserRow>("SELECT * FROM users ORDER BY user_id"),
    userDelete: db.prepare<[string]>("DELETE FROM users WHERE user_id = ?"),
    accessKeyInsert: db.prepare<[string, string, string, number]>(
      "INSERT INTO access_keys (access_key_id, user_id, secret_sealed, created_at_ms) VALUES (?, ?, ?, ?)",
    ),
    accessKeyGet: db.prepare<[string], AccessKeyRow>("SELECT * FROM access_keys WHERE access_key_id = ?"),
    accessKeysOfUser: db.prepare<[string], AccessKeyRow>(
      "SELECT * FROM access_keys WHERE user_id = ? ORDER BY access_key_id",
    ),
    accessKeyDelete: db.prepare<[string]>("DELETE FROM access_keys WHERE access_key_id = ?"),
    accessKeysOfUserDelete: db.prepare<[string]>("DELETE FROM access_keys WHERE user_id = ?"),
  };
}

type Statements = ReturnType<typeof prepareStatements>;

/**
 * A run of plain keys is first read LIST_BATCH_ROW_COUNT_MIN rows at a time, doubling up to the
 * max. A batch is one statement, run whole: 128 rows take about half a millisecond.
 */
const LIST_BATCH_ROW_COUNT_MIN = 8;
const LIST_BATCH_ROW_COUNT_MAX = 128;
/**
 * A listing's turn of the event loop ends after LOOP_TURN_BUDGET_MS, checked every
 * LIST_STEPS_PER_CLOCK_CHECK steps (a step looks at one row or runs one statement). A fixed 256
 * steps a turn took 3-14 ms on this 2-core machine under load (1,000 prefixes: 6 ms a turn), and
 * every other request of the process waited that long: the bench's listing rows had the loop's
 * delay p99 at 9-25 ms while the loop's thread waited for a core only 3-11% of the time.
 */
const LIST_STEPS_PER_CLOCK_CHECK = 8;

/** Writes committed together at most; bounds one batch's latency and the savepoint count. */
export const METADATA_WRITE_BATCH_COUNT_MAX = 256;

/** Freezes a decoded version and everything in it: cached versions are shared by every reader. */
function deepFreeze<T>(value: T): T {
  // A Buffer (an inline object's bytes) cannot be frozen; nothing here writes into one.
  if (typeof value === "object" && value !== null && !Object.isFrozen(value) && !ArrayBuffer.isView(value)) {
    for (const item of Object.values(value)) deepFreeze(item);
    Object.freeze(value);
  }
  return value;
}

interface PendingWrite {
  body: () => unknown;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
}

/** Thrown out of a batch transaction to roll it back when one of its writes failed. */
class BatchWriteFailed extends Error {
  constructor() {
    super("a write of the batch failed");
  }
}

/**
 * The memory the latest versions kept decoded may take, counted as LATEST_VERSION_COST_BYTES
 * per entry plus its inline bytes: 8 MiB holds about 1,600 versions of 4 KiB objects with their
 * bytes, or 8,000 of larger ones; a key read again stays (GenerationalCache). A miss costs one
 * indexed read through the memory map (about 8 us with 4 KiB of inline bytes). 48 MiB held a
 * quarter of the bench's ~40,000 random 4 KiB keys and saved nothing measurable per GET (0.065
 * against 0.063 ms of server CPU), but its ~10,000 versions in the old generation made V8 run a
 * mark-compact every 100-150 ms during the 64 MiB PUTs that followed: 0.76 against 0.90 of MD5
 * (205 against 170 ms of server CPU per PUT), in the same hour (bench/PERFORMANCE.md).
 */
const LATEST_VERSION_CACHE_BYTES_MAX = 8 * MEBIBYTE;
/** What a decoded version costs in memory besides its inline bytes, about: the object, its strings, maps and chunk list, the cache's entry. */
const LATEST_VERSION_COST_BYTES = 1024;

function latestVersionCost(read: ReadAsOf<ObjectVersion>): number {
  return LATEST_VERSION_COST_BYTES + (read.value.inlineData?.length ?? 0);
}

/** "bucket/key": a bucket name has no '/', so the pair is unambiguous. */
function latestVersionCacheKey(bucket: string, key: string): string {
  return bucket + "/" + key;
}

/** Buckets kept decoded in memory at most; past it the cache starts over. */
const BUCKET_CACHE_ENTRIES_MAX = 10_000;

/**
 * A value read from the database and kept, with the commit it was read after: it shows nothing
 * newer, so it may be answered once that commit is durable, whatever commits came since.
 */
interface ReadAsOf<T> {
  value: T;
  committedSequence: number;
}

export class SqliteMetadataStore implements MetadataStore {
  readonly counters: SqliteMetadataStoreCounters = { writeCommits: 0, listRowsRead: 0, listStatementsRun: 0 };
  private readonly statements: Statements;
  private readonly clock: Clock;
  private readonly listTurnBudgetMs: number;
  private readonly pendingWrites: PendingWrite[] = [];
  private flushScheduled = false;
  /** Write batches committed since open, and how many of them are known durable. */
  private committedSequence = 0;
  private durableSequence = 0;
  private walSyncRunning = false;
  private walSyncDone: Promise<void> = Promise.resolve();
  private readonly durableWaiters: Array<{ sequence: number; resolve: () => void; reject: (error: unknown) => void }> = [];
  /** A failed WAL fsync: what was committed may be lost, so nothing is answered any more. */
  private walSyncFailure: unknown;
  /**
   * Buckets as last read, by name: every object request looks its bucket up first. Sound because
   * this connection is the only writer of the file (the WAL fsync scheme assumes it too): every
   * statement that changes a bucket row drops its entry, and an entry is only filled by a read,
   * which runs synchronously between write batches and so sees committed rows.
   */
  private readonly bucketCache = new Map<string, ReadAsOf<Bucket>>();
  /**
   * The latest version of recently read keys, by latestVersionCacheKey, frozen:
   * a GET or HEAD of a hot key costs no query. Sound for the same reasons as the bucket cache:
   * every statement that changes a row of object_versions (four call sites: insertVersion,
   * removeVersion, the tag and system-metadata updates) drops its key's entry in the same
   * synchronous step, and only reads fill it. Hits answer through `visibleAsOf`. Bounded by
   * memory, in two generations (GenerationalCache): keys read again stay. Inline bytes are kept
   * as views of shared slabs (ByteSlabs), copied again as an entry moves to the young generation.
   */
  private readonly inlineByteSlabs = new ByteSlabs();
  private readonly latestVersionCache = new GenerationalCache<string, ReadAsOf<ObjectVersion>>(
    LATEST_VERSION_CACHE_BYTES_MAX,
    latestVersionCost,
    (read) =>
      read.value.inlineData === undefined
        ? read
        : { ...read, value: Object.freeze({ ...read.value, inlineData: this.inlineByteSlabs.copy(read.value.inlineData) }) },
  );
  /**
   * Transaction wrappers made once: better-sqlite3 builds several functions per transaction()
   * call, which per write and per read was a measurable share of a small request's CPU.
   * `inTransaction` runs its body in a transaction, or in a savepoint inside one.
   */
  private readonly inTransaction: Database.Transaction<(body: () => unknown) => unknown>;
  private readonly checkpoints: BackgroundCheckpoints | undefined;

  private constructor(
    private readonly db: Database.Database,
    options: SqliteMetadataStoreOptions,
    /** The -wal file, fsynced after each commit; undefined when commits sync themselves (FULL). */
    private readonly walFd: number | undefined,
  ) {
    this.clock = options.clock ?? systemClock;
    this.listTurnBudgetMs = options.listTurnBudgetMs ?? LOOP_TURN_BUDGET_MS;
    this.statements = prepareStatements(db);
    this.inTransaction = db.transaction((body: () => unknown) => body());
    // Last: once registered, the checkpoint thread holds the file until close().
    this.checkpoints = BackgroundCheckpoints.start(db);
  }

  /** Opens (creating if needed) and migrates the database at `path`; ":memory:" for tests. */
  static open(path: string, options: SqliteMetadataStoreOptions = {}): SqliteMetadataStore {
    const db = new Database(path);
    let walFd: number | undefined;
    try {
      db.pragma("journal_mode = WAL");
      // FULL until the WAL file is open: every commit fsyncs inside COMMIT.
      db.pragma("synchronous = FULL");
      db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
      db.pragma(`mmap_size = ${MMAP_SIZE_BYTES}`);
      migrate(db);
      walFd = openWalFileForSync(db);
      // NORMAL: COMMIT leaves the WAL fsync to us (`syncWal`), done before any write resolves.
      if (walFd !== undefined) db.pragma("synchronous = NORMAL");
      return new SqliteMetadataStore(db, options, walFd);
    } catch (error) {
      if (walFd !== undefined) closeSync(walFd);
      db.close();
      throw error;
    }
  }

  /** What this connection runs with; tests check durability was not weakened. */
  durabilitySettings(): {
    journalMode: string;
    synchronous: "OFF" | "NORMAL" | "FULL" | "EXTRA";
    /** True when writes resolve only after an fdatasync of the WAL (synchronous is NORMAL then). */
    walSyncedBeforeAck: boolean;
    /** True when checkpoints run on the checkpoint thread, not in this connection's COMMITs. */
    checkpointsInBackground: boolean;
    /** SQLite's automatic checkpoint threshold in pages; 0 when it is off. */
    walAutocheckpointPages: number;
    schemaVersion: number;
  } {
    const synchronousLevels = ["OFF", "NORMAL", "FULL", "EXTRA"] as const;
    const synchronous = synchronousLevels[this.db.pragma("synchronous", { simple: true }) as number];
    assert(synchronous !== undefined, "synchronous pragma is one of four levels");
    return {
      journalMode: this.db.pragma("journal_mode", { simple: true }) as string,
      synchronous,
      walSyncedBeforeAck: this.walFd !== undefined,
      checkpointsInBackground: this.checkpoints !== undefined,
      walAutocheckpointPages: this.db.pragma("wal_autocheckpoint", { simple: true }) as number,
      schemaVersion: this.db.pragma("user_version", { simple: true }) as number,
    };
  }

  /** The query plan SQLite picks for a named listing statement; tests assert it seeks an index. */
  explainListingPlan(): string[] {
    const rows = this.db
      .prepare<[string, string], { detail: string }>(
        `EXPLAIN QUERY PLAN SELECT * FROM object_versions WHERE bucket = ? AND key > ?
         ORDER BY key, version_seq DESC LIMIT 1`,
      )
      .all("bucket", "key");
    return rows.map((row) => row.detail);
  }

  // ---- buckets ----

  async createBucket(bucket: Bucket): Promise<void> {
    await this.write(() => {
      const existing = this.statements.bucketGet.get(bucket.name);
      if (existing !== undefined) throw new BucketAlreadyExists(bucket.name, existing.owner_id);
      this.bucketCache.delete(bucket.name);
      this.statements.bucketInsert.run(
        bucket.name,
        bucket.ownerId,
        bucket.createdAtMs,
        bucket.region,
        bucket.versioning,
        bucket.acl,
        JSON.stringify(bucket.tags),
      );
    });
  }

  async getBucket(name: string): Promise<Bucket | undefined> {
    const cached = this.bucketCache.get(name);
    if (cached !== undefined) return this.visibleAsOf(cached);
    return this.visible(() => {
      const row = this.statements.bucketGet.get(name);
      if (row === undefined) return undefined;
      const read = { value: deepFreeze(bucketFromRow(row)), committedSequence: this.committedSequence };
      return setInBoundedCache(this.bucketCache, name, read, BUCKET_CACHE_ENTRIES_MAX).value;
    });
  }

  async listBuckets(): Promise<Bucket[]> {
    return this.visible(() => this.statements.bucketList.all().map(bucketFromRow));
  }

  async deleteBucket(name: string): Promise<void> {
    await this.write(() => {
      this.requireBucket(name);
      const hasVersion = this.statements.bucketHasVersion.get(name) !== undefined;
      const hasUpload = this.statements.bucketHasUpload.get(name) !== undefined;
      if (hasVersion || hasUpload) throw new BucketNotEmpty(name);
      this.bucketCache.delete(name);
      this.statements.bucketDelete.run(name);
    });
  }

  async updateBucket(name: string, change: Partial<Pick<Bucket, "versioning" | "acl" | "tags">>): Promise<void> {
    await this.write(() => {
      const bucket = this.requireBucket(name);
      this.bucketCache.delete(name);
      this.statements.bucketUpdate.run(
        change.versioning ?? bucket.versioning,
        change.acl ?? bucket.acl,
        change.tags === undefined ? bucket.tags_json : JSON.stringify(change.tags),
        name,
      );
    });
  }

  // ---- objects ----

  async putObjectVersion(version: ObjectVersion, condition?: WriteCondition): Promise<PutObjectResult> {
    return this.write(() => this.putVersionInTransaction(version, condition));
  }

  async getObjectVersion(bucket: string, key: string, versionId?: string): Promise<ObjectVersion | undefined> {
    const cacheKey = latestVersionCacheKey(bucket, key);
    const cached = versionId === undefined ? this.latestVersionCache.get(cacheKey) : undefined;
    if (cached !== undefined) return this.visibleAsOf(cached);
    return this.visible(() => {
      if (versionId !== undefined) {
        const raw = this.statements.versionByIdRaw.get(bucket, key, versionId);
        return raw === undefined ? undefined : versionFromRow(versionRowFromRaw(raw));
      }
      const raw = this.statements.versionLatestRaw.get(bucket, key);
      if (raw === undefined) return undefined;
      const version = versionFromRow(versionRowFromRaw(raw));
      if (version.inlineData !== undefined) version.inlineData = this.inlineByteSlabs.copy(version.inlineData);
      const read = { value: deepFreeze(version), committedSequence: this.committedSequence };
      return this.latestVersionCache.set(cacheKey, read).value;
    });
  }

  async getBucketAndObjectVersion(bucket: string, key: string, versionId?: string): Promise<BucketAndObjectVersion> {
    return bucketAndObjectVersion(this, bucket, key, versionId);
  }

  async deleteObject(input: {
    bucket: string;
    key: string;
    versionId?: string;
    newVersionId: string;
    nowMs: number;
    ownerId: string;
  }): Promise<DeleteObjectResult> {
    return this.write((): DeleteObjectResult => {
      const bucket = this.requireBucket(input.bucket);
      if (input.versionId !== undefined) {
        const removed = this.removeVersion(input.bucket, input.key, input.versionId, []);
        return { deleteMarker: undefined, removed };
      }
      switch (bucket.versioning) {
        case "Unversioned": {
          const removed = this.removeVersion(input.bucket, input.key, NULL_VERSION_ID, []);
          return { deleteMarker: undefined, removed };
        }
        case "Suspended": {
          const removed = this.removeVersion(input.bucket, input.key, NULL_VERSION_ID, []);
          const deleteMarker = this.insertDeleteMarker(input, NULL_VERSION_ID);
          return { deleteMarker, removed };
        }
        case "Enabled": {
          assert(input.newVersionId !== NULL_VERSION_ID, "a delete marker in an Enabled bucket needs a real version id");
          const deleteMarker = this.insertDeleteMarker(input, input.newVersionId);
          return { deleteMarker, removed: undefined };
        }
      }
    });
  }

  async setObjectTags(
    bucket: string,
    key: string,
    versionId: string | undefined,
    tags: Record<string, string>,
  ): Promise<string> {
    return this.write(() => {
      this.requireBucket(bucket);
      const row =
        versionId === undefined
          ? this.statements.versionLatest.get(bucket, key)
          : this.statements.versionById.get(bucket, key, versionId);
      // A delete marker has no tags: as the latest version it means the key does not exist.
      if (row === undefined || row.is_delete_marker === 1) {
        throw versionId === undefined ? new NoSuchKey(bucket, key) : new NoSuchVersion(bucket, key, versionId);
      }
      this.latestVersionCache.delete(latestVersionCacheKey(bucket, key));
      this.statements.versionSetTags.run(JSON.stringify(tags), row.version_seq);
      return row.version_id;
    });
  }

  async setObjectSystemMetadata(bucket: string, key: string, versionId: string, systemMetadata: Record<string, string>): Promise<void> {
    await this.write(() => {
      this.requireBucket(bucket);
      const row = this.statements.versionById.get(bucket, key, versionId);
      if (row === undefined || row.is_delete_marker === 1) throw new NoSuchVersion(bucket, key, versionId);
      this.latestVersionCache.delete(latestVersionCacheKey(bucket, key));
      this.statements.versionSetSystemMetadata.run(JSON.stringify(systemMetadata), row.version_seq);
    });
  }

  /**
   * One seek per key and per common prefix: each step asks the index for the latest version of
   * the first key at or after the cursor. A live key is emitted and the cursor moves just past it;
   * a key whose latest version is a delete marker is skipped (it does not count against maxKeys);
   * a key under a common prefix emits the prefix once and the cursor jumps to the prefix's
   * successor, so the keys below it are never read. A common prefix is emitted only when it holds
   * a live key, and only when it sorts after startAfter (otherwise it was on an earlier page).
   */
  /**
   * Seeks one row at a time while common prefixes come up (each is skipped with one seek), and
   * reads runs of plain keys in batches of growing size: one statement for a page of keys instead
   * of one per key. A batch that meets a common prefix is dropped at that row, so a delimiter
   * listing still reads about one row per prefix, and a batch never reads more than the page
   * still needs (plus the row that proves truncation).
   */
  async listObjects(input: ListObjectsInput): Promise<ListObjectsResult> {
    return this.readInTurns(this.objectListingSteps(input));
  }

  /** listObjects' walk, a step (one row looked at, or one statement run) per `yield`. */
  private *objectListingSteps(input: ListObjectsInput): Generator<void, ListObjectsResult, void> {
    this.requireBucket(input.bucket);
    const result: ListObjectsResult = { objects: [], commonPrefixes: [], isTruncated: false, nextStartAfter: undefined };
    if (input.maxKeys <= 0) return result;
    /** Where the next statement reads from; undefined when the index has no more rows to give. */
    let cursor: Cursor | undefined = this.listStart(input.prefix, input.startAfter);
    let entryCount = 0;
    let entryLast: string | undefined;
    /** Rows of the current batch not yet looked at; empty in seek mode. */
    let batch: ListedObjectRow[] = [];
    let batchIndex = 0;
    /** 0: seek mode (one row per statement); otherwise the next batch's row count. */
    let batchRowCount = 0;
    /** The key of the last row handled: rows of it that follow are older versions. */
    let keyLast: string | undefined;
    const truncated = (): ListObjectsResult => {
      result.isTruncated = true;
      result.nextStartAfter = entryLast;
      return result;
    };
    for (;;) {
      yield;
      let row: ListedObjectRow;
      if (batchIndex < batch.length) {
        row = batch[batchIndex++]!;
        if (row.key === keyLast) continue;
      } else {
        if (cursor === undefined) return result;
        if (batchRowCount > 0) {
          const limit = Math.min(batchRowCount, input.maxKeys - entryCount + 1);
          const statement = cursor.inclusive ? this.statements.listRangeFromInclusive : this.statements.listRangeFromExclusive;
          batch = this.countListReads(statement.all(input.bucket, cursor.key, limit)).map(listedRowFromRaw);
          batchIndex = 0;
          cursor = batch.length === limit ? { key: batch[batch.length - 1]!.key, inclusive: false } : undefined;
          batchRowCount = Math.min(batchRowCount * 2, LIST_BATCH_ROW_COUNT_MAX);
          continue;
        }
        const statement = cursor.inclusive ? this.statements.listLatestFromInclusive : this.statements.listLatestFromExclusive;
        const raw = this.countListRead(statement.get(input.bucket, cursor.key));
        if (raw === undefined) return result;
        row = listedRowFromRaw(raw);
        cursor = { key: row.key, inclusive: false };
      }
      if (!row.key.startsWith(input.prefix)) return result;
      keyLast = row.key;
      if (row.is_delete_marker === 1) continue;
      const commonPrefix = commonPrefixOf(row.key, input.prefix, input.delimiter);
      if (commonPrefix !== undefined) {
        // Back to seek mode: the rest of the batch may be inside this prefix.
        batch = [];
        batchIndex = 0;
        batchRowCount = 0;
        const successor = this.seekPastCommonPrefix(commonPrefix, row.key);
        cursor = successor === undefined ? undefined : { key: successor, inclusive: true };
        if (input.startAfter !== undefined && compareKeys(commonPrefix, input.startAfter) <= 0) continue;
        if (entryCount === input.maxKeys) return truncated();
        result.commonPrefixes.push(commonPrefix);
        entryCount += 1;
        entryLast = commonPrefix;
        continue;
      }
      if (entryCount === input.maxKeys) return truncated();
      result.objects.push(listedObjectFromRow(row));
      entryCount += 1;
      entryLast = row.key;
      if (batchRowCount === 0) batchRowCount = LIST_BATCH_ROW_COUNT_MIN;
    }
  }

  async listObjectVersions(input: ListObjectVersionsInput): Promise<ListObjectVersionsResult> {
    const page = await this.readInTurns(
      this.walkKeys<ListedVersion>({
        bucket: input.bucket,
        prefix: input.prefix,
        delimiter: input.delimiter,
        keyMarker: input.keyMarker,
        entryCountMax: input.maxKeys,
        seekKey: (cursor) => {
          const statement = cursor.inclusive
            ? this.statements.listVersionKeyFromInclusive
            : this.statements.listVersionKeyFromExclusive;
          return this.countListRead(statement.get(input.bucket, cursor.key))?.key;
        },
        entriesOfKey: (key, limit) =>
          this.statements.listVersionsOfKey.all(input.bucket, key, limit).map((row, index) => listedVersionFromRow(row, index === 0)),
        entriesOfMarkerKey: (key, limit) => {
          if (input.versionIdMarker === undefined) return [];
          const marker = this.statements.versionById.get(input.bucket, key, input.versionIdMarker);
          // A marker version deleted since the previous page: continue with the next key.
          if (marker === undefined) return [];
          // Everything older than the marker version is not the latest: the marker is newer.
          return this.statements.listVersionsOfKeyOlderThan
            .all(input.bucket, key, marker.version_seq, limit)
            .map((row) => listedVersionFromRow(row, false));
        },
        markerOf: (entry) => entry.versionId,
      }),
    );
    return versionsPageResult(page);
  }

  // ---- multipart ----

  async createMultipartUpload(upload: MultipartUpload): Promise<void> {
    await this.write(() => {
      this.requireBucket(upload.bucket);
      this.statements.uploadInsert.run({
        upload_id: upload.uploadId,
        bucket: upload.bucket,
        key: upload.key,
        initiated_at_ms: upload.initiatedAtMs,
        owner_id: upload.ownerId,
        storage_class: upload.storageClass,
        content_type: upload.contentType ?? null,
        system_metadata_json: JSON.stringify(upload.systemMetadata),
        user_metadata_json: JSON.stringify(upload.userMetadata),
        tags_json: JSON.stringify(upload.tags),
        checksum_algorithm: upload.checksumAlgorithm ?? null,
      });
    });
  }

  async getMultipartUpload(bucket: string, key: string, uploadId: string): Promise<MultipartUpload | undefined> {
    return this.visible(() => {
      const row = this.statements.uploadGet.get(uploadId);
      if (row === undefined || row.bucket !== bucket || row.key !== key) return undefined;
      return uploadFromRow(row);
    });
  }

  async putPart(bucket: string, key: string, part: Part): Promise<Part | undefined> {
    return this.write(() => {
      this.requireUpload(bucket, key, part.uploadId);
      const replacedRow = this.statements.partGet.get(part.uploadId, part.partNumber);
      const replaced = replacedRow === undefined ? undefined : partFromRow(replacedRow);
      this.statements.partUpsert.run({
        upload_id: part.uploadId,
        part_number: part.partNumber,
        size_bytes: part.sizeBytes,
        etag: part.etag,
        last_modified_ms: part.lastModifiedMs,
        checksum_json: encodeOptional(part.checksum),
        chunks_json: encodeChunks(part.chunks),
      });
      if (replaced !== undefined) this.queueGarbage(replaced.chunks, part.chunks);
      return replaced;
    });
  }

  async listParts(uploadId: string, partNumberMarker: number, maxParts: number): Promise<{ parts: Part[]; isTruncated: boolean }> {
    return this.read(() => {
      if (this.statements.uploadGet.get(uploadId) === undefined) throw new NoSuchUpload(uploadId);
      const rows = this.statements.partsOfUploadAfter.all(uploadId, partNumberMarker, Math.max(0, maxParts) + 1);
      const isTruncated = rows.length > maxParts;
      return { parts: rows.slice(0, Math.max(0, maxParts)).map(partFromRow), isTruncated };
    });
  }

  async getParts(uploadId: string): Promise<Part[]> {
    return this.read(() => {
      if (this.statements.uploadGet.get(uploadId) === undefined) throw new NoSuchUpload(uploadId);
      return this.statements.partsOfUpload.all(uploadId).map(partFromRow);
    });
  }

  async completeMultipartUpload(uploadId: string, version: ObjectVersion, condition?: WriteCondition): Promise<PutObjectResult> {
    return this.write(() => {
      // All steps commit together or not at all: a crash (or a failed condition) leaves the
      // upload and its parts as they were, so the client may retry the completion.
      this.requireUpload(version.bucket, version.key, uploadId);
      const parts = this.statements.partsOfUpload.all(uploadId).map(partFromRow);
      this.statements.partsDelete.run(uploadId);
      this.statements.uploadDelete.run(uploadId);
      // Parts the client left out of the completion are garbage; used ones now belong to the version.
      this.queueGarbage(
        parts.flatMap((part) => part.chunks),
        version.chunks,
      );
      return this.putVersionInTransaction(version, condition);
    });
  }

  async abortMultipartUpload(bucket: string, key: string, uploadId: string): Promise<void> {
    await this.write(() => {
      this.requireUpload(bucket, key, uploadId);
      const parts = this.statements.partsOfUpload.all(uploadId).map(partFromRow);
      this.statements.partsDelete.run(uploadId);
      this.statements.uploadDelete.run(uploadId);
      this.queueGarbage(
        parts.flatMap((part) => part.chunks),
        [],
      );
    });
  }

  /** Uploads in (key, upload id) order; upload ids are time-ordered, so that is initiation order per key. */
  async listMultipartUploads(input: ListMultipartUploadsInput): Promise<ListMultipartUploadsResult> {
    const page = await this.readInTurns(
      this.walkKeys<MultipartUpload>({
        bucket: input.bucket,
        prefix: input.prefix,
        delimiter: input.delimiter,
        keyMarker: input.keyMarker,
        entryCountMax: input.maxUploads,
        seekKey: (cursor) => {
          const statement = cursor.inclusive
            ? this.statements.listUploadKeyFromInclusive
            : this.statements.listUploadKeyFromExclusive;
          return this.countListRead(statement.get(input.bucket, cursor.key))?.key;
        },
        entriesOfKey: (key, limit) => this.statements.listUploadsOfKey.all(input.bucket, key, limit).map(uploadFromRow),
        entriesOfMarkerKey: (key, limit) =>
          input.uploadIdMarker === undefined
            ? []
            : this.statements.listUploadsOfKeyAfter.all(input.bucket, key, input.uploadIdMarker, limit).map(uploadFromRow),
        markerOf: (entry) => entry.uploadId,
      }),
    );
    return uploadsPageResult(page);
  }

  async listMultipartUploadsInitiatedBefore(timeMs: number, limit: number): Promise<MultipartUpload[]> {
    return this.visible(() => this.statements.uploadsInitiatedBefore.all(timeMs, Math.max(0, limit)).map(uploadFromRow));
  }

  // ---- garbage chunks ----

  async takeGarbageChunks(limit: number): Promise<GarbageChunk[]> {
    return this.visible(() => this.statements.garbageOldest.all(Math.max(0, limit)).map((row) => ({
      garbageId: row.garbage_id,
      chunk: {
        volumeId: row.volume_id as VolumeId,
        needleId: row.needle_id as NeedleId,
        sizeBytes: row.size_bytes,
        crc32: row.crc32,
      },
      queuedAtMs: row.queued_at_ms,
    })));
  }

  async removeGarbageChunks(garbageIds: number[]): Promise<void> {
    await this.write(() => {
      for (const garbageId of garbageIds) this.statements.garbageDelete.run(garbageId);
    });
  }

  // ---- users and keys ----

  async createUser(user: User): Promise<void> {
    await this.write(() => {
      if (this.statements.userGet.get(user.userId) !== undefined) throw new UserAlreadyExists(user.userId);
      this.statements.userInsert.run(user.userId, user.displayName, user.createdAtMs, user.isRoot ? 1 : 0);
    });
  }

  async getUser(userId: string): Promise<User | undefined> {
    return this.visible(() => {
      const row = this.statements.userGet.get(userId);
      return row === undefined ? undefined : userFromRow(row);
    });
  }

  async listUsers(): Promise<User[]> {
    return this.visible(() => this.statements.userList.all().map(userFromRow));
  }

  async deleteUser(userId: string): Promise<void> {
    await this.write(() => {
      if (this.statements.userGet.get(userId) === undefined) throw new NoSuchUser(userId);
      this.statements.accessKeysOfUserDelete.run(userId);
      this.statements.userDelete.run(userId);
    });
  }

  async addAccessKey(key: AccessKey): Promise<void> {
    await this.write(() => {
      if (this.statements.userGet.get(key.userId) === undefined) throw new NoSuchUser(key.userId);
      if (this.statements.accessKeyGet.get(key.accessKeyId) !== undefined) throw new AccessKeyAlreadyExists(key.accessKeyId);
      this.statements.accessKeyInsert.run(key.accessKeyId, key.userId, key.secretSealed, key.createdAtMs);
    });
  }

  async getAccessKey(accessKeyId: string): Promise<AccessKey | undefined> {
    return this.visible(() => {
      const row = this.statements.accessKeyGet.get(accessKeyId);
      return row === undefined ? undefined : accessKeyFromRow(row);
    });
  }

  async listAccessKeys(userId: string): Promise<AccessKey[]> {
    return this.visible(() => this.statements.accessKeysOfUser.all(userId).map(accessKeyFromRow));
  }

  async removeAccessKey(accessKeyId: string): Promise<void> {
    await this.write(() => {
      const result = this.statements.accessKeyDelete.run(accessKeyId);
      if (result.changes === 0) throw new NoSuchAccessKey(accessKeyId);
    });
  }

  async close(): Promise<void> {
    // Writes already accepted are committed (and their promises settled) before the file closes.
    while (this.pendingWrites.length > 0 && this.db.open) this.flushWrites();
    while (this.walSyncRunning) await this.walSyncDone;
    await this.checkpoints?.close();
    if (this.db.open) this.db.close();
    if (this.walFd !== undefined) closeSync(this.walFd);
  }

  // ---- inside a transaction ----

  /**
   * Group commit: writes that arrive in the same turn of the event loop run in one IMMEDIATE
   * transaction, each inside its own savepoint (better-sqlite3 nests transactions that way), and
   * share one durable COMMIT — one WAL fsync for the batch instead of one per request, with
   * synchronous=FULL kept. A write that throws rolls back to its savepoint and fails alone; the
   * others commit. No promise resolves before the COMMIT that makes its write durable.
   */
  private write<T>(body: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.pendingWrites.push({ body, resolve: resolve as (value: unknown) => void, reject });
      // While the WAL is being fsynced, writes wait and commit together once it is done: they
      // would wait for the next fsync anyway, and one commit of many writes writes each page once.
      if (!this.flushScheduled && !this.walSyncRunning) this.scheduleFlush();
    });
  }

  private scheduleFlush(): void {
    this.flushScheduled = true;
    setImmediate(() => this.flushWrites());
  }

  private flushWrites(): void {
    this.flushScheduled = false;
    const batch = this.pendingWrites.splice(0, METADATA_WRITE_BATCH_COUNT_MAX);
    if (this.pendingWrites.length > 0) this.scheduleFlush();
    if (batch.length === 0) return;
    // First without savepoints (two statements per write): nearly every write succeeds. When
    // one throws, the whole transaction rolls back and the batch runs again with a savepoint
    // per write, so that a failing write undoes only its own changes. Write bodies only touch
    // the database (and drop cache entries), so running them again is safe.
    if (!this.commitBatch(batch, { savepoints: false })) this.commitBatch(batch, { savepoints: true });
  }

  /**
   * Commits `batch` in one transaction and settles its writes once it is durable. Without
   * savepoints a write that throws rolls the whole transaction back: then nothing is settled and
   * the answer is false. With them each write's failure is its own.
   */
  private commitBatch(batch: PendingWrite[], options: { savepoints: boolean }): boolean {
    const outcomes: Array<{ ok: true; value: unknown } | { ok: false; error: unknown }> = [];
    try {
      this.inTransaction.immediate(() => {
        for (const entry of batch) {
          try {
            outcomes.push({ ok: true, value: options.savepoints ? this.inTransaction(entry.body) : entry.body() });
          } catch (error) {
            if (!options.savepoints) throw new BatchWriteFailed();
            outcomes.push({ ok: false, error });
          }
        }
      });
      this.counters.writeCommits += 1;
    } catch (error) {
      if (error instanceof BatchWriteFailed) return false;
      // The COMMIT itself failed (disk error, busy past the timeout): nothing in the batch is durable.
      for (const entry of batch) entry.reject(error);
      return true;
    }
    this.settleWhenDurable(batch, outcomes);
    return true;
  }

  private settleWhenDurable(batch: PendingWrite[], outcomes: Array<{ ok: true; value: unknown } | { ok: false; error: unknown }>): void {
    this.committedSequence += 1;
    const settle = () =>
      batch.forEach((entry, index) => {
        const outcome = outcomes[index]!;
        if (outcome.ok) entry.resolve(outcome.value);
        else entry.reject(outcome.error);
      });
    // Even a write that failed alone waits: its error may rest on rows the batch committed.
    this.untilDurable(this.committedSequence).then(settle, (error: unknown) => {
      for (const entry of batch) entry.reject(error);
    });
  }

  /**
   * Resolves once every commit up to `sequence` is durable. Commits that arrive while a WAL
   * fsync runs share the next one, so fsyncs never outnumber batches and usually cover several.
   */
  private untilDurable(sequence: number): Promise<void> {
    if (this.walSyncFailure !== undefined) return Promise.reject(this.walSyncFailure);
    if (this.walFd === undefined || sequence <= this.durableSequence) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      this.durableWaiters.push({ sequence, resolve, reject });
      if (!this.walSyncRunning) this.syncWal();
    });
  }

  private syncWal(): void {
    const walFd = this.walFd!;
    const target = this.committedSequence;
    this.walSyncRunning = true;
    this.walSyncDone = new Promise<void>((done) => {
      fdatasync(walFd, (error) => {
        this.walSyncRunning = false;
        done();
        if (error !== null) {
          // After a failed fsync the kernel may have dropped the dirty pages: what the WAL holds
          // is unknown, so every waiting and later write and read fails rather than lie.
          this.walSyncFailure = error;
          for (const waiter of this.durableWaiters.splice(0)) waiter.reject(error);
          // Writes held back during this fsync would only wait for the next one: fail them now.
          if (!this.flushScheduled) for (const entry of this.pendingWrites.splice(0)) entry.reject(error);
          return;
        }
        this.durableSequence = Math.max(this.durableSequence, target);
        const stillWaiting = this.durableWaiters.filter((waiter) => waiter.sequence > this.durableSequence);
        for (const waiter of this.durableWaiters) if (waiter.sequence <= this.durableSequence) waiter.resolve();
        this.durableWaiters.splice(0, this.durableWaiters.length, ...stillWaiting);
        if (stillWaiting.length > 0) this.syncWal();
        else if (this.pendingWrites.length > 0 && !this.flushScheduled) this.scheduleFlush();
      });
    });
  }

  /**
   * Runs a read now and answers once every commit it could have seen is durable: a read never
   * shows a write that a power loss could still undo. Usually nothing is pending and it answers
   * at once; under writes it waits for at most the fsync in flight plus the next.
   */
  private async visible<T>(body: () => T): Promise<T> {
    let value: T;
    try {
      value = body();
    } catch (error) {
      // What a failed read reveals (NoSuchBucket after a delete) must be durable as well.
      await this.untilDurable(this.committedSequence);
      throw error;
    }
    const sequence = this.committedSequence;
    if (this.mustAwaitDurability(sequence)) await this.untilDurable(sequence);
    return value;
  }

  /** Whether an answer that may show commits up to `sequence` waits for the WAL fsync (or fails) first. */
  private mustAwaitDurability(sequence: number): boolean {
    return sequence > this.durableSequence || this.walSyncFailure !== undefined;
  }

  /**
   * A value kept from an earlier read, answered once the commit it was read after is durable:
   * under writes, a hot bucket or key is not held back by the fsync of commits that did not
   * touch it (every PUT looks its bucket up first, and waited for the WAL fsync in flight).
   */
  private async visibleAsOf<T>(read: ReadAsOf<T>): Promise<T> {
    if (this.mustAwaitDurability(read.committedSequence)) await this.untilDurable(read.committedSequence);
    return read.value;
  }

  /**
   * Runs a walk written as a generator (it yields between its steps) in turns of the event loop
   * of about listTurnBudgetMs, each turn a read transaction of its own, answered as `visible`.
   * Between turns other requests run, and writes may land: a walk carries a cursor from turn to
   * turn, as a continuation token does from page to page.
   */
  private readInTurns<T>(steps: Generator<void, T, void>): Promise<T> {
    return runInTurns(steps, { budgetMs: this.listTurnBudgetMs, stepsPerClockCheck: LIST_STEPS_PER_CLOCK_CHECK, turn: (runSteps) => this.read(runSteps) });
  }

  /** A read transaction, so a multi-statement listing sees one snapshot; answered as `visible`. */
  private read<T>(body: () => T): Promise<T> {
    return this.visible(() => this.inTransaction.deferred(body) as T);
  }

  private requireBucket(name: string): BucketRow {
    const row = this.statements.bucketGet.get(name);
    if (row === undefined) throw new NoSuchBucket(name);
    return row;
  }

  /**
   * The bucket's versioning state, from the cache when a read has filled it: every statement in
   * this write batch that changed the bucket dropped its entry first, so an entry is current.
   */
  private requireBucketVersioning(name: string): VersioningState {
    return this.bucketCache.get(name)?.value.versioning ?? this.requireBucket(name).versioning;
  }

  /** The upload, which must belong to bucket/key: an id used under another key does not exist there. */
  private requireUpload(bucket: string, key: string, uploadId: string): UploadRow {
    const row = this.statements.uploadGet.get(uploadId);
    if (row === undefined || row.bucket !== bucket || row.key !== key) throw new NoSuchUpload(uploadId);
    return row;
  }

  /**
   * The version id decides between add and replace, because the caller minted it from the bucket
   * state it read: "null" replaces the null version (whatever the state now: a bucket enabled
   * since then keeps one null version), any other id adds a version (a bucket suspended since
   * then keeps its real versions anyway). Only an Unversioned bucket can never hold a real id.
   */
  private putVersionInTransaction(version: ObjectVersion, condition: WriteCondition | undefined): PutObjectResult {
    const versioning = this.requireBucketVersioning(version.bucket);
    this.checkCondition(version.bucket, version.key, condition);
    const removed: ObjectVersion[] = [];
    if (version.versionId === NULL_VERSION_ID) {
      const replaced = this.removeVersion(version.bucket, version.key, NULL_VERSION_ID, version.chunks);
      if (replaced !== undefined) removed.push(replaced);
    } else {
      assert(versioning !== "Unversioned", "an Unversioned bucket holds only the null version");
    }
    this.insertVersion(version);
    return { removed };
  }

  private checkCondition(bucket: string, key: string, condition: WriteCondition | undefined): void {
    if (condition === undefined) return;
    if (condition.ifNoneMatchAny !== true && condition.ifMatchEtag === undefined) return;
    const latest = this.statements.versionLatest.get(bucket, key);
    const current = latest !== undefined && latest.is_delete_marker === 0 ? latest : undefined;
    if (condition.ifNoneMatchAny === true && current !== undefined) throw new PreconditionFailed(bucket, key);
    if (condition.ifMatchEtag !== undefined && (current === undefined || current.etag !== condition.ifMatchEtag)) {
      throw new PreconditionFailed(bucket, key);
    }
  }

  private insertVersion(version: ObjectVersion): void {
    this.latestVersionCache.delete(latestVersionCacheKey(version.bucket, version.key));
    this.statements.versionInsert.run(...versionInsertValues(version, version.isDeleteMarker ? (1 as const) : (0 as const)));
  }

  private insertDeleteMarker(input: { bucket: string; key: string; nowMs: number; ownerId: string }, versionId: string): ObjectVersion {
    const deleteMarker: ObjectVersion = {
      bucket: input.bucket,
      key: input.key,
      versionId,
      isDeleteMarker: true,
      sizeBytes: 0,
      etag: "",
      lastModifiedMs: input.nowMs,
      ownerId: input.ownerId,
      storageClass: "STANDARD",
      contentType: undefined,
      systemMetadata: {},
      userMetadata: {},
      tags: {},
      checksum: undefined,
      partSizesBytes: undefined,
      chunks: [],
    };
    this.insertVersion(deleteMarker);
    return deleteMarker;
  }

  /** Removes one version and queues its chunks, except those `chunksKept` still uses. */
  private removeVersion(bucket: string, key: string, versionId: string, chunksKept: readonly ChunkRef[]): ObjectVersion | undefined {
    const row = this.statements.versionById.get(bucket, key, versionId);
    if (row === undefined) return undefined;
    this.latestVersionCache.delete(latestVersionCacheKey(bucket, key));
    this.statements.versionDelete.run(row.version_seq);
    const removed = versionFromRow(row);
    this.queueGarbage(removed.chunks, chunksKept);
    return removed;
  }

  /**
   * Queues `chunks` for deletion on the data nodes, skipping needles that `chunksKept` still
   * references (a completed upload's version reuses its parts' needles). Runs inside the caller's
   * transaction: the metadata change and the garbage entries commit together.
   */
  private queueGarbage(chunks: readonly ChunkRef[], chunksKept: readonly ChunkRef[]): void {
    const needlesKept = new Set(chunksKept.map((chunk) => chunk.needleId));
    const queuedAtMs = this.clock.nowMs();
    for (const chunk of chunks) {
      if (needlesKept.has(chunk.needleId)) continue;
      this.statements.garbageInsert.run(chunk.volumeId, chunk.needleId, chunk.sizeBytes, chunk.crc32, queuedAtMs);
    }
  }

  // ---- listing ----

  private countListRead<T>(row: T | undefined): T | undefined {
    this.counters.listStatementsRun += 1;
    if (row !== undefined) this.counters.listRowsRead += 1;
    return row;
  }

  private countListReads<T>(rows: T[]): T[] {
    this.counters.listStatementsRun += 1;
    this.counters.listRowsRead += rows.length;
    return rows;
  }

  /**
   * Where to seek to skip every key under `commonPrefix`. Asserted to be past the key just read,
   * or a listing would land on the same key again and never end.
   */
  private seekPastCommonPrefix(commonPrefix: string, keyRead: string): string | undefined {
    const successor = prefixSuccessor(commonPrefix);
    assert(successor === undefined || compareKeys(successor, keyRead) > 0, "a common prefix successor sorts after its keys");
    return successor;
  }

  /** The first cursor of a listing: the prefix itself, or just after startAfter when that is later. */
  private listStart(prefix: string, startAfter: string | undefined): Cursor {
    if (startAfter !== undefined && compareKeys(startAfter, prefix) >= 0) return { key: startAfter, inclusive: false };
    return { key: prefix, inclusive: true };
  }

  /**
   * The walk shared by ListObjectVersions and ListMultipartUploads (AWS marker semantics): with a
   * key marker alone, start after every entry of that key; with an entry marker too, first finish
   * that key after the marker entry. Then one seek per key or common prefix, as in listObjects.
   * Every entry (version or upload) and every common prefix counts against entryCountMax.
   * A generator: it yields after each seek and its entries, for readInTurns to cut it in turns.
   */
  private *walkKeys<Entry extends { key: string }>(walk: {
    /** Checked first: NoSuchBucket. */
    bucket: string;
    prefix: string;
    delimiter: string | undefined;
    keyMarker: string | undefined;
    entryCountMax: number;
    seekKey(cursor: Cursor): string | undefined;
    entriesOfKey(key: string, limit: number): Entry[];
    entriesOfMarkerKey(key: string, limit: number): Entry[];
    markerOf(entry: Entry): string;
  }): Generator<void, KeyWalkPage<Entry>, void> {
    this.requireBucket(walk.bucket);
    const page = {
      entries: [] as Entry[],
      commonPrefixes: [] as string[],
      isTruncated: false,
      nextKeyMarker: undefined as string | undefined,
      nextEntryMarker: undefined as string | undefined,
    };
    if (walk.entryCountMax <= 0) return page;
    let entryCount = 0;
    let last: { key: string; entryMarker: string | undefined } | undefined;
    // Takes entries of one key until the page is full; false when a further entry had no room.
    const take = (entries: Entry[]): boolean => {
      this.countListReads(entries);
      for (const entry of entries) {
        if (entryCount === walk.entryCountMax) return false;
        page.entries.push(entry);
        entryCount += 1;
        last = { key: entry.key, entryMarker: walk.markerOf(entry) };
      }
      return true;
    };
    const finish = () => {
      if (page.isTruncated && last !== undefined) {
        page.nextKeyMarker = last.key;
        page.nextEntryMarker = last.entryMarker;
      }
      return page;
    };

    let cursor: Cursor | undefined = this.listStart(walk.prefix, walk.keyMarker);
    const marker = walk.keyMarker;
    // Resume inside the marker key, unless that key rolls up into a common prefix, which then
    // sorts at or before the marker and was listed (or skipped) on an earlier page.
    if (marker !== undefined && !cursor.inclusive && marker.startsWith(walk.prefix)) {
      if (commonPrefixOf(marker, walk.prefix, walk.delimiter) === undefined) {
        if (!take(walk.entriesOfMarkerKey(marker, walk.entryCountMax + 1))) {
          page.isTruncated = true;
          return finish();
        }
      }
    }
    while (cursor !== undefined) {
      yield;
      const key = walk.seekKey(cursor);
      if (key === undefined || !key.startsWith(walk.prefix)) break;
      const commonPrefix = commonPrefixOf(key, walk.prefix, walk.delimiter);
      if (commonPrefix !== undefined) {
        const successor = this.seekPastCommonPrefix(commonPrefix, key);
        cursor = successor === undefined ? undefined : { key: successor, inclusive: true };
        if (marker !== undefined && compareKeys(commonPrefix, marker) <= 0) continue;
        if (entryCount === walk.entryCountMax) {
          page.isTruncated = true;
          break;
        }
        page.commonPrefixes.push(commonPrefix);
        entryCount += 1;
        last = { key: commonPrefix, entryMarker: undefined };
        continue;
      }
      if (!take(walk.entriesOfKey(key, walk.entryCountMax - entryCount + 1))) {
        page.isTruncated = true;
        break;
      }
      cursor = { key, inclusive: false };
    }
    return finish();
  }
}
