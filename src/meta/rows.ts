/**
 * Rows as both SQL engines store them, and their conversion to and from the interface's types.
 * JSON columns hold metadata maps and chunk manifests; a chunk is a compact tuple.
 */
import type { NeedleId, VolumeId } from "../base/index.js";
import type {
  AccessKey,
  Bucket,
  ChunkRef,
  ListedObject,
  ListedVersion,
  MultipartUpload,
  ObjectChecksum,
  ObjectVersion,
  Part,
  User,
  VersioningState,
} from "./metadata-store.js";

export interface BucketRow {
  name: string;
  owner_id: string;
  created_at_ms: number;
  region: string;
  versioning: VersioningState;
  acl: Bucket["acl"];
  tags_json: string;
}

export interface ObjectVersionRow {
  version_seq: number;
  bucket: string;
  key: string;
  version_id: string;
  /** SQLite stores 0/1, PostgreSQL a boolean. */
  is_delete_marker: 0 | 1 | boolean;
  size_bytes: number;
  etag: string;
  last_modified_ms: number;
  owner_id: string;
  storage_class: string;
  content_type: string | null;
  system_metadata_json: string;
  user_metadata_json: string;
  tags_json: string;
  checksum_json: string | null;
  part_sizes_json: string | null;
  chunks_json: string;
  /** Only in the rows of single-version reads (GET, HEAD, copy); listings do not select it. */
  inline_data?: Buffer | null;
  /** With inline_data: its CRC32, null in rows written before it was kept. */
  inline_crc32?: number | null;
}

const LISTED_OBJECT_COLUMN_NAMES = [
  "key",
  "is_delete_marker",
  "size_bytes",
  "etag",
  "last_modified_ms",
  "owner_id",
  "storage_class",
  "checksum_json",
] as const satisfies ReadonlyArray<keyof ObjectVersionRow>;

/** The columns a listing of latest versions reads, in this order (see ListedObject). */
export const LISTED_OBJECT_COLUMNS = LISTED_OBJECT_COLUMN_NAMES.join(", ");

export type ListedObjectRow = Pick<ObjectVersionRow, (typeof LISTED_OBJECT_COLUMN_NAMES)[number]>;

/** The columns a listing of versions reads (see ListedVersion). */
export const LISTED_VERSION_COLUMNS = `${LISTED_OBJECT_COLUMNS}, version_id`;

export type ListedVersionRow = ListedObjectRow & Pick<ObjectVersionRow, "version_id">;

export interface UploadRow {
  upload_id: string;
  bucket: string;
  key: string;
  initiated_at_ms: number;
  owner_id: string;
  storage_class: string;
  content_type: string | null;
  system_metadata_json: string;
  user_metadata_json: string;
  tags_json: string;
  checksum_algorithm: ObjectChecksum["algorithm"] | null;
}

export interface PartRow {
  upload_id: string;
  part_number: number;
  size_bytes: number;
  etag: string;
  last_modified_ms: number;
  checksum_json: string | null;
  chunks_json: string;
}

export interface GarbageRow {
  garbage_id: number;
  volume_id: number;
  needle_id: string;
  size_bytes: number;
  crc32: number;
  queued_at_ms: number;
}

export interface UserRow {
  user_id: string;
  display_name: string;
  created_at_ms: number;
  is_root: 0 | 1 | boolean;
}

export interface AccessKeyRow {
  access_key_id: string;
  user_id: string;
  secret_sealed: string;
  created_at_ms: number;
}

/** A chunk as stored in chunks_json: [volumeId, needleId, sizeBytes, crc32]. */
export type ChunkTuple = [number, string, number, number];

/** A boolean column as either engine returns it: SQLite 0/1, PostgreSQL a boolean. */
function flagOf(value: 0 | 1 | boolean): boolean {
  return value === 1 || value === true;
}

export function encodeChunks(chunks: readonly ChunkRef[]): string {
  return JSON.stringify(chunks.map((chunk): ChunkTuple => [chunk.volumeId, chunk.needleId, chunk.sizeBytes, chunk.crc32]));
}

export function decodeChunks(json: string): ChunkRef[] {
  const tuples = JSON.parse(json) as ChunkTuple[];
  return tuples.map(([volumeId, needleId, sizeBytes, crc32]) => ({
    volumeId: volumeId as VolumeId,
    needleId: needleId as NeedleId,
    sizeBytes,
    crc32,
  }));
}

export function encodeOptional(value: unknown): string | null {
  return value === undefined ? null : JSON.stringify(value);
}

export function decodeOptional<T>(json: string | null): T | undefined {
  return json === null ? undefined : (JSON.parse(json) as T);
}

export function bucketFromRow(row: BucketRow): Bucket {
  return {
    name: row.name,
    ownerId: row.owner_id,
    createdAtMs: row.created_at_ms,
    region: row.region,
    versioning: row.versioning,
    acl: row.acl,
    tags: JSON.parse(row.tags_json) as Record<string, string>,
  };
}

export function versionFromRow(row: ObjectVersionRow): ObjectVersion {
  const version: ObjectVersion = {
    bucket: row.bucket,
    key: row.key,
    versionId: row.version_id,
    isDeleteMarker: flagOf(row.is_delete_marker),
    sizeBytes: row.size_bytes,
    etag: row.etag,
    lastModifiedMs: row.last_modified_ms,
    ownerId: row.owner_id,
    storageClass: row.storage_class,
    contentType: row.content_type ?? undefined,
    systemMetadata: JSON.parse(row.system_metadata_json) as Record<string, string>,
    userMetadata: JSON.parse(row.user_metadata_json) as Record<string, string>,
    tags: JSON.parse(row.tags_json) as Record<string, string>,
    checksum: decodeOptional<ObjectChecksum>(row.checksum_json),
    partSizesBytes: decodeOptional<number[]>(row.part_sizes_json),
    chunks: decodeChunks(row.chunks_json),
  };
  if (row.inline_data != null) {
    version.inlineData = row.inline_data;
    if (row.inline_crc32 != null) version.inlineCrc32 = row.inline_crc32;
  }
  return version;
}

export function listedObjectFromRow(row: ListedObjectRow): ListedObject {
  return {
    key: row.key,
    sizeBytes: row.size_bytes,
    etag: row.etag,
    lastModifiedMs: row.last_modified_ms,
    ownerId: row.owner_id,
    storageClass: row.storage_class,
    checksum: decodeOptional<ObjectChecksum>(row.checksum_json),
  };
}

export function listedVersionFromRow(row: ListedVersionRow, isLatest: boolean): ListedVersion {
  return {
    ...listedObjectFromRow(row),
    versionId: row.version_id,
    isDeleteMarker: flagOf(row.is_delete_marker),
    isLatest,
  };
}

export function uploadFromRow(row: UploadRow): MultipartUpload {
  return {
    bucket: row.bucket,
    key: row.key,
    uploadId: row.upload_id,
    initiatedAtMs: row.initiated_at_ms,
    ownerId: row.owner_id,
    storageClass: row.storage_class,
    contentType: row.content_type ?? undefined,
    systemMetadata: JSON.parse(row.system_metadata_json) as Record<string, string>,
    userMetadata: JSON.parse(row.user_metadata_json) as Record<string, string>,
    tags: JSON.parse(row.tags_json) as Record<string, string>,
    checksumAlgorithm: row.checksum_algorithm ?? undefined,
  };
}

export function partFromRow(row: PartRow): Part {
  return {
    uploadId: row.upload_id,
    partNumber: row.part_number,
    sizeBytes: row.size_bytes,
    etag: row.etag,
    lastModifiedMs: row.last_modified_ms,
    checksum: decodeOptional<ObjectChecksum>(row.checksum_json),
    chunks: decodeChunks(row.chunks_json),
  };
}

export function userFromRow(row: UserRow): User {
  return { userId: row.user_id, displayName: row.display_name, createdAtMs: row.created_at_ms, isRoot: flagOf(row.is_root) };
}

export function accessKeyFromRow(row: AccessKeyRow): AccessKey {
  return {
    accessKeyId: row.access_key_id,
    userId: row.user_id,
    secretSealed: row.secret_sealed,
    createdAtMs: row.created_at_ms,
  };
}

/** What object_versions holds for a version, in column order; is_delete_marker as the engine stores it. */
export type VersionInsertValues<Flag> = [
  string, string, string, Flag, number, string, number, string, string, string | null, string, string, string,
  string | null, string | null, string, Buffer | null, number | null,
];

export function versionInsertValues<Flag>(version: ObjectVersion, isDeleteMarker: Flag): VersionInsertValues<Flag> {
  return [
    version.bucket,
    version.key,
    version.versionId,
    isDeleteMarker,
    version.sizeBytes,
    version.etag,
    version.lastModifiedMs,
    version.ownerId,
    version.storageClass,
    version.contentType ?? null,
    JSON.stringify(version.systemMetadata),
    JSON.stringify(version.userMetadata),
    JSON.stringify(version.tags),
    encodeOptional(version.checksum),
    encodeOptional(version.partSizesBytes),
    encodeChunks(version.chunks),
    version.inlineData ?? null,
    version.inlineData === undefined ? null : (version.inlineCrc32 ?? null),
  ];
}
