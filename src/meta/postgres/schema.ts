/**
 * The PostgreSQL schema of the metadata store, as an ordered list of migrations. The table
 * `cairn_schema_migrations` records every migration applied (version, description, time).
 * Opening a store applies the missing ones in ONE transaction that first takes a transaction
 * advisory lock named after the schema: several gateways starting at once queue on the lock,
 * the first applies the migrations, the others then find them recorded and apply nothing.
 * PostgreSQL DDL is transactional, so a crash mid-migration leaves the previous version intact.
 * Never edit a migration that has shipped: append a new one.
 *
 * Layout decisions (the same as the SQLite engine's, see ../sqlite/schema.ts, where they apply):
 * - Every key-like text column is `COLLATE "C"`: comparisons and index order are then the
 *   UTF-8 byte order S3 lists in (compareKeys), whatever the database's default collation is.
 *   A linguistic collation (en_US) would order "a-b" and "ab" differently from S3 and would
 *   make `key > $cursor` seeks disagree with the listing algorithm. The store refuses a
 *   database whose encoding is not UTF8.
 * - object_versions.version_seq is a BIGINT identity: it grows with every write and is never
 *   reused, so it orders the versions of a key by write time independently of version id text.
 *   Writers of one key are serialized by a per-key advisory lock (see the engine), so the order
 *   of version_seq among the versions of one key is also their commit order.
 *   The index `(bucket, key, version_seq DESC)` makes the latest version of a key the first
 *   index entry at `(bucket, key)` (DESIGN "Lessons": newest first), and walking it visits keys
 *   in byte order, which is what listings seek through.
 * - JSON is stored as `text`, not `jsonb`: metadata and chunk manifests are written once and
 *   always read whole; jsonb would parse on write and re-serialize on read for nothing, and
 *   would not round-trip key order. Chunk tuples are `[volumeId, needleId, sizeBytes, crc32]`.
 * - Integers that can pass 2^31 (sizes, milliseconds, crc32 as unsigned) are BIGINT; the engine
 *   parses BIGINT to a JavaScript number and asserts it is a safe integer.
 * - garbage_chunks.garbage_id is a BIGINT identity, never reused: the GC worker may hold ids from
 *   takeGarbageChunks while new garbage is queued, and removeGarbageChunks must not hit new rows.
 * - access_keys.user_id references users with ON DELETE CASCADE, so a key can never outlive its
 *   user even when addAccessKey and deleteUser race on different gateways.
 */

export interface PostgresMigration {
  /** The schema version after this migration. */
  version: number;
  description: string;
  /** The DDL, with every table qualified by `schema` (already a quoted identifier). */
  statements(schema: string): string[];
}

export const MIGRATIONS_TABLE = "cairn_schema_migrations";

export const POSTGRES_MIGRATIONS: readonly PostgresMigration[] = [
  {
    version: 1,
    description: "buckets, object versions, multipart uploads, parts, garbage chunks, users, access keys",
    statements: (schema) => [
      `CREATE TABLE ${schema}.buckets (
        name          text COLLATE "C" PRIMARY KEY,
        owner_id      text NOT NULL,
        created_at_ms bigint NOT NULL,
        region        text NOT NULL,
        versioning    text NOT NULL CHECK (versioning IN ('Unversioned', 'Enabled', 'Suspended')),
        acl           text NOT NULL,
        tags_json     text NOT NULL
      )`,
      `CREATE TABLE ${schema}.object_versions (
        version_seq          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        bucket               text COLLATE "C" NOT NULL,
        key                  text COLLATE "C" NOT NULL,
        version_id           text COLLATE "C" NOT NULL,
        is_delete_marker     boolean NOT NULL,
        size_bytes           bigint NOT NULL,
        etag                 text NOT NULL,
        last_modified_ms     bigint NOT NULL,
        owner_id             text NOT NULL,
        storage_class        text NOT NULL,
        content_type         text,
        system_metadata_json text NOT NULL,
        user_metadata_json   text NOT NULL,
        tags_json            text NOT NULL,
        checksum_json        text,
        part_sizes_json      text,
        chunks_json          text NOT NULL
      )`,
      // Latest version first: the first entry at (bucket, key) is the current version.
      `CREATE UNIQUE INDEX object_versions_newest_first ON ${schema}.object_versions (bucket, key, version_seq DESC)`,
      `CREATE UNIQUE INDEX object_versions_by_version_id ON ${schema}.object_versions (bucket, key, version_id)`,
      `CREATE TABLE ${schema}.multipart_uploads (
        upload_id            text COLLATE "C" PRIMARY KEY,
        bucket               text COLLATE "C" NOT NULL,
        key                  text COLLATE "C" NOT NULL,
        initiated_at_ms      bigint NOT NULL,
        owner_id             text NOT NULL,
        storage_class        text NOT NULL,
        content_type         text,
        system_metadata_json text NOT NULL,
        user_metadata_json   text NOT NULL,
        tags_json            text NOT NULL,
        checksum_algorithm   text
      )`,
      // Upload ids are time-ordered, so (key, upload_id) is also (key, initiation time), and it
      // is the order the upload-id-marker of ListMultipartUploads compares in.
      `CREATE UNIQUE INDEX multipart_uploads_by_key ON ${schema}.multipart_uploads (bucket, key, upload_id)`,
      `CREATE INDEX multipart_uploads_by_initiated ON ${schema}.multipart_uploads (initiated_at_ms, upload_id)`,
      `CREATE TABLE ${schema}.parts (
        upload_id        text COLLATE "C" NOT NULL,
        part_number      integer NOT NULL,
        size_bytes       bigint NOT NULL,
        etag             text NOT NULL,
        last_modified_ms bigint NOT NULL,
        checksum_json    text,
        chunks_json      text NOT NULL,
        PRIMARY KEY (upload_id, part_number)
      )`,
      `CREATE TABLE ${schema}.garbage_chunks (
        garbage_id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        volume_id    bigint NOT NULL,
        needle_id    text NOT NULL,
        size_bytes   bigint NOT NULL,
        crc32        bigint NOT NULL,
        queued_at_ms bigint NOT NULL
      )`,
      `CREATE TABLE ${schema}.users (
        user_id       text COLLATE "C" PRIMARY KEY,
        display_name  text NOT NULL,
        created_at_ms bigint NOT NULL,
        is_root       boolean NOT NULL
      )`,
      `CREATE TABLE ${schema}.access_keys (
        access_key_id text COLLATE "C" PRIMARY KEY,
        user_id       text COLLATE "C" NOT NULL REFERENCES ${schema}.users (user_id) ON DELETE CASCADE,
        secret_sealed text NOT NULL,
        created_at_ms bigint NOT NULL
      )`,
      `CREATE INDEX access_keys_by_user ON ${schema}.access_keys (user_id, access_key_id)`,
    ],
  },
  {
    version: 2,
    description: "object_versions.inline_data: the bytes of a small object kept in its row",
    // Only single-version reads select it. Values over about 2 KiB are compressed or kept out of
    // line (TOAST), which a listing, not selecting the column, never reads.
    statements: (schema) => [`ALTER TABLE ${schema}.object_versions ADD COLUMN inline_data bytea`],
  },
  {
    version: 3,
    description: "object_versions.inline_crc32: the CRC32 of inline_data, checked on read",
    // NULL in the rows before it: their bytes are checked against the MD5 ETag instead.
    statements: (schema) => [`ALTER TABLE ${schema}.object_versions ADD COLUMN inline_crc32 bigint`],
  },
];

export const POSTGRES_SCHEMA_VERSION_LATEST = POSTGRES_MIGRATIONS.length;
