/**
 * The metadata store: buckets, object versions, multipart uploads and parts, chunk manifests,
 * garbage chunks awaiting deletion, users and access keys. One interface, two engines (SQLite,
 * embedded default; PostgreSQL, for several gateways), one contract suite over both.
 *
 * Every method is atomic. Methods that replace or remove data return what they took away,
 * and also queue its chunks in the garbage table in the same transaction, so a crash between
 * the metadata commit and the needle deletes leaks nothing: the GC worker drains the queue.
 */
import type { NeedleId, VolumeId } from "../base/index.js";

export type VersioningState = "Unversioned" | "Enabled" | "Suspended";
export type CannedAcl = "private" | "public-read";

export interface Bucket {
  name: string;
  ownerId: string;
  createdAtMs: number;
  region: string;
  versioning: VersioningState;
  acl: CannedAcl;
  tags: Record<string, string>;
}

/** One chunk of an object: a needle in a volume. Chunks are stored in object order. */
export interface ChunkRef {
  volumeId: VolumeId;
  needleId: NeedleId;
  sizeBytes: number;
  crc32: number;
}

export interface ObjectChecksum {
  algorithm: "CRC32" | "CRC32C" | "CRC64NVME" | "SHA1" | "SHA256";
  /** base64 of the digest, as it goes in the x-amz-checksum-* header ("...-N" for composite). */
  value: string;
  type: "FULL_OBJECT" | "COMPOSITE";
}

/** The literal version id S3 gives objects written while versioning is off or suspended. */
export const NULL_VERSION_ID = "null";

export interface BucketAndObjectVersion {
  bucket: Bucket | undefined;
  version: ObjectVersion | undefined;
}

/** getBucketAndObjectVersion for an engine in this process: the two reads one after the other. */
export async function bucketAndObjectVersion(
  store: Pick<MetadataStore, "getBucket" | "getObjectVersion">,
  bucket: string,
  key: string,
  versionId: string | undefined,
): Promise<BucketAndObjectVersion> {
  const found = await store.getBucket(bucket);
  return { bucket: found, version: found === undefined ? undefined : await store.getObjectVersion(bucket, key, versionId) };
}

export interface ObjectVersion {
  bucket: string;
  key: string;
  /** NULL_VERSION_ID, or a time-ordered id minted by the caller (UUIDv7 hex). */
  versionId: string;
  isDeleteMarker: boolean;
  sizeBytes: number;
  /** The ETag without quotes: hex MD5, or "<hex>-<partCount>" for multipart. */
  etag: string;
  lastModifiedMs: number;
  ownerId: string;
  storageClass: string;
  contentType: string | undefined;
  /** Content-Encoding, Content-Disposition, Cache-Control, Expires, Content-Language: lower-case names. */
  systemMetadata: Record<string, string>;
  /** x-amz-meta-* with the prefix removed, names lower-cased. */
  userMetadata: Record<string, string>;
  tags: Record<string, string>;
  checksum: ObjectChecksum | undefined;
  /** Sizes of the parts for a multipart object (GET ?partNumber=), else undefined. */
  partSizesBytes: number[] | undefined;
  chunks: ChunkRef[];
  /**
   * The bytes of a small object kept in its version row instead of a needle (`chunks` is then
   * empty): one fsync (the metadata commit's) acknowledges it, where a needle and its row take
   * two in turn. Set by getObjectVersion and getBucketAndObjectVersion; listings and the versions
   * a change returns as removed leave it out, as they carry no bytes of needles either.
   */
  inlineData?: Buffer;
  /**
   * CRC32 of inlineData, stored with it and returned with it: a read checks the bytes against it
   * (neither engine checksums a row's bytes), which costs a fifth of checking them against the
   * MD5 ETag. Versions whose row predates it have inlineData without it.
   */
  inlineCrc32?: number;
}

export interface WriteCondition {
  /** If-None-Match: * — fail when a current (non-delete-marker) version exists. */
  ifNoneMatchAny?: boolean;
  /** If-Match: etag — fail unless the current version exists with this ETag (no quotes). */
  ifMatchEtag?: string;
}

export interface PutObjectResult {
  /** Versions that no longer exist after the put (the replaced null version, if any). */
  removed: ObjectVersion[];
}

export interface DeleteObjectResult {
  /** The delete marker created, when the bucket is versioned and no versionId was given. */
  deleteMarker: ObjectVersion | undefined;
  /** The version permanently removed, if any. */
  removed: ObjectVersion | undefined;
}

export interface ListObjectsInput {
  bucket: string;
  prefix: string;
  delimiter: string | undefined;
  /** Return only keys (and common prefixes) strictly greater than this. */
  startAfter: string | undefined;
  maxKeys: number;
}

/**
 * A latest version as ListObjects shows it: the fields its XML has, and no metadata maps, chunk
 * manifest or version id. The engines read only these columns for a listing: a listed key then
 * costs a fraction of a whole version's allocation, and a page of them no longer makes the
 * young-generation GC copy megabytes of maps nobody reads (bench/PERFORMANCE.md).
 */
export interface ListedObject {
  key: string;
  sizeBytes: number;
  /** As ObjectVersion.etag: no quotes. */
  etag: string;
  lastModifiedMs: number;
  ownerId: string;
  storageClass: string;
  checksum: ObjectChecksum | undefined;
}

/** What a listing shows of a version: the projection of ObjectVersion onto ListedObject. */
export function listedObjectOf(version: ObjectVersion): ListedObject {
  const { key, sizeBytes, etag, lastModifiedMs, ownerId, storageClass, checksum } = version;
  return { key, sizeBytes, etag, lastModifiedMs, ownerId, storageClass, checksum };
}

/** A version or delete marker as ListObjectVersions shows it: ListedObject and what tells versions apart. */
export interface ListedVersion extends ListedObject {
  versionId: string;
  isDeleteMarker: boolean;
  isLatest: boolean;
}

/** What ListObjectVersions shows of a version: the projection of ObjectVersion onto ListedVersion. */
export function listedVersionOf(version: ObjectVersion, isLatest: boolean): ListedVersion {
  return { ...listedObjectOf(version), versionId: version.versionId, isDeleteMarker: version.isDeleteMarker, isLatest };
}

export interface ListObjectsResult {
  /** Latest versions that are not delete markers, in key order. */
  objects: ListedObject[];
  commonPrefixes: string[];
  isTruncated: boolean;
  /** When truncated: the last key or common prefix returned; pass as startAfter to continue. */
  nextStartAfter: string | undefined;
}

export interface ListObjectVersionsInput {
  bucket: string;
  prefix: string;
  delimiter: string | undefined;
  keyMarker: string | undefined;
  versionIdMarker: string | undefined;
  maxKeys: number;
}

export interface ListObjectVersionsResult {
  /** Versions and delete markers in key order, newest first within a key. */
  versions: ListedVersion[];
  commonPrefixes: string[];
  isTruncated: boolean;
  nextKeyMarker: string | undefined;
  nextVersionIdMarker: string | undefined;
}

export interface MultipartUpload {
  bucket: string;
  key: string;
  uploadId: string;
  initiatedAtMs: number;
  ownerId: string;
  storageClass: string;
  contentType: string | undefined;
  systemMetadata: Record<string, string>;
  userMetadata: Record<string, string>;
  tags: Record<string, string>;
  checksumAlgorithm: ObjectChecksum["algorithm"] | undefined;
}

export interface Part {
  uploadId: string;
  partNumber: number;
  sizeBytes: number;
  /** hex MD5 of the part, no quotes. */
  etag: string;
  lastModifiedMs: number;
  checksum: ObjectChecksum | undefined;
  chunks: ChunkRef[];
}

export interface ListMultipartUploadsInput {
  bucket: string;
  prefix: string;
  delimiter: string | undefined;
  keyMarker: string | undefined;
  uploadIdMarker: string | undefined;
  maxUploads: number;
}

export interface ListMultipartUploadsResult {
  uploads: MultipartUpload[];
  commonPrefixes: string[];
  isTruncated: boolean;
  nextKeyMarker: string | undefined;
  nextUploadIdMarker: string | undefined;
}

/** A page of the key walk behind ListObjectVersions and ListMultipartUploads, in either engine. */
export interface KeyWalkPage<Entry> {
  entries: Entry[];
  commonPrefixes: string[];
  isTruncated: boolean;
  nextKeyMarker: string | undefined;
  nextEntryMarker: string | undefined;
}

export function versionsPageResult(page: KeyWalkPage<ListedVersion>): ListObjectVersionsResult {
  const { entries, nextEntryMarker, ...rest } = page;
  return { versions: entries, ...rest, nextVersionIdMarker: nextEntryMarker };
}

export function uploadsPageResult(page: KeyWalkPage<MultipartUpload>): ListMultipartUploadsResult {
  const { entries, nextEntryMarker, ...rest } = page;
  return { uploads: entries, ...rest, nextUploadIdMarker: nextEntryMarker };
}

export interface User {
  userId: string;
  displayName: string;
  createdAtMs: number;
  isRoot: boolean;
}

export interface AccessKey {
  accessKeyId: string;
  userId: string;
  /** The secret as the auth layer stores it (sealed with the data directory's master key). */
  secretSealed: string;
  createdAtMs: number;
}

export interface GarbageChunk {
  garbageId: number;
  chunk: ChunkRef;
  queuedAtMs: number;
}

export interface MetadataStore {
  // ---- buckets ----
  /** Rejects with BucketAlreadyExists (carrying the current owner id). */
  createBucket(bucket: Bucket): Promise<void>;
  getBucket(name: string): Promise<Bucket | undefined>;
  listBuckets(): Promise<Bucket[]>;
  /** Rejects with NoSuchBucket, or BucketNotEmpty when any version or upload remains. */
  deleteBucket(name: string): Promise<void>;
  /** Rejects with NoSuchBucket. */
  updateBucket(name: string, change: Partial<Pick<Bucket, "versioning" | "acl" | "tags">>): Promise<void>;

  // ---- objects ----
  /**
   * Commit a new version. In an Enabled bucket it is added; otherwise it replaces the null
   * version. Rejects with NoSuchBucket or PreconditionFailed (the condition is checked in the
   * same transaction as the write, so two racing `If-None-Match: *` writers cannot both win).
   */
  putObjectVersion(version: ObjectVersion, condition?: WriteCondition): Promise<PutObjectResult>;
  /** The latest version (possibly a delete marker) or the given one; undefined when none. */
  getObjectVersion(bucket: string, key: string, versionId?: string): Promise<ObjectVersion | undefined>;
  /**
   * getBucket and getObjectVersion at once, as a GET or HEAD needs them: one round trip where
   * the store is remote. `version` is undefined when the bucket is.
   */
  getBucketAndObjectVersion(bucket: string, key: string, versionId?: string): Promise<BucketAndObjectVersion>;
  /**
   * Without versionId: Unversioned removes the null version; Enabled adds a delete marker
   * (minted with `newVersionId`); Suspended replaces the null version with a null delete marker.
   * With versionId: removes exactly that version (no error when it does not exist).
   */
  deleteObject(input: {
    bucket: string;
    key: string;
    versionId?: string;
    newVersionId: string;
    nowMs: number;
    ownerId: string;
  }): Promise<DeleteObjectResult>;
  /** Rejects with NoSuchKey / NoSuchVersion. */
  setObjectTags(bucket: string, key: string, versionId: string | undefined, tags: Record<string, string>): Promise<string>;
  /** Replace the system metadata of one version (its ACL lives there). Rejects with NoSuchVersion. */
  setObjectSystemMetadata(bucket: string, key: string, versionId: string, systemMetadata: Record<string, string>): Promise<void>;
  /** An ordered index scan whose cost follows the page: it seeks past each common prefix. */
  listObjects(input: ListObjectsInput): Promise<ListObjectsResult>;
  listObjectVersions(input: ListObjectVersionsInput): Promise<ListObjectVersionsResult>;

  // ---- multipart ----
  createMultipartUpload(upload: MultipartUpload): Promise<void>;
  getMultipartUpload(bucket: string, key: string, uploadId: string): Promise<MultipartUpload | undefined>;
  /** Rejects with NoSuchUpload. Returns the part it replaced (its chunks go to garbage). */
  putPart(bucket: string, key: string, part: Part): Promise<Part | undefined>;
  listParts(uploadId: string, partNumberMarker: number, maxParts: number): Promise<{ parts: Part[]; isTruncated: boolean }>;
  /** All parts of an upload in part-number order (CompleteMultipartUpload reads them). */
  getParts(uploadId: string): Promise<Part[]>;
  /**
   * Atomically: check the upload still exists (NoSuchUpload), drop it and its parts (the
   * chunks of parts not used by `version` go to garbage), and put `version` as putObjectVersion does.
   */
  completeMultipartUpload(uploadId: string, version: ObjectVersion, condition?: WriteCondition): Promise<PutObjectResult>;
  /** Rejects with NoSuchUpload. Parts' chunks go to garbage. */
  abortMultipartUpload(bucket: string, key: string, uploadId: string): Promise<void>;
  listMultipartUploads(input: ListMultipartUploadsInput): Promise<ListMultipartUploadsResult>;
  listMultipartUploadsInitiatedBefore(timeMs: number, limit: number): Promise<MultipartUpload[]>;

  // ---- garbage chunks (needles to delete on the data nodes) ----
  takeGarbageChunks(limit: number): Promise<GarbageChunk[]>;
  removeGarbageChunks(garbageIds: number[]): Promise<void>;

  // ---- users and keys ----
  /** Rejects with UserAlreadyExists. */
  createUser(user: User): Promise<void>;
  getUser(userId: string): Promise<User | undefined>;
  listUsers(): Promise<User[]>;
  /** Removes the user and its keys. Rejects with NoSuchUser. */
  deleteUser(userId: string): Promise<void>;
  /** Rejects with NoSuchUser or AccessKeyAlreadyExists. */
  addAccessKey(key: AccessKey): Promise<void>;
  getAccessKey(accessKeyId: string): Promise<AccessKey | undefined>;
  listAccessKeys(userId: string): Promise<AccessKey[]>;
  /** Rejects with NoSuchAccessKey. */
  removeAccessKey(accessKeyId: string): Promise<void>;

  close(): Promise<void>;
}
