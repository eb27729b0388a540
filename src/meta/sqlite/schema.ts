/**
 * The SQLite schema of the metadata store, as an ordered list of migrations. The database's
 * `user_version` pragma holds the number of migrations applied; opening a database applies the
 * missing ones, each in its own transaction together with the bump of `user_version`, so a crash
 * mid-migration leaves the previous version intact. Never edit a migration that has shipped:
 * append a new one.
 *
 * Layout decisions:
 * - object_versions is a rowid table whose rowid `version_seq` is AUTOINCREMENT: it grows with
 *   every write and is never reused, so it orders the versions of a key by write time,
 *   independently of the caller's version id text (a null version rewritten under Suspended
 *   takes the newest place). The index `(bucket, key, version_seq DESC)` makes the latest version
 *   of a key the first index entry at `(bucket, key)`, and walking it in order visits keys in
 *   UTF-8 byte order (TEXT with BINARY collation), which is what listings need.
 * - Chunk manifests are a JSON column (`chunks_json`), the last column of the row. A manifest is
 *   written once with its version and always read whole (the interface moves `ChunkRef[]`), so one
 *   row read serves a GET; a separate chunks table would cost one row per chunk on every GET and
 *   gain nothing the interface can use. Being last in a rowid table, it never sits inside the
 *   index a listing walks, and SQLite does not read its overflow pages for queries that stop
 *   before it. Each chunk is a tuple `[volumeId, needleId, sizeBytes, crc32]` to keep rows small.
 * - A small object's bytes may live in its row (`inline_data`, added after `chunks_json` so it is
 *   the last column): listings stop before it, and GET reads it with the row it already reads.
 *   Its CRC32 (`inline_crc32`, added after it) is what a read checks the bytes against.
 * - garbage_chunks uses AUTOINCREMENT so ids are never reused: the GC worker may hold ids from
 *   takeGarbageChunks while new garbage is queued, and removeGarbageChunks must not hit new rows.
 */
import type Database from "better-sqlite3";

export interface Migration {
  /** The user_version after this migration. */
  version: number;
  description: string;
  up(db: Database.Database): void;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: "buckets, object versions, multipart uploads, parts, garbage chunks, users, access keys",
    up(db) {
      db.exec(`
        CREATE TABLE buckets (
          name          TEXT PRIMARY KEY,
          owner_id      TEXT NOT NULL,
          created_at_ms INTEGER NOT NULL,
          region        TEXT NOT NULL,
          versioning    TEXT NOT NULL CHECK (versioning IN ('Unversioned', 'Enabled', 'Suspended')),
          acl           TEXT NOT NULL,
          tags_json     TEXT NOT NULL
        );

        CREATE TABLE object_versions (
          version_seq          INTEGER PRIMARY KEY AUTOINCREMENT,
          bucket               TEXT NOT NULL,
          key                  TEXT NOT NULL,
          version_id           TEXT NOT NULL,
          is_delete_marker     INTEGER NOT NULL CHECK (is_delete_marker IN (0, 1)),
          size_bytes           INTEGER NOT NULL,
          etag                 TEXT NOT NULL,
          last_modified_ms     INTEGER NOT NULL,
          owner_id             TEXT NOT NULL,
          storage_class        TEXT NOT NULL,
          content_type         TEXT,
          system_metadata_json TEXT NOT NULL,
          user_metadata_json   TEXT NOT NULL,
          tags_json            TEXT NOT NULL,
          checksum_json        TEXT,
          part_sizes_json      TEXT,
          chunks_json          TEXT NOT NULL
        );
        -- Latest version first: the first entry at (bucket, key) is the current version.
        CREATE UNIQUE INDEX object_versions_newest_first ON object_versions (bucket, key, version_seq DESC);
        CREATE UNIQUE INDEX object_versions_by_version_id ON object_versions (bucket, key, version_id);

        CREATE TABLE multipart_uploads (
          upload_id            TEXT PRIMARY KEY,
          bucket               TEXT NOT NULL,
          key                  TEXT NOT NULL,
          initiated_at_ms      INTEGER NOT NULL,
          owner_id             TEXT NOT NULL,
          storage_class        TEXT NOT NULL,
          content_type         TEXT,
          system_metadata_json TEXT NOT NULL,
          user_metadata_json   TEXT NOT NULL,
          tags_json            TEXT NOT NULL,
          checksum_algorithm   TEXT
        );
        -- Upload ids are time-ordered, so (key, upload_id) is also (key, initiation time), and it
        -- is the order the upload-id-marker of ListMultipartUploads compares in.
        CREATE UNIQUE INDEX multipart_uploads_by_key ON multipart_uploads (bucket, key, upload_id);
        CREATE INDEX multipart_uploads_by_initiated ON multipart_uploads (initiated_at_ms, upload_id);

        CREATE TABLE parts (
          upload_id        TEXT NOT NULL,
          part_number      INTEGER NOT NULL,
          size_bytes       INTEGER NOT NULL,
          etag             TEXT NOT NULL,
          last_modified_ms INTEGER NOT NULL,
          checksum_json    TEXT,
          chunks_json      TEXT NOT NULL,
          PRIMARY KEY (upload_id, part_number)
        );

        CREATE TABLE garbage_chunks (
          garbage_id   INTEGER PRIMARY KEY AUTOINCREMENT,
          volume_id    INTEGER NOT NULL,
          needle_id    TEXT NOT NULL,
          size_bytes   INTEGER NOT NULL,
          crc32        INTEGER NOT NULL,
          queued_at_ms INTEGER NOT NULL
        );

        CREATE TABLE users (
          user_id       TEXT PRIMARY KEY,
          display_name  TEXT NOT NULL,
          created_at_ms INTEGER NOT NULL,
          is_root       INTEGER NOT NULL CHECK (is_root IN (0, 1))
        );

        CREATE TABLE access_keys (
          access_key_id TEXT PRIMARY KEY,
          user_id       TEXT NOT NULL,
          secret_sealed TEXT NOT NULL,
          created_at_ms INTEGER NOT NULL
        );
        CREATE INDEX access_keys_by_user ON access_keys (user_id, access_key_id);
      `);
    },
  },
  {
    version: 2,
    description: "object_versions.inline_data: the bytes of a small object kept in its row",
    up(db) {
      // Added last, after chunks_json: only single-version reads select it.
      db.exec("ALTER TABLE object_versions ADD COLUMN inline_data BLOB");
    },
  },
  {
    version: 3,
    description: "object_versions.inline_crc32: the CRC32 of inline_data, checked on read",
    up(db) {
      // NULL in the rows before it: their bytes are checked against the MD5 ETag instead.
      db.exec("ALTER TABLE object_versions ADD COLUMN inline_crc32 INTEGER");
    },
  },
];

export const SCHEMA_VERSION_LATEST = MIGRATIONS.length;
