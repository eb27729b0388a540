/**
 * The PostgreSQL engine of the metadata store: for several gateways sharing one store, and,
 * through the same wire protocol, for the distributed SQL engines built on it. Same semantics
 * as the SQLite engine (../sqlite/sqlite-metadata-store.ts); the contract suite runs on both.
 *
 * Durability: commits run with the server's synchronous_commit, which must be `on` or stronger
 * (PostgreSQL's default); `open` refuses a server with fsync or synchronous_commit off, because
 * then a committed object could vanish on power loss (DESIGN "Lessons"). Never weaken it here;
 * batch commits instead.
 *
 * Every interface method is one statement or one transaction. Reads that need one snapshot
 * across statements run REPEATABLE READ READ ONLY; writes run READ COMMITTED.
 *
 * Concurrency (several gateways, each with a pool): writers are serialized where the interface
 * promises atomicity, with transaction-scoped advisory locks, taken always in this order:
 *   upload  (exclusive for complete/abort, shared for putPart)
 *   bucket  (exclusive for deleteBucket, shared for everything that adds rows to a bucket)
 *   key     (exclusive, for every write to the versions of one (bucket, key))
 *   part    (exclusive, for putPart of one (upload, partNumber))
 * A consistent order means no lock cycle, so no deadlock between our own transactions.
 *
 * Why a per-key advisory lock and not `SELECT ... FOR UPDATE` on the latest row: the race that
 * matters most, two `If-None-Match: *` writers on a NEW key, has no row to lock; both would see
 * "absent" and both would insert (an Enabled bucket gives them different version ids, so no
 * unique index stops the second). The advisory lock names the key, present or not. Under READ
 * COMMITTED each statement takes a fresh snapshot, and the lock is taken by its own statement
 * before the condition is read, so the reader sees every write committed by the previous holder
 * (PostgreSQL makes a commit visible before it releases the committing transaction's locks).
 * Why not SERIALIZABLE: it would need a retry loop on every write and its predicate locks on
 * index pages make writers of neighbouring keys fail each other; the advisory lock costs one
 * in-memory lock per write and never aborts. (The transaction helper still retries the
 * serialization-failure and deadlock codes, bounded, for engines that run everything
 * serializable.) The bucket lock stops a deleteBucket from passing its emptiness check while a
 * put into that bucket is in flight, without writing a shared row lock on the hot bucket row.
 *
 * Listing: listObjects runs ONE recursive query per page: a loose index scan over
 * `(bucket, key, version_seq DESC)` whose every step is one index seek to the latest version of
 * the next key, jumping past a whole common prefix in one seek (see listLatestWalk). Its cost
 * follows the page (rows it visits: the page, one per common prefix, plus keys whose latest
 * version is a delete marker), not the bucket, and it costs one round trip instead of one per
 * key. The versions and uploads listings use one seek per key or common prefix inside one
 * REPEATABLE READ transaction, as the SQLite engine does.
 *
 * Prepared statements: every statement has a name, so each pooled connection parses and plans
 * it once. (A PgBouncer in transaction mode needs max_prepared_statements set for this.)
 * Keys cannot contain U+0000: PostgreSQL text cannot hold it (S3 keys are UTF-8 without NUL in
 * practice; the S3 layer must reject it before it gets here).
 */
import pg from "pg";
import {
  accessKeyFromRow,
  bucketFromRow,
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
  versionInsertValues,
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
import type { PoolClient, QueryResultRow } from "pg";
import { assert, log, systemClock } from "../../base/index.js";
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
import { MIGRATIONS_TABLE, POSTGRES_MIGRATIONS, POSTGRES_SCHEMA_VERSION_LATEST } from "./schema.js";

/** Connections per store (per gateway process); PostgreSQL's own default max_connections is 100. */
const POOL_SIZE_DEFAULT = 10;
/**
 * A gateway that dies or stalls inside a transaction holds its advisory locks; the server ends
 * such a session after this long, so one lost gateway cannot block a key's writers forever.
 */
const IDLE_IN_TRANSACTION_TIMEOUT_MS = 30_000;
/** Waiting this long for a pooled connection means the store is overloaded or unreachable. */
const CONNECTION_TIMEOUT_MS = 10_000;
/** Attempts of one transaction that fails with a serialization failure or a deadlock. */
const TRANSACTION_ATTEMPT_COUNT_MAX = 5;
/** Schema names we create tables in: a plain lower-case identifier, never quoted user input. */
const SCHEMA_NAME_PATTERN = /^[a-z_][a-z0-9_]{0,62}$/;
const SCHEMA_NAME_DEFAULT = "cairn";

// SQLSTATE codes we act on.
const UNIQUE_VIOLATION = "23505";
const FOREIGN_KEY_VIOLATION = "23503";
const SERIALIZATION_FAILURE = "40001";
const DEADLOCK_DETECTED = "40P01";

const INT8_TYPE_OID = 20;

/** BIGINT arrives as text (it can pass 2^53); ours are sizes, ids and milliseconds, all below. */
function parseInt8(text: string): number {
  const value = Number(text);
  assert(Number.isSafeInteger(value), `a BIGINT column holds ${text}, past Number.MAX_SAFE_INTEGER`);
  return value;
}

const typeParsers: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: "text" | "binary") =>
    oid === INT8_TYPE_OID && format !== "binary"
      ? parseInt8
      : pg.types.getTypeParser(oid, format ?? "text")) as pg.CustomTypesConfig["getTypeParser"],
};

export interface PostgresMetadataStoreOptions {
  /** Connections in this store's pool. */
  poolSize?: number;
  /** The schema holding Cairn's tables (created if missing); default "cairn". */
  schema?: string;
  /** Stamps garbage chunks with their queue time. */
  clock?: Clock;
}

/** Counters that tests read to prove listing cost follows the page. */
export interface PostgresMetadataStoreCounters {
  /** Rows PostgreSQL returned to the listing methods, summed since open. */
  listRowsRead: number;
  /** Statements the listing methods executed, summed since open. */
  listStatementsRun: number;
}

// ---- rows as stored ----

/** Where the next seek of a listing starts. */
interface Cursor {
  key: string;
  inclusive: boolean;
}

/**
 * The smallest string after `key`: PostgreSQL text holds no U+0000, so nothing sorts between
 * `key` and `key + "\u0001"` in byte order. Lets a "key > k" seek be written "key >= k'".
 */
function keyAfter(key: string): string {
  return key + "\u0001";
}

function sqlStateOf(error: unknown): string | undefined {
  if (typeof error !== "object" || error === null || !("code" in error)) return undefined;
  const code = (error as { code: unknown }).code;
  return typeof code === "string" ? code : undefined;
}

/** A statement with a name: each pooled connection prepares it once. */
interface Statement {
  name: string;
  text: string;
}

function prepareStatements(schema: string) {
  const s = schema;
  const versionColumns = `version_seq, bucket, key, version_id, is_delete_marker, size_bytes, etag,
    last_modified_ms, owner_id, storage_class, content_type, system_metadata_json, user_metadata_json,
    tags_json, checksum_json, part_sizes_json, chunks_json`;
  const statement = (name: string, text: string): Statement => ({ name: `cairn_${name}`, text });
  return {
    // locks (see the file comment for their order); hashtextextended maps a name to a bigint
    lockShared: statement("lock_shared", "SELECT pg_advisory_xact_lock_shared(hashtextextended($1, 0))"),
    lockExclusive: statement("lock_exclusive", "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))"),
    // Two locks in one round trip; PostgreSQL evaluates a target list left to right.
    lockSharedThenExclusive: statement(
      "lock_shared_then_exclusive",
      "SELECT pg_advisory_xact_lock_shared(hashtextextended($1, 0)) AS first, pg_advisory_xact_lock(hashtextextended($2, 0)) AS second",
    ),

    // buckets
    bucketInsert: statement(
      "bucket_insert",
      `INSERT INTO ${s}.buckets (name, owner_id, created_at_ms, region, versioning, acl, tags_json)
       VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (name) DO NOTHING`,
    ),
    bucketGet: statement("bucket_get", `SELECT * FROM ${s}.buckets WHERE name = $1`),
    bucketList: statement("bucket_list", `SELECT * FROM ${s}.buckets ORDER BY name`),
    bucketDelete: statement("bucket_delete", `DELETE FROM ${s}.buckets WHERE name = $1`),
    // Per-field COALESCE: two gateways changing different fields at once both keep their change.
    bucketUpdate: statement(
      "bucket_update",
      `UPDATE ${s}.buckets SET versioning = COALESCE($2, versioning), acl = COALESCE($3, acl),
         tags_json = COALESCE($4, tags_json) WHERE name = $1 RETURNING name`,
    ),
    bucketHasVersion: statement("bucket_has_version", `SELECT 1 AS found FROM ${s}.object_versions WHERE bucket = $1 LIMIT 1`),
    bucketHasUpload: statement("bucket_has_upload", `SELECT 1 AS found FROM ${s}.multipart_uploads WHERE bucket = $1 LIMIT 1`),

    // object versions
    versionInsert: statement(
      "version_insert",
      `INSERT INTO ${s}.object_versions (bucket, key, version_id, is_delete_marker, size_bytes, etag, last_modified_ms,
         owner_id, storage_class, content_type, system_metadata_json, user_metadata_json, tags_json, checksum_json,
         part_sizes_json, chunks_json, inline_data, inline_crc32)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)`,
    ),
    versionLatest: statement(
      "version_latest",
      `SELECT ${versionColumns} FROM ${s}.object_versions WHERE bucket = $1 AND key = $2
       ORDER BY version_seq DESC LIMIT 1`,
    ),
    versionById: statement(
      "version_by_id",
      `SELECT ${versionColumns} FROM ${s}.object_versions WHERE bucket = $1 AND key = $2 AND version_id = $3`,
    ),
    // The two above with an inline object's bytes, for GET and HEAD; writes never need them.
    versionLatestWithData: statement(
      "version_latest_with_data",
      `SELECT ${versionColumns}, inline_data, inline_crc32 FROM ${s}.object_versions WHERE bucket = $1 AND key = $2
       ORDER BY version_seq DESC LIMIT 1`,
    ),
    versionByIdWithData: statement(
      "version_by_id_with_data",
      `SELECT ${versionColumns}, inline_data, inline_crc32 FROM ${s}.object_versions WHERE bucket = $1 AND key = $2 AND version_id = $3`,
    ),
    versionDeleteById: statement(
      "version_delete_by_id",
      `DELETE FROM ${s}.object_versions WHERE bucket = $1 AND key = $2 AND version_id = $3 RETURNING ${versionColumns}`,
    ),
    versionSetTags: statement("version_set_tags", `UPDATE ${s}.object_versions SET tags_json = $1 WHERE version_seq = $2`),
    versionSetSystemMetadata: statement(
      "version_set_system_metadata",
      `UPDATE ${s}.object_versions SET system_metadata_json = $1 WHERE version_seq = $2`,
    ),

    // listing objects: the loose index scan, see listObjects
    listLatestWalk: statement(
      "list_latest_walk",
      // $1 bucket, $2 first key (inclusive), $3 prefix, $4 delimiter ('' for none),
      // $5 prefixSuccessor(delimiter) (unused without a delimiter), $6 rows wanted.
      // Each recursive step seeks the latest version of the first key at or after the cursor
      // computed from the previous row: just past that key, or, when the previous row is live
      // and rolls up into a common prefix, past the whole prefix: stem || successor(delimiter)
      // is prefixSuccessor(commonPrefix) (exact while the delimiter holds a code point below
      // U+10FFFF; the caller checks). The walk stops one row after leaving the prefix.
      // strpos/left/char_length count code points, as commonPrefixOf does on the same text.
      `WITH RECURSIVE walk AS (
         (SELECT ${LISTED_OBJECT_COLUMNS} FROM ${s}.object_versions
           WHERE bucket = $1 AND key >= $2::text
           ORDER BY key, version_seq DESC LIMIT 1)
         UNION ALL
         (SELECT next.* FROM walk
           CROSS JOIN LATERAL (
             SELECT ${LISTED_OBJECT_COLUMNS} FROM ${s}.object_versions candidate
             WHERE candidate.bucket = $1 AND candidate.key >= (
               CASE WHEN NOT walk.is_delete_marker AND $4::text <> ''
                         AND strpos(substr(walk.key, char_length($3::text) + 1), $4::text) > 0
                    THEN left(walk.key, char_length($3::text) + strpos(substr(walk.key, char_length($3::text) + 1), $4::text) - 1)
                         || $5::text
                    ELSE walk.key || chr(1)
               END)
             ORDER BY candidate.key, candidate.version_seq DESC LIMIT 1) next
           WHERE starts_with(walk.key, $3::text))
       )
       SELECT * FROM walk WHERE NOT is_delete_marker AND starts_with(key, $3::text) LIMIT $6`,
    ),
    // listing by seeks, one statement per step
    listLatestFrom: statement(
      "list_latest_from",
      `SELECT ${LISTED_OBJECT_COLUMNS} FROM ${s}.object_versions WHERE bucket = $1 AND key >= $2
       ORDER BY key, version_seq DESC LIMIT 1`,
    ),
    listVersionKeyFrom: statement(
      "list_version_key_from",
      `SELECT key FROM ${s}.object_versions WHERE bucket = $1 AND key >= $2 ORDER BY key LIMIT 1`,
    ),
    listVersionsOfKey: statement(
      "list_versions_of_key",
      `SELECT ${LISTED_VERSION_COLUMNS} FROM ${s}.object_versions WHERE bucket = $1 AND key = $2
       ORDER BY version_seq DESC LIMIT $3`,
    ),
    listVersionsOfKeyOlderThan: statement(
      "list_versions_of_key_older_than",
      `SELECT ${LISTED_VERSION_COLUMNS} FROM ${s}.object_versions WHERE bucket = $1 AND key = $2 AND version_seq < $3
       ORDER BY version_seq DESC LIMIT $4`,
    ),

    // multipart uploads and parts
    uploadInsert: statement(
      "upload_insert",
      `INSERT INTO ${s}.multipart_uploads (upload_id, bucket, key, initiated_at_ms, owner_id, storage_class, content_type,
         system_metadata_json, user_metadata_json, tags_json, checksum_algorithm)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
    ),
    uploadGet: statement("upload_get", `SELECT * FROM ${s}.multipart_uploads WHERE upload_id = $1`),
    uploadDelete: statement("upload_delete", `DELETE FROM ${s}.multipart_uploads WHERE upload_id = $1`),
    uploadsInitiatedBefore: statement(
      "uploads_initiated_before",
      `SELECT * FROM ${s}.multipart_uploads WHERE initiated_at_ms < $1 ORDER BY initiated_at_ms, upload_id LIMIT $2`,
    ),
    listUploadKeyFrom: statement(
      "list_upload_key_from",
      `SELECT key FROM ${s}.multipart_uploads WHERE bucket = $1 AND key >= $2 ORDER BY key LIMIT 1`,
    ),
    listUploadsOfKey: statement(
      "list_uploads_of_key",
      `SELECT * FROM ${s}.multipart_uploads WHERE bucket = $1 AND key = $2 ORDER BY upload_id LIMIT $3`,
    ),
    listUploadsOfKeyAfter: statement(
      "list_uploads_of_key_after",
      `SELECT * FROM ${s}.multipart_uploads WHERE bucket = $1 AND key = $2 AND upload_id > $3 ORDER BY upload_id LIMIT $4`,
    ),
    partUpsert: statement(
      "part_upsert",
      `INSERT INTO ${s}.parts (upload_id, part_number, size_bytes, etag, last_modified_ms, checksum_json, chunks_json)
       VALUES ($1, $2, $3, $4, $5, $6, $7)
       ON CONFLICT (upload_id, part_number) DO UPDATE SET size_bytes = excluded.size_bytes, etag = excluded.etag,
         last_modified_ms = excluded.last_modified_ms, checksum_json = excluded.checksum_json,
         chunks_json = excluded.chunks_json`,
    ),
    partGet: statement("part_get", `SELECT * FROM ${s}.parts WHERE upload_id = $1 AND part_number = $2`),
    partsOfUpload: statement("parts_of_upload", `SELECT * FROM ${s}.parts WHERE upload_id = $1 ORDER BY part_number`),
    partsOfUploadAfter: statement(
      "parts_of_upload_after",
      `SELECT * FROM ${s}.parts WHERE upload_id = $1 AND part_number > $2 ORDER BY part_number LIMIT $3`,
    ),
    partsDelete: statement("parts_delete", `DELETE FROM ${s}.parts WHERE upload_id = $1 RETURNING *`),

    // garbage: one statement per batch; ORDER BY ordinality keeps identity order = chunk order
    garbageInsert: statement(
      "garbage_insert",
      `INSERT INTO ${s}.garbage_chunks (volume_id, needle_id, size_bytes, crc32, queued_at_ms)
       SELECT volume_id, needle_id, size_bytes, crc32, $5
       FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::bigint[])
         WITH ORDINALITY AS chunk (volume_id, needle_id, size_bytes, crc32, position)
       ORDER BY position`,
    ),
    garbageOldest: statement("garbage_oldest", `SELECT * FROM ${s}.garbage_chunks ORDER BY garbage_id LIMIT $1`),
    garbageDelete: statement("garbage_delete", `DELETE FROM ${s}.garbage_chunks WHERE garbage_id = ANY($1::bigint[])`),

    // users and keys
    userInsert: statement(
      "user_insert",
      `INSERT INTO ${s}.users (user_id, display_name, created_at_ms, is_root) VALUES ($1, $2, $3, $4)
       ON CONFLICT (user_id) DO NOTHING`,
    ),
    userGet: statement("user_get", `SELECT * FROM ${s}.users WHERE user_id = $1`),
    // FOR KEY SHARE: a deleteUser racing addAccessKey waits, so the key never outlives the user.
    userGetForKeyShare: statement("user_get_for_key_share", `SELECT user_id FROM ${s}.users WHERE user_id = $1 FOR KEY SHARE`),
    userList: statement("user_list", `SELECT * FROM ${s}.users ORDER BY user_id`),
    // The user's keys go with it (ON DELETE CASCADE).
    userDelete: statement("user_delete", `DELETE FROM ${s}.users WHERE user_id = $1`),
    accessKeyInsert: statement(
      "access_key_insert",
      `INSERT INTO ${s}.access_keys (access_key_id, user_id, secret_sealed, created_at_ms) VALUES ($1, $2, $3, $4)
       ON CONFLICT (access_key_id) DO NOTHING`,
    ),
    accessKeyGet: statement("access_key_get", `SELECT * FROM ${s}.access_keys WHERE access_key_id = $1`),
    accessKeysOfUser: statement(
      "access_keys_of_user",
      `SELECT * FROM ${s}.access_keys WHERE user_id = $1 ORDER BY access_key_id`,
    ),
    accessKeyDelete: statement("access_key_delete", `DELETE FROM ${s}.access_keys WHERE access_key_id = $1`),
  };
}

type Statements = ReturnType<typeof prepareStatements>;

/** Runs one named statement on a connection or the pool. */
type Queryable = Pick<PoolClient, "query">;

async function run<Row extends QueryResultRow = QueryResultRow>(
  connection: Queryable,
  statement: Statement,
  values: unknown[],
): Promise<{ rows: Row[]; rowCount: number }> {
  const result = await connection.query<Row>({ name: statement.name, text: statement.text, values });
  return { rows: result.rows, rowCount: result.rowCount ?? 0 };
}

async function first<Row extends QueryResultRow>(connection: Queryable, statement: Statement, values: unknown[]): Promise<Row | undefined> {
  return (await run<Row>(connection, statement, values)).rows[0];
}

function quoteIdentifier(name: string): string {
  assert(SCHEMA_NAME_PATTERN.test(name), `schema name ${name} is a plain identifier`);
  return `"${name}"`;
}

/**
 * Brings the schema up to POSTGRES_SCHEMA_VERSION_LATEST in one transaction under an advisory
 * lock named after the schema, so gateways starting together apply each migration once.
 */
async function migrate(client: PoolClient, schemaName: string): Promise<void> {
  const schema = quoteIdentifier(schemaName);
  await client.query("BEGIN");
  try {
    await client.query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", [`cairn:migrations:${schemaName}`]);
    // Checked before CREATE SCHEMA: that needs the CREATE privilege on the database even when
    // the schema exists, which a role given only an existing schema does not have.
    const exists = await client.query("SELECT 1 FROM pg_namespace WHERE nspname = $1", [schemaName]);
    if (exists.rowCount === 0) await client.query(`CREATE SCHEMA ${schema}`);
    await client.query(
      `CREATE TABLE IF NOT EXISTS ${schema}.${MIGRATIONS_TABLE} (
         version     integer PRIMARY KEY,
         description text NOT NULL,
         applied_at  timestamptz NOT NULL DEFAULT now()
       )`,
    );
    const applied = await client.query<{ version: number | null }>(`SELECT max(version) AS version FROM ${schema}.${MIGRATIONS_TABLE}`);
    const versionCurrent = applied.rows[0]?.version ?? 0;
    assert(
      versionCurrent <= POSTGRES_SCHEMA_VERSION_LATEST,
      `metadata schema version ${versionCurrent} is newer than this build knows (${POSTGRES_SCHEMA_VERSION_LATEST})`,
    );
    for (const migration of POSTGRES_MIGRATIONS) {
      if (migration.version <= versionCurrent) continue;
      for (const ddl of migration.statements(schema)) await client.query(ddl);
      await client.query(`INSERT INTO ${schema}.${MIGRATIONS_TABLE} (version, description) VALUES ($1, $2)`, [
        migration.version,
        migration.description,
      ]);
      log.info({ schema: schemaName, version: migration.version }, "metadata schema migrated");
    }
    await client.query("COMMIT");
  } catch (error) {
    await client.query("ROLLBACK").catch(() => undefined); // the original error says more
    throw error;
  }
}

export class PostgresMetadataStore implements MetadataStore {
  readonly counters: PostgresMetadataStoreCounters = { listRowsRead: 0, listStatementsRun: 0 };
  readonly schemaName: string;
  private readonly statements: Statements;
  private readonly clock: Clock;
  private closed = false;

  private constructor(
    private readonly pool: pg.Pool,
    schemaName: string,
    options: PostgresMetadataStoreOptions,
  ) {
    this.schemaName = schemaName;
    this.clock = options.clock ?? systemClock;
    this.statements = prepareStatements(quoteIdentifier(schemaName));
  }

  /**
   * Connects a pool to `connectionString` (postgres://user:password@host:port/database),
   * refuses a server that does not commit durably, and migrates the schema.
   */
  static async open(connectionString: string, options: PostgresMetadataStoreOptions = {}): Promise<PostgresMetadataStore> {
    const schemaName = options.schema ?? SCHEMA_NAME_DEFAULT;
    if (!SCHEMA_NAME_PATTERN.test(schemaName)) throw new Error(`schema name ${JSON.stringify(schemaName)} must match ${SCHEMA_NAME_PATTERN}`);
    const poolSize = options.poolSize ?? POOL_SIZE_DEFAULT;
    assert(Number.isInteger(poolSize) && poolSize >= 1, "poolSize is a positive integer");
    const pool = new pg.Pool({
      connectionString,
      max: poolSize,
      types: typeParsers,
      application_name: "cairn",
      keepAlive: true,
      connectionTimeoutMillis: CONNECTION_TIMEOUT_MS,
      idle_in_transaction_session_timeout: IDLE_IN_TRANSACTION_TIMEOUT_MS,
    });
    // An idle pooled connection that breaks emits 'error' on the pool; the pool drops it and the
    // next query opens a new one. Without a listener the event would crash the process.
    pool.on("error", (error) => log.warn({ error }, "idle PostgreSQL connection failed; the pool replaces it"));
    try {
      const client = await pool.connect();
      try {
        await checkServer(client);
        await migrate(client, schemaName);
      } finally {
        client.release();
      }
      return new PostgresMetadataStore(pool, schemaName, options);
    } catch (error) {
      await pool.end();
      throw error;
    }
  }

  /** What the server commits with; tests check durability was not weakened. */
  async durabilitySettings(): Promise<{ synchronousCommit: string; fsync: string; schemaVersion: number }> {
    const settings = await this.pool.query<{ synchronous_commit: string; fsync: string }>(
      "SELECT current_setting('synchronous_commit') AS synchronous_commit, current_setting('fsync') AS fsync",
    );
    const version = await this.pool.query<{ version: number }>(
      `SELECT max(version) AS version FROM ${quoteIdentifier(this.schemaName)}.${MIGRATIONS_TABLE}`,
    );
    const row = settings.rows[0];
    assert(row !== undefined, "current_setting returns one row");
    return { synchronousCommit: row.synchronous_commit, fsync: row.fsync, schemaVersion: version.rows[0]?.version ?? 0 };
  }

  /** EXPLAIN ANALYZE of the statement one listObjects page runs; tests count the rows it visits. */
  async explainListObjects(input: ListObjectsInput): Promise<unknown> {
    const walk = this.listWalkParameters(input);
    assert(walk !== undefined, "this listing runs the recursive walk");
    const result = await this.pool.query<{ "QUERY PLAN": unknown }>(
      `EXPLAIN (ANALYZE, FORMAT JSON) ${this.statements.listLatestWalk.text}`,
      walk,
    );
    return result.rows[0]?.["QUERY PLAN"];
  }

  // ---- buckets ----

  async createBucket(bucket: Bucket): Promise<void> {
    // Insert-or-nothing, then read the owner: atomic without locks. The read can miss only when
    // the bucket was deleted in between; then the name is free and we try again.
    for (let attempt = 1; ; attempt += 1) {
      assert(attempt <= TRANSACTION_ATTEMPT_COUNT_MAX, `bucket ${bucket.name} keeps being created and deleted under us`);
      const inserted = await run(this.pool, this.statements.bucketInsert, [
        bucket.name,
        bucket.ownerId,
        bucket.createdAtMs,
        bucket.region,
        bucket.versioning,
        bucket.acl,
        JSON.stringify(bucket.tags),
      ]);
      if (inserted.rowCount === 1) return;
      const existing = await first<BucketRow>(this.pool, this.statements.bucketGet, [bucket.name]);
      if (existing !== undefined) throw new BucketAlreadyExists(bucket.name, existing.owner_id);
    }
  }

  async getBucket(name: string): Promise<Bucket | undefined> {
    const row = await first<BucketRow>(this.pool, this.statements.bucketGet, [name]);
    return row === undefined ? undefined : bucketFromRow(row);
  }

  async listBuckets(): Promise<Bucket[]> {
    return (await run<BucketRow>(this.pool, this.statements.bucketList, [])).rows.map(bucketFromRow);
  }

  async deleteBucket(name: string): Promise<void> {
    await this.write(async (client) => {
      // Exclusive: waits for puts and upload creations in flight, which hold it shared.
      await run(client, this.statements.lockExclusive, [this.bucketLockName(name)]);
      await this.requireBucket(client, name);
      const hasVersion = (await run(client, this.statements.bucketHasVersion, [name])).rowCount > 0;
      const hasUpload = (await run(client, this.statements.bucketHasUpload, [name])).rowCount > 0;
      if (hasVersion || hasUpload) throw new BucketNotEmpty(name);
      await run(client, this.statements.bucketDelete, [name]);
    });
  }

  async updateBucket(name: string, change: Partial<Pick<Bucket, "versioning" | "acl" | "tags">>): Promise<void> {
    const updated = await run(this.pool, this.statements.bucketUpdate, [
      name,
      change.versioning ?? null,
      change.acl ?? null,
      change.tags === undefined ? null : JSON.stringify(change.tags),
    ]);
    if (updated.rowCount === 0) throw new NoSuchBucket(name);
  }

  // ---- objects ----

  async putObjectVersion(version: ObjectVersion, condition?: WriteCondition): Promise<PutObjectResult> {
    return this.write((client) => this.putVersionInTransaction(client, version, condition));
  }

  async getObjectVersion(bucket: string, key: string, versionId?: string): Promise<ObjectVersion | undefined> {
    const row =
      versionId === undefined
        ? await first<ObjectVersionRow>(this.pool, this.statements.versionLatestWithData, [bucket, key])
        : await first<ObjectVersionRow>(this.pool, this.statements.versionByIdWithData, [bucket, key, versionId]);
    return row === undefined ? undefined : versionFromRow(row);
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
    return this.write(async (client): Promise<DeleteObjectResult> => {
      await this.lockObjectKey(client, input.bucket, input.key);
      const bucket = await this.requireBucket(client, input.bucket);
      if (input.versionId !== undefined) {
        const removed = await this.removeVersion(client, input.bucket, input.key, input.versionId, []);
        return { deleteMarker: undefined, removed };
      }
      switch (bucket.versioning) {
        case "Unversioned": {
          const removed = await this.removeVersion(client, input.bucket, input.key, NULL_VERSION_ID, []);
          return { deleteMarker: undefined, removed };
        }
        case "Suspended": {
          const removed = await this.removeVersion(client, input.bucket, input.key, NULL_VERSION_ID, []);
          const deleteMarker = await this.insertDeleteMarker(client, input, NULL_VERSION_ID);
          return { deleteMarker, removed };
        }
        case "Enabled": {
          assert(input.newVersionId !== NULL_VERSION_ID, "a delete marker in an Enabled bucket needs a real version id");
          const deleteMarker = await this.insertDeleteMarker(client, input, input.newVersionId);
          return { deleteMarker, removed: undefined };
        }
      }
    });
  }

  async setObjectTags(bucket: string, key: string, versionId: string | undefined, tags: Record<string, string>): Promise<string> {
    return this.write(async (client) => {
      await this.lockObjectKey(client, bucket, key);
      await this.requireBucket(client, bucket);
      const row =
        versionId === undefined
          ? await first<ObjectVersionRow>(client, this.statements.versionLatest, [bucket, key])
          : await first<ObjectVersionRow>(client, this.statements.versionById, [bucket, key, versionId]);
      // A delete marker has no tags: as the latest version it means the key does not exist.
      if (row === undefined || row.is_delete_marker) {
        throw versionId === undefined ? new NoSuchKey(bucket, key) : new NoSuchVersion(bucket, key, versionId);
      }
      await run(client, this.statements.versionSetTags, [JSON.stringify(tags), row.version_seq]);
      return row.version_id;
    });
  }

  async setObjectSystemMetadata(bucket: string, key: string, versionId: string, systemMetadata: Record<string, string>): Promise<void> {
    await this.write(async (client) => {
      await this.lockObjectKey(client, bucket, key);
      await this.requireBucket(client, bucket);
      const row = await first<ObjectVersionRow>(client, this.statements.versionById, [bucket, key, versionId]);
      if (row === undefined || row.is_delete_marker) throw new NoSuchVersion(bucket, key, versionId);
      await run(client, this.statements.versionSetSystemMetadata, [JSON.stringify(systemMetadata), row.version_seq]);
    });
  }

  /**
   * One page in one statement (listLatestWalk, see the file comment), then the same roll-up
   * as the SQLite engine: a live key is emitted; a key under a common prefix emits the prefix
   * once (the walk has already jumped past the prefix); a prefix at or before startAfter was on
   * an earlier page and is skipped. The walk returns live rows under the prefix only.
   *
   * Rows needed: maxKeys + 1 to learn whether the page is truncated, plus at most one common
   * prefix skipped for sorting at or before startAfter. That happens only when startAfter itself
   * rolls up into that prefix (a key after startAfter under a prefix <= startAfter must share
   * the prefix with startAfter), and only for the first row: every later row sorts after that
   * prefix's successor, hence after startAfter.
   */
  async listObjects(input: ListObjectsInput): Promise<ListObjectsResult> {
    const walk = this.listWalkParameters(input);
    if (walk === undefined) return this.listObjectsBySeeks(input);
    const result: ListObjectsResult = { objects: [], commonPrefixes: [], isTruncated: false, nextStartAfter: undefined };
    const rows = (await run<ListedObjectRow>(this.pool, this.statements.listLatestWalk, walk)).rows;
    this.countListReads(rows);
    if (rows.length === 0) await this.requireBucket(this.pool, input.bucket);
    if (input.maxKeys <= 0) return result;
    let entryCount = 0;
    let entryLast: string | undefined;
    let keyPrevious: string | undefined;
    for (const row of rows) {
      assert(keyPrevious === undefined || compareKeys(row.key, keyPrevious) > 0, "the walk returns keys in ascending order");
      assert(row.key.startsWith(input.prefix) && !row.is_delete_marker, "the walk returns live keys under the prefix");
      keyPrevious = row.key;
      const commonPrefix = commonPrefixOf(row.key, input.prefix, input.delimiter);
      if (commonPrefix !== undefined) {
        if (input.startAfter !== undefined && compareKeys(commonPrefix, input.startAfter) <= 0) continue;
        assert(commonPrefix !== entryLast, "the walk jumps past a common prefix after its first live key");
      }
      if (entryCount === input.maxKeys) {
        result.isTruncated = true;
        break;
      }
      if (commonPrefix !== undefined) result.commonPrefixes.push(commonPrefix);
      else result.objects.push(listedObjectFromRow(row));
      entryCount += 1;
      entryLast = commonPrefix ?? row.key;
    }
    if (result.isTruncated) result.nextStartAfter = entryLast;
    return result;
  }

  async listObjectVersions(input: ListObjectVersionsInput): Promise<ListObjectVersionsResult> {
    return this.read(async (client): Promise<ListObjectVersionsResult> => {
      await this.requireBucket(client, input.bucket);
      const page = await this.walkKeys<ListedVersion>({
        prefix: input.prefix,
        delimiter: input.delimiter,
        keyMarker: input.keyMarker,
        entryCountMax: input.maxKeys,
        seekKey: async (cursor) => {
          const row = await first<{ key: string }>(client, this.statements.listVersionKeyFrom, [input.bucket, this.seekFrom(cursor)]);
          return this.countListRead(row)?.key;
        },
        entriesOfKey: async (key, limit) =>
          (await run<ListedVersionRow>(client, this.statements.listVersionsOfKey, [input.bucket, key, limit])).rows.map((row, index) =>
            listedVersionFromRow(row, index === 0),
          ),
        entriesOfMarkerKey: async (key, limit) => {
          if (input.versionIdMarker === undefined) return [];
          const marker = await first<ObjectVersionRow>(client, this.statements.versionById, [input.bucket, key, input.versionIdMarker]);
          // A marker version deleted since the previous page: continue with the next key.
          if (marker === undefined) return [];
          // Everything older than the marker version is not the latest: the marker is newer.
          const rows = await run<ListedVersionRow>(client, this.statements.listVersionsOfKeyOlderThan, [
            input.bucket,
            key,
            marker.version_seq,
            limit,
          ]);
          return rows.rows.map((row) => listedVersionFromRow(row, false));
        },
        markerOf: (entry) => entry.versionId,
      });
      return versionsPageResult(page);
    });
  }

  // ---- multipart ----

  async createMultipartUpload(upload: MultipartUpload): Promise<void> {
    await this.write(async (client) => {
      await run(client, this.statements.lockShared, [this.bucketLockName(upload.bucket)]);
      await this.requireBucket(client, upload.bucket);
      await run(client, this.statements.uploadInsert, [
        upload.uploadId,
        upload.bucket,
        upload.key,
        upload.initiatedAtMs,
        upload.ownerId,
        upload.storageClass,
        upload.contentType ?? null,
        JSON.stringify(upload.systemMetadata),
        JSON.stringify(upload.userMetadata),
        JSON.stringify(upload.tags),
        upload.checksumAlgorithm ?? null,
      ]);
    });
  }

  async getMultipartUpload(bucket: string, key: string, uploadId: string): Promise<MultipartUpload | undefined> {
    const row = await first<UploadRow>(this.pool, this.statements.uploadGet, [uploadId]);
    if (row === undefined || row.bucket !== bucket || row.key !== key) return undefined;
    return uploadFromRow(row);
  }

  async putPart(bucket: string, key: string, part: Part): Promise<Part | undefined> {
    return this.write(async (client) => {
      // Upload shared: parts of one upload commit in parallel, but not across a complete or an
      // abort, which would otherwise drop the upload and leave this part (and its chunks) behind.
      // Part exclusive: of two uploads of one part number, the second sees (and queues) the first.
      await run(client, this.statements.lockSharedThenExclusive, [
        this.uploadLockName(part.uploadId),
        `${this.uploadLockName(part.uploadId)}:part:${part.partNumber}`,
      ]);
      await this.requireUpload(client, bucket, key, part.uploadId);
      const replacedRow = await first<PartRow>(client, this.statements.partGet, [part.uploadId, part.partNumber]);
      const replaced = replacedRow === undefined ? undefined : partFromRow(replacedRow);
      await run(client, this.statements.partUpsert, [
        part.uploadId,
        part.partNumber,
        part.sizeBytes,
        part.etag,
        part.lastModifiedMs,
        encodeOptional(part.checksum),
        encodeChunks(part.chunks),
      ]);
      if (replaced !== undefined) await this.queueGarbage(client, replaced.chunks, part.chunks);
      return replaced;
    });
  }

  async listParts(uploadId: string, partNumberMarker: number, maxParts: number): Promise<{ parts: Part[]; isTruncated: boolean }> {
    return this.read(async (client) => {
      if ((await first(client, this.statements.uploadGet, [uploadId])) === undefined) throw new NoSuchUpload(uploadId);
      const partCountMax = Math.max(0, maxParts);
      const rows = (await run<PartRow>(client, this.statements.partsOfUploadAfter, [uploadId, partNumberMarker, partCountMax + 1])).rows;
      return { parts: rows.slice(0, partCountMax).map(partFromRow), isTruncated: rows.length > partCountMax };
    });
  }

  async getParts(uploadId: string): Promise<Part[]> {
    return this.read(async (client) => {
      if ((await first(client, this.statements.uploadGet, [uploadId])) === undefined) throw new NoSuchUpload(uploadId);
      return (await run<PartRow>(client, this.statements.partsOfUpload, [uploadId])).rows.map(partFromRow);
    });
  }

  async completeMultipartUpload(uploadId: string, version: ObjectVersion, condition?: WriteCondition): Promise<PutObjectResult> {
    return this.write(async (client) => {
      // All steps commit together or not at all: a crash (or a failed condition) leaves the
      // upload and its parts as they were, so the client may retry the completion.
      await run(client, this.statements.lockExclusive, [this.uploadLockName(uploadId)]);
      await this.requireUpload(client, version.bucket, version.key, uploadId);
      const parts = (await run<PartRow>(client, this.statements.partsDelete, [uploadId])).rows.map(partFromRow);
      await run(client, this.statements.uploadDelete, [uploadId]);
      // Parts the client left out of the completion are garbage; used ones now belong to the version.
      await this.queueGarbage(
        client,
        parts.flatMap((part) => part.chunks),
        version.chunks,
      );
      return this.putVersionInTransaction(client, version, condition);
    });
  }

  async abortMultipartUpload(bucket: string, key: string, uploadId: string): Promise<void> {
    await this.write(async (client) => {
      await run(client, this.statements.lockExclusive, [this.uploadLockName(uploadId)]);
      await this.requireUpload(client, bucket, key, uploadId);
      const parts = (await run<PartRow>(client, this.statements.partsDelete, [uploadId])).rows.map(partFromRow);
      await run(client, this.statements.uploadDelete, [uploadId]);
      await this.queueGarbage(
        client,
        parts.flatMap((part) => part.chunks),
        [],
      );
    });
  }

  /** Uploads in (key, upload id) order; upload ids are time-ordered, so that is initiation order per key. */
  async listMultipartUploads(input: ListMultipartUploadsInput): Promise<ListMultipartUploadsResult> {
    return this.read(async (client): Promise<ListMultipartUploadsResult> => {
      await this.requireBucket(client, input.bucket);
      const page = await this.walkKeys<MultipartUpload>({
        prefix: input.prefix,
        delimiter: input.delimiter,
        keyMarker: input.keyMarker,
        entryCountMax: input.maxUploads,
        seekKey: async (cursor) => {
          const row = await first<{ key: string }>(client, this.statements.listUploadKeyFrom, [input.bucket, this.seekFrom(cursor)]);
          return this.countListRead(row)?.key;
        },
        entriesOfKey: async (key, limit) =>
          (await run<UploadRow>(client, this.statements.listUploadsOfKey, [input.bucket, key, limit])).rows.map(uploadFromRow),
        entriesOfMarkerKey: async (key, limit) =>
          input.uploadIdMarker === undefined
            ? []
            : (await run<UploadRow>(client, this.statements.listUploadsOfKeyAfter, [input.bucket, key, input.uploadIdMarker, limit])).rows.map(
                uploadFromRow,
              ),
        markerOf: (entry) => entry.uploadId,
      });
      return uploadsPageResult(page);
    });
  }

  async listMultipartUploadsInitiatedBefore(timeMs: number, limit: number): Promise<MultipartUpload[]> {
    return (await run<UploadRow>(this.pool, this.statements.uploadsInitiatedBefore, [timeMs, Math.max(0, limit)])).rows.map(uploadFromRow);
  }

  // ---- garbage chunks ----

  async takeGarbageChunks(limit: number): Promise<GarbageChunk[]> {
    const rows = (await run<GarbageRow>(this.pool, this.statements.garbageOldest, [Math.max(0, limit)])).rows;
    return rows.map((row) => ({
      garbageId: row.garbage_id,
      chunk: {
        volumeId: row.volume_id as VolumeId,
        needleId: row.needle_id as NeedleId,
        sizeBytes: row.size_bytes,
        crc32: row.crc32,
      },
      queuedAtMs: row.queued_at_ms,
    }));
  }

  async removeGarbageChunks(garbageIds: number[]): Promise<void> {
    if (garbageIds.length === 0) return;
    await run(this.pool, this.statements.garbageDelete, [garbageIds]);
  }

  // ---- users and keys ----

  async createUser(user: User): Promise<void> {
    const inserted = await run(this.pool, this.statements.userInsert, [user.userId, user.displayName, user.createdAtMs, user.isRoot]);
    if (inserted.rowCount === 0) throw new UserAlreadyExists(user.userId);
  }

  async getUser(userId: string): Promise<User | undefined> {
    const row = await first<UserRow>(this.pool, this.statements.userGet, [userId]);
    return row === undefined ? undefined : userFromRow(row);
  }

  async listUsers(): Promise<User[]> {
    return (await run<UserRow>(this.pool, this.statements.userList, [])).rows.map(userFromRow);
  }

  async deleteUser(userId: string): Promise<void> {
    const deleted = await run(this.pool, this.statements.userDelete, [userId]);
    if (deleted.rowCount === 0) throw new NoSuchUser(userId);
  }

  async addAccessKey(key: AccessKey): Promise<void> {
    await this.write(async (client) => {
      // The user first, as the SQLite engine checks: a missing user wins over a taken key id.
      if ((await first(client, this.statements.userGetForKeyShare, [key.userId])) === undefined) throw new NoSuchUser(key.userId);
      try {
        const inserted = await run(client, this.statements.accessKeyInsert, [key.accessKeyId, key.userId, key.secretSealed, key.createdAtMs]);
        if (inserted.rowCount === 0) throw new AccessKeyAlreadyExists(key.accessKeyId);
      } catch (error) {
        // The row lock above makes this unreachable on PostgreSQL; kept for engines without it.
        if (sqlStateOf(error) === FOREIGN_KEY_VIOLATION) throw new NoSuchUser(key.userId);
        throw error;
      }
    });
  }

  async getAccessKey(accessKeyId: string): Promise<AccessKey | undefined> {
    const row = await first<AccessKeyRow>(this.pool, this.statements.accessKeyGet, [accessKeyId]);
    return row === undefined ? undefined : accessKeyFromRow(row);
  }

  async listAccessKeys(userId: string): Promise<AccessKey[]> {
    return (await run<AccessKeyRow>(this.pool, this.statements.accessKeysOfUser, [userId])).rows.map(accessKeyFromRow);
  }

  async removeAccessKey(accessKeyId: string): Promise<void> {
    const deleted = await run(this.pool, this.statements.accessKeyDelete, [accessKeyId]);
    if (deleted.rowCount === 0) throw new NoSuchAccessKey(accessKeyId);
  }

  /** Waits for queries in flight, then closes every connection. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.end();
  }

  // ---- transactions ----

  /** A READ COMMITTED transaction; locks taken inside are held until it ends. */
  private write<T>(body: (client: PoolClient) => Promise<T>): Promise<T> {
    return this.transaction("BEGIN", body);
  }

  /** One snapshot for a multi-statement read. */
  private read<T>(body: (client: PoolClient) => Promise<T>): Promise<T> {
    return this.transaction("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", body);
  }

  /**
   * Runs `body` in a transaction on one pooled connection. Retries the whole transaction, a
   * bounded number of times, when the server aborted it to resolve a serialization conflict or
   * a deadlock: it was rolled back, so running it again is safe. Any other error rolls back and
   * goes to the caller. A COMMIT that fails for a broken connection has an unknown outcome; the
   * error goes up and the connection is discarded.
   */
  private async transaction<T>(begin: string, body: (client: PoolClient) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt += 1) {
      const client = await this.pool.connect();
      // A connection is pooled again only when we know it is idle and healthy: the server
      // answered with an SQLSTATE (the transaction is over), or our ROLLBACK went through.
      let connectionHealthy = false;
      let rollbackFailed = false;
      try {
        await client.query(begin);
        let result: T;
        try {
          result = await body(client);
        } catch (error) {
          try {
            await client.query("ROLLBACK");
            connectionHealthy = true;
          } catch {
            // The connection broke; it is destroyed below, and the body's error says more.
            rollbackFailed = true;
          }
          throw error;
        }
        await client.query("COMMIT");
        connectionHealthy = true;
        return result;
      } catch (error) {
        const code = sqlStateOf(error);
        if (code !== undefined && !rollbackFailed) connectionHealthy = true;
        const retryable = code === SERIALIZATION_FAILURE || code === DEADLOCK_DETECTED;
        if (!retryable || attempt >= TRANSACTION_ATTEMPT_COUNT_MAX) throw error;
        log.warn({ code, attempt }, "metadata transaction aborted by the server; retrying");
      } finally {
        // Releasing with an error destroys the connection instead of pooling a broken one.
        client.release(connectionHealthy ? undefined : new Error("connection state unknown after a failed transaction"));
      }
    }
  }

  // ---- inside a transaction ----

  private bucketLockName(bucket: string): string {
    return `cairn:${this.schemaName}:bucket:${bucket}`;
  }

  private uploadLockName(uploadId: string): string {
    return `cairn:${this.schemaName}:upload:${uploadId}`;
  }

  /** Bucket shared, then the key exclusive. Bucket names hold no "/", so the name is unambiguous. */
  private async lockObjectKey(client: PoolClient, bucket: string, key: string): Promise<void> {
    await run(client, this.statements.lockSharedThenExclusive, [
      this.bucketLockName(bucket),
      `cairn:${this.schemaName}:object:${bucket}/${key}`,
    ]);
  }

  private async requireBucket(connection: Queryable, name: string): Promise<BucketRow> {
    const row = await first<BucketRow>(connection, this.statements.bucketGet, [name]);
    if (row === undefined) throw new NoSuchBucket(name);
    return row;
  }

  /** The upload, which must belong to bucket/key: an id used under another key does not exist there. */
  private async requireUpload(client: PoolClient, bucket: string, key: string, uploadId: string): Promise<UploadRow> {
    const row = await first<UploadRow>(client, this.statements.uploadGet, [uploadId]);
    if (row === undefined || row.bucket !== bucket || row.key !== key) throw new NoSuchUpload(uploadId);
    return row;
  }

  /**
   * The version id decides between add and replace, as in the SQLite engine: "null" replaces
   * the null version, any other id adds a version. Runs under the key lock: the condition read
   * and the write are atomic against every other writer of the key, on any gateway.
   */
  private async putVersionInTransaction(client: PoolClient, version: ObjectVersion, condition: WriteCondition | undefined): Promise<PutObjectResult> {
    await this.lockObjectKey(client, version.bucket, version.key);
    const bucket = await this.requireBucket(client, version.bucket);
    await this.checkCondition(client, version.bucket, version.key, condition);
    const removed: ObjectVersion[] = [];
    if (version.versionId === NULL_VERSION_ID) {
      const replaced = await this.removeVersion(client, version.bucket, version.key, NULL_VERSION_ID, version.chunks);
      if (replaced !== undefined) removed.push(replaced);
    } else {
      assert(bucket.versioning !== "Unversioned", "an Unversioned bucket holds only the null version");
    }
    try {
      await this.insertVersion(client, version);
    } catch (error) {
      // Under the key lock only a caller reusing a version id can collide: a programmer error.
      assert(sqlStateOf(error) !== UNIQUE_VIOLATION, `version ${version.versionId} of ${version.key} is new`);
      throw error;
    }
    return { removed };
  }

  private async checkCondition(client: PoolClient, bucket: string, key: string, condition: WriteCondition | undefined): Promise<void> {
    if (condition === undefined) return;
    if (condition.ifNoneMatchAny !== true && condition.ifMatchEtag === undefined) return;
    const latest = await first<ObjectVersionRow>(client, this.statements.versionLatest, [bucket, key]);
    const current = latest !== undefined && !latest.is_delete_marker ? latest : undefined;
    if (condition.ifNoneMatchAny === true && current !== undefined) throw new PreconditionFailed(bucket, key);
    if (condition.ifMatchEtag !== undefined && (current === undefined || current.etag !== condition.ifMatchEtag)) {
      throw new PreconditionFailed(bucket, key);
    }
  }

  private async insertVersion(client: PoolClient, version: ObjectVersion): Promise<void> {
    await run(client, this.statements.versionInsert, versionInsertValues(version, version.isDeleteMarker));
  }

  private async insertDeleteMarker(
    client: PoolClient,
    input: { bucket: string; key: string; nowMs: number; ownerId: string },
    versionId: string,
  ): Promise<ObjectVersion> {
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
    await this.insertVersion(client, deleteMarker);
    return deleteMarker;
  }

  /** Removes one version and queues its chunks, except those `chunksKept` still uses. */
  private async removeVersion(
    client: PoolClient,
    bucket: string,
    key: string,
    versionId: string,
    chunksKept: readonly ChunkRef[],
  ): Promise<ObjectVersion | undefined> {
    const row = await first<ObjectVersionRow>(client, this.statements.versionDeleteById, [bucket, key, versionId]);
    if (row === undefined) return undefined;
    const removed = versionFromRow(row);
    await this.queueGarbage(client, removed.chunks, chunksKept);
    return removed;
  }

  /**
   * Queues `chunks` for deletion on the data nodes, skipping needles that `chunksKept` still
   * references (a completed upload's version reuses its parts' needles). Runs inside the caller's
   * transaction: the metadata change and the garbage entries commit together.
   */
  private async queueGarbage(client: PoolClient, chunks: readonly ChunkRef[], chunksKept: readonly ChunkRef[]): Promise<void> {
    const needlesKept = new Set(chunksKept.map((chunk) => chunk.needleId));
    const garbage = chunks.filter((chunk) => !needlesKept.has(chunk.needleId));
    if (garbage.length === 0) return;
    await run(client, this.statements.garbageInsert, [
      garbage.map((chunk) => chunk.volumeId),
      garbage.map((chunk) => chunk.needleId),
      garbage.map((chunk) => chunk.sizeBytes),
      garbage.map((chunk) => chunk.crc32),
      this.clock.nowMs(),
    ]);
  }

  // ---- listing ----

  /**
   * The parameters of listLatestWalk for this page, or undefined when the walk cannot express
   * it: a delimiter made only of U+10FFFF has no successor to append, so its common prefixes are
   * skipped by the seek-per-step listing instead (same result, one round trip per step).
   */
  private listWalkParameters(input: ListObjectsInput): unknown[] | undefined {
    const delimiter = input.delimiter ?? "";
    const delimiterSuccessor = delimiter === "" ? "" : prefixSuccessor(delimiter);
    if (delimiterSuccessor === undefined) return undefined;
    const start = this.listStart(input.prefix, input.startAfter);
    // maxKeys + 1 proves truncation; + 1 more when startAfter lies inside a common prefix,
    // whose first key after startAfter comes back only to be skipped.
    const startsInsideCommonPrefix =
      input.startAfter !== undefined &&
      input.startAfter.startsWith(input.prefix) &&
      commonPrefixOf(input.startAfter, input.prefix, input.delimiter) !== undefined;
    const rowCountMax = Math.max(0, input.maxKeys) + 1 + (startsInsideCommonPrefix ? 1 : 0);
    return [input.bucket, this.seekFrom(start), input.prefix, delimiter, delimiterSuccessor, rowCountMax];
  }

  /** The seek-per-step listing, as the SQLite engine runs it, in one REPEATABLE READ snapshot. */
  private async listObjectsBySeeks(input: ListObjectsInput): Promise<ListObjectsResult> {
    return this.read(async (client): Promise<ListObjectsResult> => {
      await this.requireBucket(client, input.bucket);
      const result: ListObjectsResult = { objects: [], commonPrefixes: [], isTruncated: false, nextStartAfter: undefined };
      if (input.maxKeys <= 0) return result;
      let cursor: Cursor | undefined = this.listStart(input.prefix, input.startAfter);
      let entryCount = 0;
      let entryLast: string | undefined;
      while (cursor !== undefined) {
        const row: ListedObjectRow | undefined = this.countListRead(
          await first<ListedObjectRow>(client, this.statements.listLatestFrom, [input.bucket, this.seekFrom(cursor)]),
        );
        if (row === undefined || !row.key.startsWith(input.prefix)) break;
        if (row.is_delete_marker) {
          cursor = { key: row.key, inclusive: false };
          continue;
        }
        const commonPrefix = commonPrefixOf(row.key, input.prefix, input.delimiter);
        if (commonPrefix !== undefined) {
          const successor = this.seekPastCommonPrefix(commonPrefix, row.key);
          cursor = successor === undefined ? undefined : { key: successor, inclusive: true };
          if (input.startAfter !== undefined && compareKeys(commonPrefix, input.startAfter) <= 0) continue;
          if (entryCount === input.maxKeys) {
            result.isTruncated = true;
            break;
          }
          result.commonPrefixes.push(commonPrefix);
          entryCount += 1;
          entryLast = commonPrefix;
          continue;
        }
        if (entryCount === input.maxKeys) {
          result.isTruncated = true;
          break;
        }
        result.objects.push(listedObjectFromRow(row));
        entryCount += 1;
        entryLast = row.key;
        cursor = { key: row.key, inclusive: false };
      }
      if (result.isTruncated) result.nextStartAfter = entryLast;
      return result;
    });
  }

  /** The inclusive lower bound a cursor seeks from (see keyAfter). */
  private seekFrom(cursor: Cursor): string {
    return cursor.inclusive ? cursor.key : keyAfter(cursor.key);
  }

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
   * The walk shared by ListObjectVersions and ListMultipartUploads (AWS marker semantics), the
   * same as the SQLite engine's: with a key marker alone, start after every entry of that key;
   * with an entry marker too, first finish that key after the marker entry. Then one seek per
   * key or common prefix. Every entry and every common prefix counts against entryCountMax.
   */
  private async walkKeys<Entry extends { key: string }>(walk: {
    prefix: string;
    delimiter: string | undefined;
    keyMarker: string | undefined;
    entryCountMax: number;
    seekKey(cursor: Cursor): Promise<string | undefined>;
    entriesOfKey(key: string, limit: number): Promise<Entry[]>;
    entriesOfMarkerKey(key: string, limit: number): Promise<Entry[]>;
    markerOf(entry: Entry): string;
  }): Promise<KeyWalkPage<Entry>> {
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
        if (!take(await walk.entriesOfMarkerKey(marker, walk.entryCountMax + 1))) {
          page.isTruncated = true;
          return finish();
        }
      }
    }
    while (cursor !== undefined) {
      const key = await walk.seekKey(cursor);
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
      if (!take(await walk.entriesOfKey(key, walk.entryCountMax - entryCount + 1))) {
        page.isTruncated = true;
        break;
      }
      cursor = { key, inclusive: false };
    }
    return finish();
  }
}

/**
 * Refuses a server that would lose committed metadata on power loss, or that stores text in an
 * encoding other than UTF-8 (keys are compared as UTF-8 bytes).
 */
async function checkServer(client: PoolClient): Promise<void> {
  const result = await client.query<{ synchronous_commit: string; fsync: string; server_encoding: string }>(
    `SELECT current_setting('synchronous_commit') AS synchronous_commit, current_setting('fsync') AS fsync,
            current_setting('server_encoding') AS server_encoding`,
  );
  const settings = result.rows[0];
  assert(settings !== undefined, "current_setting returns one row");
  if (settings.fsync !== "on" || settings.synchronous_commit === "off") {
    throw new Error(
      `PostgreSQL runs with fsync=${settings.fsync}, synchronous_commit=${settings.synchronous_commit}: ` +
        "committed metadata would not survive power loss; Cairn needs fsync=on and synchronous_commit on or stronger",
    );
  }
  if (settings.server_encoding !== "UTF8") {
    throw new Error(`PostgreSQL database encoding is ${settings.server_encoding}; Cairn needs UTF8`);
  }
}
