/**
 * The contract every MetadataStore engine passes (SQLite now, PostgreSQL later). An engine's
 * test file calls `runMetadataStoreContract` with a factory that opens an empty store.
 *
 * What it proves: the semantics documented in metadata-store.ts (versioning states, delete
 * markers, write conditions, multipart, the garbage queue, users and keys, typed errors), and
 * that listings agree exactly with a naive in-memory model, page by page, over random keys with
 * random prefixes, delimiters and page sizes (the seed is printed; set CAIRN_TEST_SEED to replay).
 * Keys mix characters whose UTF-16 and UTF-8 orders differ, since S3 orders by UTF-8 bytes.
 */
import { describe, test, beforeEach, afterEach } from "node:test";
import type { TestContext } from "node:test";
import assert from "node:assert/strict";
import { randomInt } from "node:crypto";
import { newNeedleId, uuidV7Bytes } from "../base/index.js";
import type { VolumeId } from "../base/index.js";
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
} from "./errors.js";
import { listedObjectOf, listedVersionOf, NULL_VERSION_ID } from "./metadata-store.js";
import type {
  Bucket,
  ChunkRef,
  ListObjectsInput,
  ListObjectsResult,
  ListObjectVersionsInput,
  ListMultipartUploadsInput,
  MetadataStore,
  MultipartUpload,
  ObjectVersion,
  Part,
  VersioningState,
} from "./metadata-store.js";

// ---- fixtures ----

const OWNER_ID = "owner-1";

function newVersionId(): string {
  return uuidV7Bytes().toString("hex");
}

export function makeChunk(volumeId = 1): ChunkRef {
  return { volumeId: volumeId as VolumeId, needleId: newNeedleId(), sizeBytes: 1024, crc32: 0x1234abcd };
}

/** Test fixtures, shared with the engines' own tests. */
export function makeBucket(name: string, versioning: VersioningState = "Unversioned"): Bucket {
  return { name, ownerId: OWNER_ID, createdAtMs: 1_700_000_000_000, region: "us-east-1", versioning, acl: "private", tags: {} };
}

export function makeVersion(bucket: string, key: string, versionId: string, change: Partial<ObjectVersion> = {}): ObjectVersion {
  return {
    bucket,
    key,
    versionId,
    isDeleteMarker: false,
    sizeBytes: 2048,
    etag: "0123456789abcdef0123456789abcdef",
    lastModifiedMs: 1_700_000_000_000,
    ownerId: OWNER_ID,
    storageClass: "STANDARD",
    contentType: undefined,
    systemMetadata: {},
    userMetadata: {},
    tags: {},
    checksum: undefined,
    partSizesBytes: undefined,
    chunks: [makeChunk(), makeChunk()],
    ...change,
  };
}

function makeUpload(bucket: string, key: string, uploadId: string = newVersionId(), initiatedAtMs = 1_700_000_000_000): MultipartUpload {
  return {
    bucket,
    key,
    uploadId,
    initiatedAtMs,
    ownerId: OWNER_ID,
    storageClass: "STANDARD",
    contentType: "application/octet-stream",
    systemMetadata: { "cache-control": "no-cache" },
    userMetadata: { color: "blue" },
    tags: { project: "cairn" },
    checksumAlgorithm: "CRC32",
  };
}

function makePart(uploadId: string, partNumber: number): Part {
  return {
    uploadId,
    partNumber,
    sizeBytes: 5 * 1024 * 1024,
    etag: `${partNumber}`.padStart(32, "0"),
    lastModifiedMs: 1_700_000_000_000 + partNumber,
    checksum: { algorithm: "CRC32", value: "AAAAAA==", type: "COMPOSITE" },
    chunks: [makeChunk(2), makeChunk(3)],
  };
}

function needlesOf(chunks: readonly ChunkRef[]): string[] {
  return chunks.map((chunk) => chunk.needleId).sort();
}

async function garbageNeedles(store: MetadataStore): Promise<string[]> {
  return needlesOf((await store.takeGarbageChunks(1_000_000)).map((garbage) => garbage.chunk));
}

async function deleteObject(store: MetadataStore, bucket: string, key: string, versionId?: string) {
  return store.deleteObject({
    bucket,
    key,
    ...(versionId === undefined ? {} : { versionId }),
    newVersionId: newVersionId(),
    nowMs: 1_700_000_001_000,
    ownerId: OWNER_ID,
  });
}

async function listAllKeys(store: MetadataStore, input: Omit<ListObjectsInput, "startAfter" | "maxKeys">): Promise<string[]> {
  const page = await store.listObjects({ ...input, startAfter: undefined, maxKeys: 1000 });
  return [...page.objects.map((object) => object.key), ...page.commonPrefixes];
}

async function versionIdsOf(store: MetadataStore, bucket: string, key: string): Promise<string[]> {
  const page = await store.listObjectVersions({
    bucket,
    prefix: key,
    delimiter: undefined,
    keyMarker: undefined,
    versionIdMarker: undefined,
    maxKeys: 1000,
  });
  return page.versions.filter((version) => version.key === key).map((version) => version.versionId);
}

// ---- the naive model listings are compared against ----

function compareUtf8(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"));
}

function modelCommonPrefix(key: string, prefix: string, delimiter: string | undefined): string | undefined {
  if (delimiter === undefined || delimiter === "") return undefined;
  const index = key.indexOf(delimiter, prefix.length);
  return index < 0 ? undefined : key.slice(0, index + delimiter.length);
}

type ModelEntry<T> = { kind: "entry"; key: string; value: T } | { kind: "prefix"; key: string };

/**
 * Rolls up `items` (already in listing order) as S3 does: keep those under the prefix that are
 * not before the marker, fold keys into common prefixes once each, drop prefixes at or before
 * the marker, then cut the page.
 */
function modelPage<T>(input: {
  items: Array<{ key: string; value: T }>;
  prefix: string;
  delimiter: string | undefined;
  marker: string | undefined;
  keep: (item: { key: string; value: T }) => boolean;
  entryCountMax: number;
}): { entries: Array<ModelEntry<T>>; isTruncated: boolean } {
  const entries: Array<ModelEntry<T>> = [];
  const prefixesSeen = new Set<string>();
  for (const item of input.items) {
    if (!item.key.startsWith(input.prefix) || !input.keep(item)) continue;
    const commonPrefix = modelCommonPrefix(item.key, input.prefix, input.delimiter);
    if (commonPrefix === undefined) {
      entries.push({ kind: "entry", key: item.key, value: item.value });
      continue;
    }
    if (input.marker !== undefined && compareUtf8(commonPrefix, input.marker) <= 0) continue;
    if (prefixesSeen.has(commonPrefix)) continue;
    prefixesSeen.add(commonPrefix);
    entries.push({ kind: "prefix", key: commonPrefix });
  }
  const maxEntries = Math.max(0, input.entryCountMax);
  return { entries: entries.slice(0, maxEntries), isTruncated: entries.length > maxEntries };
}

/** A small seeded generator (mulberry32), so a failing random case replays from its seed. */
function seededRandom(seed: number): (limit: number) => number {
  let state = seed >>> 0;
  return (limit: number) => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    const unit = ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    return Math.floor(unit * limit);
  };
}

function testSeed(t: TestContext): number {
  const seed = process.env["CAIRN_TEST_SEED"] === undefined ? randomInt(2 ** 31) : Number(process.env["CAIRN_TEST_SEED"]);
  t.diagnostic(`seed ${seed} (CAIRN_TEST_SEED=${seed} replays it)`);
  return seed;
}

/**
 * Characters chosen for their orders: "\u007f" ends a one-byte range, "é" is two bytes,
 * "\uE000" is three bytes and sorts before the four-byte "\u{1F600}" in UTF-8 but after it in
 * UTF-16, and "\u{10FFFF}" is the largest code point (a prefix successor must carry past it).
 */
const KEY_ALPHABET = ["a", "b", "/", "/", "-", "\u007f", "é", "\uE000", "\u{1F600}", "\u{10FFFF}"];
const DELIMITERS = [undefined, "/", "/", "-", "é", "\u{1F600}", "\u{10FFFF}", "a/"];

function randomKey(random: (limit: number) => number): string {
  const length = 1 + random(7);
  let key = "";
  for (let index = 0; index < length; index += 1) key += KEY_ALPHABET[random(KEY_ALPHABET.length)]!;
  return key;
}

/**
 * The first `count` code points of `key`: slicing UTF-16 units could split a surrogate pair,
 * and a lone surrogate is no key S3 can receive (keys arrive as valid UTF-8).
 */
function headOf(key: string, count: number): string {
  return Array.from(key).slice(0, count).join("");
}

function randomPrefix(random: (limit: number) => number, keys: readonly string[]): string {
  const choice = random(4);
  if (choice === 0) return "";
  if (choice === 1) return headOf(randomKey(random), 1 + random(2));
  const key = keys[random(keys.length)] ?? "";
  return headOf(key, random(Array.from(key).length + 1));
}

function randomMarker(random: (limit: number) => number, keys: readonly string[]): string | undefined {
  const choice = random(4);
  if (choice === 0) return undefined;
  if (choice === 1) return randomKey(random);
  const key = keys[random(keys.length)] ?? "";
  return choice === 2 ? key : headOf(key, random(Array.from(key).length + 1));
}

/** A listing bug tends to loop forever; fail the test instead of the whole run. */
const LISTING_TEST_TIMEOUT_MS = 60_000;

export function runMetadataStoreContract(
  engineName: string,
  openStore: () => Promise<MetadataStore>,
  closeStore: (store: MetadataStore) => Promise<void> = (store) => store.close(),
): void {
  describe(`MetadataStore contract: ${engineName}`, () => {
    let store: MetadataStore;
    beforeEach(async () => {
      store = await openStore();
    });
    afterEach(async () => {
      await closeStore(store);
    });

    // ---- buckets ----

    test("buckets round-trip and list in name order", async () => {
      const bucketB = { ...makeBucket("bucket-b", "Enabled"), tags: { team: "storage" }, acl: "public-read" as const };
      await store.createBucket(bucketB);
      await store.createBucket(makeBucket("bucket-a"));
      assert.deepEqual(await store.getBucket("bucket-b"), bucketB);
      assert.equal(await store.getBucket("missing"), undefined);
      assert.deepEqual(
        (await store.listBuckets()).map((bucket) => bucket.name),
        ["bucket-a", "bucket-b"],
      );
    });

    test("creating an existing bucket fails with BucketAlreadyExists carrying the owner", async () => {
      await store.createBucket(makeBucket("bucket-a"));
      await assert.rejects(store.createBucket({ ...makeBucket("bucket-a"), ownerId: "someone-else" }), (error: unknown) => {
        assert.ok(error instanceof BucketAlreadyExists);
        assert.equal(error.ownerId, OWNER_ID);
        return true;
      });
    });

    test("updateBucket changes only the given fields; missing buckets fail with NoSuchBucket", async () => {
      await store.createBucket(makeBucket("bucket-a"));
      await store.updateBucket("bucket-a", { versioning: "Enabled" });
      await store.updateBucket("bucket-a", { tags: { a: "1" } });
      const bucket = await store.getBucket("bucket-a");
      assert.equal(bucket?.versioning, "Enabled");
      assert.equal(bucket?.acl, "private");
      assert.deepEqual(bucket?.tags, { a: "1" });
      await assert.rejects(store.updateBucket("missing", { acl: "private" }), NoSuchBucket);
      await assert.rejects(store.deleteBucket("missing"), NoSuchBucket);
    });

    test("a bucket read before a change is read changed afterwards (stores may cache buckets)", async () => {
      await store.createBucket(makeBucket("bucket-a"));
      assert.equal((await store.getBucket("bucket-a"))?.versioning, "Unversioned");
      await store.updateBucket("bucket-a", { versioning: "Enabled", acl: "public-read", tags: { t: "1" } });
      const updated = await store.getBucket("bucket-a");
      assert.equal(updated?.versioning, "Enabled");
      assert.equal(updated?.acl, "public-read");
      assert.deepEqual(updated?.tags, { t: "1" });
      await store.deleteBucket("bucket-a");
      assert.equal(await store.getBucket("bucket-a"), undefined);
      await store.createBucket({ ...makeBucket("bucket-a"), ownerId: "another-owner" });
      assert.equal((await store.getBucket("bucket-a"))?.ownerId, "another-owner");
      assert.equal((await store.getBucket("bucket-a"))?.versioning, "Unversioned");
    });

    test("the latest version read before each change is read changed after it (stores may cache it)", async () => {
      await store.createBucket(makeBucket("bucket-a", "Enabled"));
      const latest = async () => store.getObjectVersion("bucket-a", "key");
      assert.equal(await latest(), undefined);
      const first = makeVersion("bucket-a", "key", newVersionId(), { etag: "e1" });
      await store.putObjectVersion(first);
      assert.equal((await latest())?.etag, "e1");
      const second = makeVersion("bucket-a", "key", newVersionId(), { etag: "e2" });
      await store.putObjectVersion(second);
      assert.equal((await latest())?.etag, "e2");
      await store.setObjectTags("bucket-a", "key", undefined, { t: "2" });
      assert.deepEqual((await latest())?.tags, { t: "2" });
      await store.setObjectSystemMetadata("bucket-a", "key", second.versionId, { "x-amz-acl": "public-read" });
      assert.deepEqual((await latest())?.systemMetadata, { "x-amz-acl": "public-read" });
      const { deleteMarker } = await deleteObject(store, "bucket-a", "key");
      assert.equal((await latest())?.isDeleteMarker, true);
      await deleteObject(store, "bucket-a", "key", deleteMarker!.versionId);
      assert.equal((await latest())?.etag, "e2");
      await deleteObject(store, "bucket-a", "key", second.versionId);
      assert.equal((await latest())?.etag, "e1");
      const upload = makeUpload("bucket-a", "key");
      await store.createMultipartUpload(upload);
      await store.completeMultipartUpload(upload.uploadId, makeVersion("bucket-a", "key", newVersionId(), { etag: "e3-2" }));
      assert.equal((await latest())?.etag, "e3-2");
      await deleteObject(store, "bucket-a", "key", first.versionId);
      assert.equal((await latest())?.etag, "e3-2");
    });

    test("deleteBucket refuses while any version, delete marker or upload remains", async () => {
      await store.createBucket(makeBucket("bucket-a", "Enabled"));
      const versionId = newVersionId();
      await store.putObjectVersion(makeVersion("bucket-a", "key", versionId));
      await assert.rejects(store.deleteBucket("bucket-a"), BucketNotEmpty);
      const { deleteMarker } = await deleteObject(store, "bucket-a", "key");
      await deleteObject(store, "bucket-a", "key", versionId);
      // Only a delete marker is left, and it still counts.
      await assert.rejects(store.deleteBucket("bucket-a"), BucketNotEmpty);
      await deleteObject(store, "bucket-a", "key", deleteMarker!.versionId);
      const upload = makeUpload("bucket-a", "key");
      await store.createMultipartUpload(upload);
      await assert.rejects(store.deleteBucket("bucket-a"), BucketNotEmpty);
      await store.abortMultipartUpload("bucket-a", "key", upload.uploadId);
      await store.deleteBucket("bucket-a");
      assert.equal(await store.getBucket("bucket-a"), undefined);
    });

    test("listing a missing bucket fails with NoSuchBucket", async () => {
      await assert.rejects(
        store.listObjects({ bucket: "missing", prefix: "", delimiter: undefined, startAfter: undefined, maxKeys: 10 }),
        NoSuchBucket,
      );
      await assert.rejects(
        store.listObjectVersions({ bucket: "missing", prefix: "", delimiter: undefined, keyMarker: undefined, versionIdMarker: undefined, maxKeys: 10 }),
        NoSuchBucket,
      );
      await assert.rejects(
        store.listMultipartUploads({ bucket: "missing", prefix: "", delimiter: undefined, keyMarker: undefined, uploadIdMarker: undefined, maxUploads: 10 }),
        NoSuchBucket,
      );
    });

    // ---- object versions ----

    test("an object version round-trips every field", async () => {
      await store.createBucket(makeBucket("bucket-a"));
      const version = makeVersion("bucket-a", "dir/file.txt", NULL_VERSION_ID, {
        contentType: "text/plain",
        systemMetadata: { "content-encoding": "gzip", "cache-control": "max-age=60" },
        userMetadata: { color: "blue", "x-empty": "" },
        tags: { project: "cairn" },
        checksum: { algorithm: "CRC64NVME", value: "AAAAAAAAAAA=", type: "FULL_OBJECT" },
        partSizesBytes: [5 * 1024 * 1024, 17],
        etag: "0123456789abcdef0123456789abcdef-2",
      });
      assert.deepEqual(await store.putObjectVersion(version), { removed: [] });
      assert.deepEqual(await store.getObjectVersion("bucket-a", "dir/file.txt"), version);
      assert.deepEqual(await store.getObjectVersion("bucket-a", "dir/file.txt", NULL_VERSION_ID), version);
      assert.equal(await store.getObjectVersion("bucket-a", "dir/other"), undefined);
      assert.equal(await store.getObjectVersion("bucket-a", "dir/file.txt", newVersionId()), undefined);
    });

    test("a small object's bytes and their CRC32 round-trip in its row; only single-version reads carry them", async () => {
      await store.createBucket(makeBucket("bucket-a"));
      const data = Buffer.from([0, 1, 2, 255, 0, 128, ...Buffer.from("inline object bytes")]);
      // A CRC32 past 2^31: the engines store it as a number, not a signed 32-bit one.
      const version = makeVersion("bucket-a", "small", NULL_VERSION_ID, { sizeBytes: data.length, chunks: [], inlineData: data, inlineCrc32: 0xfedcba98 });
      const { inlineData: _bytes, inlineCrc32: _crc32, ...withoutBytes } = version;
      assert.deepEqual(await store.putObjectVersion(version), { removed: [] });
      assert.deepEqual(await store.getObjectVersion("bucket-a", "small"), version);
      assert.deepEqual(await store.getObjectVersion("bucket-a", "small", NULL_VERSION_ID), version);
      const bucket = await store.getBucket("bucket-a");
      assert.deepEqual(await store.getBucketAndObjectVersion("bucket-a", "small"), { bucket, version });
      const listed = await store.listObjects({ bucket: "bucket-a", prefix: "", delimiter: undefined, startAfter: undefined, maxKeys: 10 });
      assert.deepEqual(listed.objects, [listedObjectOf(version)]);
      // Replaced, it leaves no garbage: its bytes went with its row.
      const next = makeVersion("bucket-a", "small", NULL_VERSION_ID, { etag: "e".repeat(32) });
      assert.deepEqual((await store.putObjectVersion(next)).removed, [withoutBytes]);
      assert.deepEqual(await garbageNeedles(store), []);
      assert.deepEqual(await store.getObjectVersion("bucket-a", "small"), next);
      // Bytes without a CRC32 (as rows from before it was kept) read back without one.
      const older = makeVersion("bucket-a", "older", NULL_VERSION_ID, { sizeBytes: data.length, chunks: [], inlineData: data });
      await store.putObjectVersion(older);
      assert.deepEqual(await store.getObjectVersion("bucket-a", "older"), older);
    });

    test("getBucketAndObjectVersion answers as getBucket and getObjectVersion do", async () => {
      assert.deepEqual(await store.getBucketAndObjectVersion("missing", "key"), { bucket: undefined, version: undefined });
      await store.createBucket(makeBucket("bucket-a"));
      const bucket = await store.getBucket("bucket-a");
      assert.deepEqual(await store.getBucketAndObjectVersion("bucket-a", "key"), { bucket, version: undefined });
      const version = makeVersion("bucket-a", "key", NULL_VERSION_ID);
      await store.putObjectVersion(version);
      assert.deepEqual(await store.getBucketAndObjectVersion("bucket-a", "key"), { bucket, version });
      assert.deepEqual(await store.getBucketAndObjectVersion("bucket-a", "key", NULL_VERSION_ID), { bucket, version });
      assert.deepEqual(await store.getBucketAndObjectVersion("bucket-a", "key", newVersionId()), { bucket, version: undefined });
    });

    test("putObjectVersion into a missing bucket fails with NoSuchBucket", async () => {
      await assert.rejects(store.putObjectVersion(makeVersion("missing", "key", NULL_VERSION_ID)), NoSuchBucket);
    });

    test("an Unversioned overwrite replaces the null version and queues its chunks", async () => {
      await store.createBucket(makeBucket("bucket-a"));
      const first = makeVersion("bucket-a", "key", NULL_VERSION_ID);
      const second = makeVersion("bucket-a", "key", NULL_VERSION_ID, { etag: "f".repeat(32) });
      await store.putObjectVersion(first);
      const result = await store.putObjectVersion(second);
      assert.deepEqual(result.removed, [first]);
      assert.deepEqual(await store.getObjectVersion("bucket-a", "key"), second);
      assert.deepEqual(await versionIdsOf(store, "bucket-a", "key"), [NULL_VERSION_ID]);
      assert.deepEqual(await garbageNeedles(store), needlesOf(first.chunks));
    });

    test("an Enabled bucket keeps every version, newest first", async () => {
      await store.createBucket(makeBucket("bucket-a", "Enabled"));
      const ids = [newVersionId(), newVersionId(), newVersionId()];
      for (const id of ids) assert.deepEqual(await store.putObjectVersion(makeVersion("bucket-a", "key", id)), { removed: [] });
      assert.equal((await store.getObjectVersion("bucket-a", "key"))?.versionId, ids[2]);
      assert.equal((await store.getObjectVersion("bucket-a", "key", ids[0]))?.versionId, ids[0]);
      const page = await store.listObjectVersions({
        bucket: "bucket-a",
        prefix: "",
        delimiter: undefined,
        keyMarker: undefined,
        versionIdMarker: undefined,
        maxKeys: 100,
      });
      assert.deepEqual(
        page.versions.map((version) => [version.versionId, version.isLatest]),
        [
          [ids[2], true],
          [ids[1], false],
          [ids[0], false],
        ],
      );
      assert.deepEqual(await garbageNeedles(store), []);
    });

    test("under Suspended the null version takes the newest place and real versions stay", async () => {
      await store.createBucket(makeBucket("bucket-a", "Enabled"));
      const v1 = newVersionId();
      const v2 = newVersionId();
      await store.putObjectVersion(makeVersion("bucket-a", "key", v1));
      await store.putObjectVersion(makeVersion("bucket-a", "key", v2));
      await store.updateBucket("bucket-a", { versioning: "Suspended" });
      const null1 = makeVersion("bucket-a", "key", NULL_VERSION_ID);
      assert.deepEqual(await store.putObjectVersion(null1), { removed: [] });
      assert.deepEqual(await versionIdsOf(store, "bucket-a", "key"), [NULL_VERSION_ID, v2, v1]);

      // Re-enabled: a new real version goes above the null version.
      await store.updateBucket("bucket-a", { versioning: "Enabled" });
      const v3 = newVersionId();
      await store.putObjectVersion(makeVersion("bucket-a", "key", v3));
      assert.deepEqual(await versionIdsOf(store, "bucket-a", "key"), [v3, NULL_VERSION_ID, v2, v1]);

      // Suspended again: the rewritten null version moves from below v3 to the top.
      await store.updateBucket("bucket-a", { versioning: "Suspended" });
      const null2 = makeVersion("bucket-a", "key", NULL_VERSION_ID, { etag: "e".repeat(32) });
      const result = await store.putObjectVersion(null2);
      assert.deepEqual(result.removed, [null1]);
      assert.deepEqual(await versionIdsOf(store, "bucket-a", "key"), [NULL_VERSION_ID, v3, v2, v1]);
      assert.deepEqual(await store.getObjectVersion("bucket-a", "key"), null2);
      assert.deepEqual(await garbageNeedles(store), needlesOf(null1.chunks));
    });

    test("deleteObject in an Unversioned bucket removes the null version and leaves no marker", async () => {
      await store.createBucket(makeBucket("bucket-a"));
      const version = makeVersion("bucket-a", "key", NULL_VERSION_ID);
      await store.putObjectVersion(version);
      const result = await deleteObject(store, "bucket-a", "key");
      assert.deepEqual(result, { deleteMarker: undefined, removed: version });
      assert.equal(await store.getObjectVersion("bucket-a", "key"), undefined);
      assert.deepEqual(await garbageNeedles(store), needlesOf(version.chunks));
      assert.deepEqual(await deleteObject(store, "bucket-a", "key"), { deleteMarker: undefined, removed: undefined });
      await assert.rejects(deleteObject(store, "missing", "key"), NoSuchBucket);
    });

    test("deleteObject in an Enabled bucket adds a delete marker that hides the key", async () => {
      await store.createBucket(makeBucket("bucket-a", "Enabled"));
      const v1 = newVersionId();
      await store.putObjectVersion(makeVersion("bucket-a", "key", v1));
      const markerId = newVersionId();
      const result = await store.deleteObject({ bucket: "bucket-a", key: "key", newVersionId: markerId, nowMs: 1234, ownerId: "deleter" });
      assert.equal(result.removed, undefined);
      assert.equal(result.deleteMarker?.versionId, markerId);
      assert.equal(result.deleteMarker?.isDeleteMarker, true);
      assert.equal(result.deleteMarker?.lastModifiedMs, 1234);
      assert.equal(result.deleteMarker?.ownerId, "deleter");
      assert.deepEqual(result.deleteMarker?.chunks, []);
      const latest = await store.getObjectVersion("bucket-a", "key");
      assert.equal(latest?.isDeleteMarker, true);
      assert.equal(latest?.versionId, markerId);
      assert.deepEqual(await listAllKeys(store, { bucket: "bucket-a", prefix: "", delimiter: undefined }), []);
      assert.deepEqual(await versionIdsOf(store, "bucket-a", "key"), [markerId, v1]);
      assert.deepEqual(await garbageNeedles(store), []);
    });

    test("deleteObject in a Suspended bucket replaces the null version with a null delete marker", async () => {
      await store.createBucket(makeBucket("bucket-a", "Enabled"));
      const v1 = newVersionId();
      await store.putObjectVersion(makeVersion("bucket-a", "key", v1));
      await store.updateBucket("bucket-a", { versioning: "Suspended" });
      const nullVersion = makeVersion("bucket-a", "key", NULL_VERSION_ID);
      await store.putObjectVersion(nullVersion);
      const result = await deleteObject(store, "bucket-a", "key");
      assert.deepEqual(result.removed, nullVersion);
      assert.equal(result.deleteMarker?.versionId, NULL_VERSION_ID);
      assert.equal(result.deleteMarker?.isDeleteMarker, true);
      assert.deepEqual(await versionIdsOf(store, "bucket-a", "key"), [NULL_VERSION_ID, v1]);
      assert.equal((await store.getObjectVersion("bucket-a", "key"))?.isDeleteMarker, true);
      assert.deepEqual(await garbageNeedles(store), needlesOf(nullVersion.chunks));

      // Without a null version to remove, it still leaves a null delete marker (replacing the old one).
      const again = await deleteObject(store, "bucket-a", "key");
      assert.equal(again.removed?.isDeleteMarker, true);
      assert.deepEqual(await versionIdsOf(store, "bucket-a", "key"), [NULL_VERSION_ID, v1]);
    });

    test("deleteObject with a versionId removes exactly that version; removing a marker uncovers the key", async () => {
      await store.createBucket(makeBucket("bucket-a", "Enabled"));
      const v1 = makeVersion("bucket-a", "key", newVersionId());
      const v2 = makeVersion("bucket-a", "key", newVersionId());
      await store.putObjectVersion(v1);
      await store.putObjectVersion(v2);
      const { deleteMarker } = await deleteObject(store, "bucket-a", "key");
      const removedV1 = await deleteObject(store, "bucket-a", "key", v1.versionId);
      assert.deepEqual(removedV1, { deleteMarker: undefined, removed: v1 });
      assert.deepEqual(await garbageNeedles(store), needlesOf(v1.chunks));
      assert.deepEqual(await listAllKeys(store, { bucket: "bucket-a", prefix: "", delimiter: undefined }), []);
      const removedMarker = await deleteObject(store, "bucket-a", "key", deleteMarker!.versionId);
      assert.equal(removedMarker.removed?.isDeleteMarker, true);
      assert.deepEqual(await listAllKeys(store, { bucket: "bucket-a", prefix: "", delimiter: undefined }), ["key"]);
      assert.deepEqual(await store.getObjectVersion("bucket-a", "key"), v2);
      assert.deepEqual(await deleteObject(store, "bucket-a", "key", newVersionId()), { deleteMarker: undefined, removed: undefined });
    });

    test("If-None-Match: * fails on a current version and passes on none or a delete marker", async () => {
      await store.createBucket(makeBucket("bucket-a", "Enabled"));
      const v1 = makeVersion("bucket-a", "key", newVersionId());
      await store.putObjectVersion(v1, { ifNoneMatchAny: true });
      await assert.rejects(store.putObjectVersion(makeVersion("bucket-a", "key", newVersionId()), { ifNoneMatchAny: true }), PreconditionFailed);
      assert.deepEqual(await versionIdsOf(store, "bucket-a", "key"), [v1.versionId]);
      await deleteObject(store, "bucket-a", "key");
      const v3 = makeVersion("bucket-a", "key", newVersionId());
      await store.putObjectVersion(v3, { ifNoneMatchAny: true });
      assert.equal((await store.getObjectVersion("bucket-a", "key"))?.versionId, v3.versionId);
    });

    test("If-Match fails on no version, a delete marker or another ETag, and passes on the same ETag", async () => {
      await store.createBucket(makeBucket("bucket-a"));
      const etag = "a".repeat(32);
      await assert.rejects(store.putObjectVersion(makeVersion("bucket-a", "key", NULL_VERSION_ID), { ifMatchEtag: etag }), PreconditionFailed);
      const first = makeVersion("bucket-a", "key", NULL_VERSION_ID, { etag });
      await store.putObjectVersion(first);
      await assert.rejects(
        store.putObjectVersion(makeVersion("bucket-a", "key", NULL_VERSION_ID), { ifMatchEtag: "b".repeat(32) }),
        PreconditionFailed,
      );
      // A failed condition changes nothing: no version replaced, nothing queued.
      assert.deepEqual(await store.getObjectVersion("bucket-a", "key"), first);
      assert.deepEqual(await garbageNeedles(store), []);
      const second = makeVersion("bucket-a", "key", NULL_VERSION_ID);
      assert.deepEqual(await store.putObjectVersion(second, { ifMatchEtag: etag }), { removed: [first] });

      await store.updateBucket("bucket-a", { versioning: "Enabled" });
      await deleteObject(store, "bucket-a", "key");
      await assert.rejects(
        store.putObjectVersion(makeVersion("bucket-a", "key", newVersionId()), { ifMatchEtag: second.etag }),
        PreconditionFailed,
      );
    });

    test("racing If-None-Match: * writers on one key: exactly one wins", async () => {
      await store.createBucket(makeBucket("bucket-a", "Enabled"));
      for (const bucketKey of ["pair", "crowd"]) {
        const writerCount = bucketKey === "pair" ? 2 : 10;
        const outcomes = await Promise.allSettled(
          Array.from({ length: writerCount }, () =>
            store.putObjectVersion(makeVersion("bucket-a", bucketKey, newVersionId()), { ifNoneMatchAny: true }),
          ),
        );
        const winners = outcomes.filter((outcome) => outcome.status === "fulfilled");
        const losers = outcomes.filter((outcome): outcome is PromiseRejectedResult => outcome.status === "rejected");
        assert.equal(winners.length, 1, bucketKey);
        for (const loser of losers) assert.ok(loser.reason instanceof PreconditionFailed, String(loser.reason));
        assert.equal((await versionIdsOf(store, "bucket-a", bucketKey)).length, 1);
      }
    });

    test("setObjectTags tags the latest or the given version and names it; missing ones fail", async () => {
      await store.createBucket(makeBucket("bucket-a", "Enabled"));
      const v1 = newVersionId();
      const v2 = newVersionId();
      await store.putObjectVersion(makeVersion("bucket-a", "key", v1));
      await store.putObjectVersion(makeVersion("bucket-a", "key", v2));
      assert.equal(await store.setObjectTags("bucket-a", "key", undefined, { a: "1" }), v2);
      assert.equal(await store.setObjectTags("bucket-a", "key", v1, { b: "2" }), v1);
      assert.deepEqual((await store.getObjectVersion("bucket-a", "key", v2))?.tags, { a: "1" });
      assert.deepEqual((await store.getObjectVersion("bucket-a", "key", v1))?.tags, { b: "2" });
      await assert.rejects(store.setObjectTags("bucket-a", "other", undefined, {}), NoSuchKey);
      await assert.rejects(store.setObjectTags("bucket-a", "key", newVersionId(), {}), NoSuchVersion);
      await deleteObject(store, "bucket-a", "key");
      await assert.rejects(store.setObjectTags("bucket-a", "key", undefined, {}), NoSuchKey);
      await assert.rejects(store.setObjectTags("missing", "key", undefined, {}), NoSuchBucket);
    });

    test("setObjectSystemMetadata replaces one version's system metadata only", async () => {
      await store.createBucket(makeBucket("bucket-a", "Enabled"));
      const v1 = newVersionId();
      const v2 = newVersionId();
      await store.putObjectVersion(makeVersion("bucket-a", "key", v1));
      await store.putObjectVersion(makeVersion("bucket-a", "key", v2));
      await store.setObjectSystemMetadata("bucket-a", "key", v1, { "x-amz-acl": "public-read" });
      assert.deepEqual((await store.getObjectVersion("bucket-a", "key", v1))?.systemMetadata, { "x-amz-acl": "public-read" });
      assert.notDeepEqual((await store.getObjectVersion("bucket-a", "key", v2))?.systemMetadata, { "x-amz-acl": "public-read" });
      await assert.rejects(store.setObjectSystemMetadata("bucket-a", "key", newVersionId(), {}), NoSuchVersion);
    });

    // ---- listing objects ----

    test("listObjects gives each listed key's listing fields, and only those", async () => {
      await store.createBucket(makeBucket("bucket-a"));
      const full = makeVersion("bucket-a", "full", NULL_VERSION_ID, {
        sizeBytes: 5_000_000,
        etag: "fedcba9876543210fedcba9876543210-2",
        lastModifiedMs: 1_700_000_123_456,
        storageClass: "STANDARD_IA",
        contentType: "text/plain",
        systemMetadata: { "cache-control": "no-cache" },
        userMetadata: { color: "blue" },
        tags: { project: "cairn" },
        checksum: { algorithm: "CRC32C", value: "AAAAAA==-2", type: "COMPOSITE" },
        partSizesBytes: [4_000_000, 1_000_000],
      });
      const plain = makeVersion("bucket-a", "plain", NULL_VERSION_ID);
      await store.putObjectVersion(full);
      await store.putObjectVersion(plain);
      const listed = await store.listObjects({ bucket: "bucket-a", prefix: "", delimiter: undefined, startAfter: undefined, maxKeys: 10 });
      assert.deepEqual(listed.objects, [
        {
          key: "full",
          sizeBytes: 5_000_000,
          etag: "fedcba9876543210fedcba9876543210-2",
          lastModifiedMs: 1_700_000_123_456,
          ownerId: OWNER_ID,
          storageClass: "STANDARD_IA",
          checksum: { algorithm: "CRC32C", value: "AAAAAA==-2", type: "COMPOSITE" },
        },
        listedObjectOf(plain),
      ]);
    });


    test("listObjects pages by prefix, delimiter, startAfter and maxKeys", async () => {
      await store.createBucket(makeBucket("bucket-a"));
      const keys = ["a.txt", "dir/1", "dir/2", "dir/sub/3", "dis", "photos/2024/x.jpg", "photos/2025/y.jpg", "z"];
      for (const key of keys) await store.putObjectVersion(makeVersion("bucket-a", key, NULL_VERSION_ID));
      const base = { bucket: "bucket-a", prefix: "", delimiter: "/", startAfter: undefined, maxKeys: 1000 };
      const root = await store.listObjects(base);
      assert.deepEqual(root.objects.map((object) => object.key), ["a.txt", "dis", "z"]);
      assert.deepEqual(root.commonPrefixes, ["dir/", "photos/"]);
      assert.equal(root.isTruncated, false);
      assert.equal(root.nextStartAfter, undefined);

      const dir = await store.listObjects({ ...base, prefix: "dir/" });
      assert.deepEqual(dir.objects.map((object) => object.key), ["dir/1", "dir/2"]);
      assert.deepEqual(dir.commonPrefixes, ["dir/sub/"]);

      const firstPage = await store.listObjects({ ...base, maxKeys: 2 });
      assert.deepEqual(firstPage.objects.map((object) => object.key), ["a.txt"]);
      assert.deepEqual(firstPage.commonPrefixes, ["dir/"]);
      assert.equal(firstPage.isTruncated, true);
      assert.equal(firstPage.nextStartAfter, "dir/");
      const secondPage = await store.listObjects({ ...base, maxKeys: 2, startAfter: "dir/" });
      assert.deepEqual(secondPage.objects.map((object) => object.key), ["dis"]);
      assert.deepEqual(secondPage.commonPrefixes, ["photos/"]);
      assert.equal(secondPage.isTruncated, true);
      const thirdPage = await store.listObjects({ ...base, maxKeys: 2, startAfter: secondPage.nextStartAfter });
      assert.deepEqual(thirdPage.objects.map((object) => object.key), ["z"]);
      assert.equal(thirdPage.isTruncated, false);

      // A startAfter inside a common prefix: the prefix sorts before it, so it is not repeated.
      const inside = await store.listObjects({ ...base, startAfter: "dir/1" });
      assert.deepEqual(inside.commonPrefixes, ["photos/"]);
      // Exactly maxKeys entries left: not truncated.
      const exact = await store.listObjects({ ...base, delimiter: undefined, maxKeys: keys.length });
      assert.equal(exact.isTruncated, false);
      assert.equal(exact.objects.length, keys.length);
      const none = await store.listObjects({ ...base, maxKeys: 0 });
      assert.deepEqual([none.objects, none.commonPrefixes, none.isTruncated], [[], [], false]);
    });

    test("delete markers hide keys without using maxKeys, and a prefix of deleted keys is not listed", async () => {
      await store.createBucket(makeBucket("bucket-a", "Enabled"));
      const keys = ["a", "b", "c", "d", "e", "gone/1", "gone/2", "kept/1", "kept/2"];
      for (const key of keys) await store.putObjectVersion(makeVersion("bucket-a", key, newVersionId()));
      for (const key of ["b", "c", "d", "gone/1", "gone/2", "kept/1"]) await deleteObject(store, "bucket-a", key);
      const page = await store.listObjects({ bucket: "bucket-a", prefix: "", delimiter: undefined, startAfter: undefined, maxKeys: 2 });
      assert.deepEqual(page.objects.map((object) => object.key), ["a", "e"]);
      assert.equal(page.isTruncated, true);
      const rolled = await store.listObjects({ bucket: "bucket-a", prefix: "", delimiter: "/", startAfter: undefined, maxKeys: 10 });
      assert.deepEqual(rolled.objects.map((object) => object.key), ["a", "e"]);
      assert.deepEqual(rolled.commonPrefixes, ["kept/"]);
    });

    test("keys list in UTF-8 byte order, and seeking past a common prefix handles high code points", { timeout: LISTING_TEST_TIMEOUT_MS }, async () => {
      await store.createBucket(makeBucket("bucket-a"));
      const keys = [
        "a",
        "a\u007f",
        "a\u007fz",
        "a\u0080",
        "é",
        "é/x",
        "\uE000",
        "\uFFFD",
        "\u{1F600}",
        "\u{1F600}/1",
        "\u{1F600}/2",
        "\u{1F600}0",
        "\u{10FFFF}",
        "\u{10FFFF}\u{10FFFF}/a",
        "\u{10FFFF}\u{10FFFF}/b",
        "\u{10FFFF}\u{10FFFF}0",
        "日本/東京",
        "日本/大阪",
        "日本語",
      ];
      for (const key of keys) await store.putObjectVersion(makeVersion("bucket-a", key, NULL_VERSION_ID));
      const sorted = [...keys].sort(compareUtf8);
      // The trap: UTF-16 puts the emoji (a surrogate pair) before U+E000; UTF-8 puts it after.
      assert.ok(sorted.indexOf("\uE000") < sorted.indexOf("\u{1F600}"));
      assert.deepEqual(await listAllKeys(store, { bucket: "bucket-a", prefix: "", delimiter: undefined }), sorted);

      // One key per page all the way through.
      const paged: string[] = [];
      let startAfter: string | undefined;
      for (;;) {
        const page: ListObjectsResult = await store.listObjects({ bucket: "bucket-a", prefix: "", delimiter: undefined, startAfter, maxKeys: 1 });
        paged.push(...page.objects.map((object) => object.key));
        if (!page.isTruncated) break;
        startAfter = page.nextStartAfter;
      }
      assert.deepEqual(paged, sorted);

      const rolled = await store.listObjects({ bucket: "bucket-a", prefix: "", delimiter: "/", startAfter: undefined, maxKeys: 1000 });
      assert.deepEqual(rolled.commonPrefixes, ["é/", "\u{1F600}/", "\u{10FFFF}\u{10FFFF}/", "日本/"].sort(compareUtf8));
      assert.ok(rolled.objects.some((object) => object.key === "\u{1F600}0"));
      assert.ok(rolled.objects.some((object) => object.key === "\u{10FFFF}\u{10FFFF}0"));
      const byMaxCodePoint = await store.listObjects({ bucket: "bucket-a", prefix: "", delimiter: "\u{10FFFF}", startAfter: undefined, maxKeys: 1000 });
      assert.deepEqual(byMaxCodePoint.commonPrefixes, ["\u{10FFFF}"]);
      const byDel = await store.listObjects({ bucket: "bucket-a", prefix: "a", delimiter: "\u007f", startAfter: undefined, maxKeys: 1000 });
      assert.deepEqual(byDel.commonPrefixes, ["a\u007f"]);
      assert.deepEqual(byDel.objects.map((object) => object.key), ["a", "a\u0080"]);
    });

    test("listObjects agrees with a naive model over random keys, prefixes, delimiters and pages", { timeout: LISTING_TEST_TIMEOUT_MS }, async (t) => {
      const seed = testSeed(t);
      const random = seededRandom(seed);
      await store.createBucket(makeBucket("bucket-a", "Enabled"));
      const latestIsLive = new Map<string, boolean>();
      for (let index = 0; index < 300; index += 1) {
        const key = randomKey(random);
        if (latestIsLive.has(key) && random(3) === 0) {
          await deleteObject(store, "bucket-a", key);
          latestIsLive.set(key, false);
        } else {
          await store.putObjectVersion(makeVersion("bucket-a", key, newVersionId(), { chunks: [] }));
          latestIsLive.set(key, true);
        }
      }
      const keysSorted = [...latestIsLive.keys()].sort(compareUtf8);
      const items = keysSorted.map((key) => ({ key, value: latestIsLive.get(key) === true }));

      for (let caseIndex = 0; caseIndex < 80; caseIndex += 1) {
        const prefix = randomPrefix(random, keysSorted);
        const delimiter = DELIMITERS[random(DELIMITERS.length)];
        const maxKeys = 1 + random(random(2) === 0 ? 4 : 40);
        let startAfter = randomMarker(random, keysSorted);
        const label = `seed ${seed} case ${caseIndex}: ${JSON.stringify({ prefix, delimiter, maxKeys, startAfter })}`;
        const seenEntries = new Set<string>();
        for (let pageIndex = 0; ; pageIndex += 1) {
          assert.ok(pageIndex < 1000, `${label}: too many pages`);
          const input: ListObjectsInput = { bucket: "bucket-a", prefix, delimiter, startAfter, maxKeys };
          const actual = await store.listObjects(input);
          const expected = modelPage({
            items,
            prefix,
            delimiter,
            marker: startAfter,
            keep: (item) => item.value && (startAfter === undefined || compareUtf8(item.key, startAfter) > 0),
            entryCountMax: maxKeys,
          });
          const pageLabel = `${label} page ${pageIndex} startAfter ${JSON.stringify(startAfter)}`;
          assert.deepEqual(
            actual.objects.map((object) => object.key),
            expected.entries.filter((entry) => entry.kind === "entry").map((entry) => entry.key),
            pageLabel,
          );
          assert.deepEqual(
            actual.commonPrefixes,
            expected.entries.filter((entry) => entry.kind === "prefix").map((entry) => entry.key),
            pageLabel,
          );
          assert.equal(actual.isTruncated, expected.isTruncated, pageLabel);
          for (const entry of expected.entries) {
            assert.ok(!seenEntries.has(entry.key), `${pageLabel}: ${JSON.stringify(entry.key)} listed twice`);
            seenEntries.add(entry.key);
          }
          if (!actual.isTruncated) {
            assert.equal(actual.nextStartAfter, undefined, pageLabel);
            break;
          }
          assert.equal(actual.nextStartAfter, expected.entries[expected.entries.length - 1]?.key, pageLabel);
          startAfter = actual.nextStartAfter;
        }
      }
    });

    // ---- listing versions ----

    test("listObjectVersions gives each version's listing fields, and only those", async () => {
      await store.createBucket(makeBucket("bucket-a", "Enabled"));
      const older = makeVersion("bucket-a", "key", newVersionId(), {
        userMetadata: { color: "blue" },
        tags: { project: "cairn" },
        checksum: { algorithm: "SHA256", value: "c2hhMjU2", type: "FULL_OBJECT" },
      });
      const newer = makeVersion("bucket-a", "key", newVersionId(), { sizeBytes: 7, etag: "a".repeat(32), storageClass: "STANDARD_IA" });
      await store.putObjectVersion(older);
      await store.putObjectVersion(newer);
      const { deleteMarker } = await deleteObject(store, "bucket-a", "key");
      assert.ok(deleteMarker !== undefined);
      const page = await store.listObjectVersions({ bucket: "bucket-a", prefix: "", delimiter: undefined, keyMarker: undefined, versionIdMarker: undefined, maxKeys: 10 });
      assert.deepEqual(page.versions, [listedVersionOf(deleteMarker, true), listedVersionOf(newer, false), listedVersionOf(older, false)]);
      assert.deepEqual(page.versions[2], {
        key: "key",
        versionId: older.versionId,
        isDeleteMarker: false,
        isLatest: false,
        sizeBytes: 2048,
        etag: older.etag,
        lastModifiedMs: older.lastModifiedMs,
        ownerId: OWNER_ID,
        storageClass: "STANDARD",
        checksum: { algorithm: "SHA256", value: "c2hhMjU2", type: "FULL_OBJECT" },
      });
      // After a version-id marker the same projection, none of them the latest.
      const after = await store.listObjectVersions({ bucket: "bucket-a", prefix: "", delimiter: undefined, keyMarker: "key", versionIdMarker: deleteMarker.versionId, maxKeys: 10 });
      assert.deepEqual(after.versions, [listedVersionOf(newer, false), listedVersionOf(older, false)]);
    });

    test("listObjectVersions honours key-marker alone and with version-id-marker", async () => {
      await store.createBucket(makeBucket("bucket-a", "Enabled"));
      const aIds = [newVersionId(), newVersionId(), newVersionId()];
      for (const id of aIds) await store.putObjectVersion(makeVersion("bucket-a", "a", id));
      const bId = newVersionId();
      await store.putObjectVersion(makeVersion("bucket-a", "b", bId));
      const base: ListObjectVersionsInput = {
        bucket: "bucket-a",
        prefix: "",
        delimiter: undefined,
        keyMarker: undefined,
        versionIdMarker: undefined,
        maxKeys: 1000,
      };
      const afterKey = await store.listObjectVersions({ ...base, keyMarker: "a" });
      assert.deepEqual(afterKey.versions.map((version) => [version.key, version.versionId]), [["b", bId]]);
      const afterVersion = await store.listObjectVersions({ ...base, keyMarker: "a", versionIdMarker: aIds[2] });
      assert.deepEqual(
        afterVersion.versions.map((version) => [version.key, version.versionId, version.isLatest]),
        [
          ["a", aIds[1], false],
          ["a", aIds[0], false],
          ["b", bId, true],
        ],
      );
      const firstPage = await store.listObjectVersions({ ...base, maxKeys: 2 });
      assert.equal(firstPage.isTruncated, true);
      assert.equal(firstPage.nextKeyMarker, "a");
      assert.equal(firstPage.nextVersionIdMarker, aIds[1]);
      const nextPage = await store.listObjectVersions({
        ...base,
        maxKeys: 2,
        keyMarker: firstPage.nextKeyMarker,
        versionIdMarker: firstPage.nextVersionIdMarker,
      });
      assert.deepEqual(nextPage.versions.map((version) => version.versionId), [aIds[0], bId]);
      assert.equal(nextPage.isTruncated, false);
      assert.equal(nextPage.nextKeyMarker, undefined);
    });

    test("listObjectVersions agrees with a naive model, including delete markers and null versions", { timeout: LISTING_TEST_TIMEOUT_MS }, async (t) => {
      const seed = testSeed(t);
      const random = seededRandom(seed);
      await store.createBucket(makeBucket("bucket-a"));
      // Newest first per key, as written.
      const versionsByKey = new Map<string, Array<{ versionId: string; isDeleteMarker: boolean }>>();
      const keys = Array.from({ length: 80 }, () => randomKey(random));
      for (const key of keys) {
        if (random(2) === 0) continue;
        await store.putObjectVersion(makeVersion("bucket-a", key, NULL_VERSION_ID, { chunks: [] }));
        versionsByKey.set(key, [{ versionId: NULL_VERSION_ID, isDeleteMarker: false }]);
      }
      await store.updateBucket("bucket-a", { versioning: "Enabled" });
      for (let index = 0; index < 160; index += 1) {
        const key = keys[random(keys.length)]!;
        const history = versionsByKey.get(key) ?? [];
        if (random(4) === 0) {
          const { deleteMarker } = await deleteObject(store, "bucket-a", key);
          history.unshift({ versionId: deleteMarker!.versionId, isDeleteMarker: true });
        } else {
          const versionId = newVersionId();
          await store.putObjectVersion(makeVersion("bucket-a", key, versionId, { chunks: [] }));
          history.unshift({ versionId, isDeleteMarker: false });
        }
        versionsByKey.set(key, history);
      }
      const keysSorted = [...versionsByKey.keys()].sort(compareUtf8);
      const items = keysSorted.flatMap((key) =>
        versionsByKey.get(key)!.map((version, index) => ({ key, value: { ...version, isLatest: index === 0 } })),
      );

      for (let caseIndex = 0; caseIndex < 50; caseIndex += 1) {
        const prefix = randomPrefix(random, keysSorted);
        const delimiter = DELIMITERS[random(DELIMITERS.length)];
        const maxKeys = 1 + random(random(2) === 0 ? 4 : 30);
        let keyMarker = randomMarker(random, keysSorted);
        let versionIdMarker: string | undefined;
        if (keyMarker !== undefined && versionsByKey.has(keyMarker) && random(2) === 0) {
          const history = versionsByKey.get(keyMarker)!;
          versionIdMarker = history[random(history.length)]!.versionId;
        }
        const label = `seed ${seed} case ${caseIndex}: ${JSON.stringify({ prefix, delimiter, maxKeys, keyMarker, versionIdMarker })}`;
        for (let pageIndex = 0; ; pageIndex += 1) {
          assert.ok(pageIndex < 1000, `${label}: too many pages`);
          const actual = await store.listObjectVersions({ bucket: "bucket-a", prefix, delimiter, keyMarker, versionIdMarker, maxKeys });
          const markerKey = keyMarker;
          const markerVersion = versionIdMarker;
          let pastMarkerVersion = false;
          const expected = modelPage({
            items,
            prefix,
            delimiter,
            marker: markerKey,
            keep: (item) => {
              if (markerKey === undefined) return true;
              const order = compareUtf8(item.key, markerKey);
              if (order !== 0) return order > 0;
              if (markerVersion === undefined) return false;
              if (pastMarkerVersion) return true;
              if (item.value.versionId === markerVersion) pastMarkerVersion = true;
              return false;
            },
            entryCountMax: maxKeys,
          });
          const pageLabel = `${label} page ${pageIndex} markers ${JSON.stringify([keyMarker, versionIdMarker])}`;
          assert.deepEqual(
            actual.versions.map((version) => [version.key, version.versionId, version.isDeleteMarker, version.isLatest]),
            expected.entries.flatMap((entry) =>
              entry.kind === "entry" ? [[entry.key, entry.value.versionId, entry.value.isDeleteMarker, entry.value.isLatest]] : [],
            ),
            pageLabel,
          );
          assert.deepEqual(
            actual.commonPrefixes,
            expected.entries.filter((entry) => entry.kind === "prefix").map((entry) => entry.key),
            pageLabel,
          );
          assert.equal(actual.isTruncated, expected.isTruncated, pageLabel);
          if (!actual.isTruncated) break;
          const last = expected.entries[expected.entries.length - 1]!;
          assert.equal(actual.nextKeyMarker, last.key, pageLabel);
          assert.equal(actual.nextVersionIdMarker, last.kind === "entry" ? last.value.versionId : undefined, pageLabel);
          keyMarker = actual.nextKeyMarker;
          versionIdMarker = actual.nextVersionIdMarker;
        }
      }
    });

    // ---- multipart ----

    test("parts are stored, replaced (old chunks to garbage), listed in pages and read whole", async () => {
      await store.createBucket(makeBucket("bucket-a"));
      const upload = makeUpload("bucket-a", "big");
      await store.createMultipartUpload(upload);
      assert.deepEqual(await store.getMultipartUpload("bucket-a", "big", upload.uploadId), upload);
      assert.equal(await store.getMultipartUpload("bucket-a", "other", upload.uploadId), undefined);
      const parts = [3, 1, 2].map((partNumber) => makePart(upload.uploadId, partNumber));
      for (const part of parts) assert.equal(await store.putPart("bucket-a", "big", part), undefined);
      const replacement = makePart(upload.uploadId, 2);
      assert.deepEqual(await store.putPart("bucket-a", "big", replacement), parts[2]);
      assert.deepEqual(await garbageNeedles(store), needlesOf(parts[2]!.chunks));
      assert.deepEqual(await store.getParts(upload.uploadId), [parts[1], replacement, parts[0]]);
      const firstPage = await store.listParts(upload.uploadId, 0, 2);
      assert.deepEqual(firstPage.parts.map((part) => part.partNumber), [1, 2]);
      assert.equal(firstPage.isTruncated, true);
      const lastPage = await store.listParts(upload.uploadId, 2, 2);
      assert.deepEqual(lastPage.parts.map((part) => part.partNumber), [3]);
      assert.equal(lastPage.isTruncated, false);
      await assert.rejects(store.putPart("bucket-a", "big", makePart("no-such-upload", 1)), NoSuchUpload);
      await assert.rejects(store.putPart("bucket-a", "other-key", makePart(upload.uploadId, 1)), NoSuchUpload);
      await assert.rejects(store.listParts("no-such-upload", 0, 10), NoSuchUpload);
      await assert.rejects(store.createMultipartUpload(makeUpload("missing", "key")), NoSuchBucket);
    });

    test("completeMultipartUpload commits the version, drops the upload, and queues only unused parts", async () => {
      await store.createBucket(makeBucket("bucket-a"));
      const old = makeVersion("bucket-a", "big", NULL_VERSION_ID);
      await store.putObjectVersion(old);
      const upload = makeUpload("bucket-a", "big");
      await store.createMultipartUpload(upload);
      const parts = [1, 2, 3].map((partNumber) => makePart(upload.uploadId, partNumber));
      for (const part of parts) await store.putPart("bucket-a", "big", part);
      // The client completes with parts 1 and 3 only.
      const used = [parts[0]!, parts[2]!];
      const version = makeVersion("bucket-a", "big", NULL_VERSION_ID, {
        chunks: used.flatMap((part) => part.chunks),
        partSizesBytes: used.map((part) => part.sizeBytes),
        etag: `${"c".repeat(32)}-2`,
      });
      const result = await store.completeMultipartUpload(upload.uploadId, version);
      assert.deepEqual(result.removed, [old]);
      assert.deepEqual(await store.getObjectVersion("bucket-a", "big"), version);
      assert.equal(await store.getMultipartUpload("bucket-a", "big", upload.uploadId), undefined);
      await assert.rejects(store.getParts(upload.uploadId), NoSuchUpload);
      assert.deepEqual(await garbageNeedles(store), needlesOf([...old.chunks, ...parts[1]!.chunks]));
      await assert.rejects(store.completeMultipartUpload(upload.uploadId, version), NoSuchUpload);
    });

    test("a completion whose condition fails changes nothing and can be retried", async () => {
      await store.createBucket(makeBucket("bucket-a", "Enabled"));
      await store.putObjectVersion(makeVersion("bucket-a", "big", newVersionId()));
      const upload = makeUpload("bucket-a", "big");
      await store.createMultipartUpload(upload);
      const part = makePart(upload.uploadId, 1);
      await store.putPart("bucket-a", "big", part);
      const version = makeVersion("bucket-a", "big", newVersionId(), { chunks: part.chunks });
      await assert.rejects(store.completeMultipartUpload(upload.uploadId, version, { ifNoneMatchAny: true }), PreconditionFailed);
      assert.deepEqual(await store.getParts(upload.uploadId), [part]);
      assert.deepEqual(await garbageNeedles(store), []);
      await assert.rejects(store.completeMultipartUpload(upload.uploadId, { ...version, key: "elsewhere" }), NoSuchUpload);
      assert.deepEqual(await store.completeMultipartUpload(upload.uploadId, version), { removed: [] });
      assert.deepEqual(await garbageNeedles(store), []);
    });

    test("abortMultipartUpload queues every part's chunks; a missing upload fails with NoSuchUpload", async () => {
      await store.createBucket(makeBucket("bucket-a"));
      const upload = makeUpload("bucket-a", "big");
      await store.createMultipartUpload(upload);
      const parts = [1, 2].map((partNumber) => makePart(upload.uploadId, partNumber));
      for (const part of parts) await store.putPart("bucket-a", "big", part);
      await assert.rejects(store.abortMultipartUpload("bucket-a", "other", upload.uploadId), NoSuchUpload);
      await store.abortMultipartUpload("bucket-a", "big", upload.uploadId);
      assert.deepEqual(await garbageNeedles(store), needlesOf(parts.flatMap((part) => part.chunks)));
      assert.equal(await store.getMultipartUpload("bucket-a", "big", upload.uploadId), undefined);
      await assert.rejects(store.abortMultipartUpload("bucket-a", "big", upload.uploadId), NoSuchUpload);
    });

    test("listMultipartUploads follows key-marker and upload-id-marker as AWS does", async () => {
      await store.createBucket(makeBucket("bucket-a"));
      const uploadIds = { a: [newVersionId(), newVersionId()], b: [newVersionId()], c: [newVersionId()] };
      for (const [key, ids] of Object.entries(uploadIds)) {
        for (const id of ids) await store.createMultipartUpload(makeUpload("bucket-a", key === "c" ? "dir/c" : key, id));
      }
      const base: ListMultipartUploadsInput = {
        bucket: "bucket-a",
        prefix: "",
        delimiter: undefined,
        keyMarker: undefined,
        uploadIdMarker: undefined,
        maxUploads: 1000,
      };
      const all = await store.listMultipartUploads(base);
      assert.deepEqual(all.uploads.map((upload) => upload.uploadId), [...uploadIds.a, ...uploadIds.b, ...uploadIds.c]);
      const afterKey = await store.listMultipartUploads({ ...base, keyMarker: "a" });
      assert.deepEqual(afterKey.uploads.map((upload) => upload.uploadId), [...uploadIds.b, ...uploadIds.c]);
      const afterUpload = await store.listMultipartUploads({ ...base, keyMarker: "a", uploadIdMarker: uploadIds.a[0] });
      assert.deepEqual(afterUpload.uploads.map((upload) => upload.uploadId), [uploadIds.a[1], ...uploadIds.b, ...uploadIds.c]);
      const rolled = await store.listMultipartUploads({ ...base, delimiter: "/" });
      assert.deepEqual(rolled.commonPrefixes, ["dir/"]);
      assert.equal(rolled.uploads.length, 3);
      const firstPage = await store.listMultipartUploads({ ...base, maxUploads: 1 });
      assert.equal(firstPage.isTruncated, true);
      assert.equal(firstPage.nextKeyMarker, "a");
      assert.equal(firstPage.nextUploadIdMarker, uploadIds.a[0]);
    });

    test("listMultipartUploads agrees with a naive model over random pages", { timeout: LISTING_TEST_TIMEOUT_MS }, async (t) => {
      const seed = testSeed(t);
      const random = seededRandom(seed);
      await store.createBucket(makeBucket("bucket-a"));
      const uploads: Array<{ key: string; uploadId: string }> = [];
      for (let index = 0; index < 120; index += 1) {
        const key = randomKey(random);
        const uploadId = newVersionId();
        await store.createMultipartUpload(makeUpload("bucket-a", key, uploadId));
        uploads.push({ key, uploadId });
      }
      uploads.sort((left, right) => compareUtf8(left.key, right.key) || compareUtf8(left.uploadId, right.uploadId));
      const keysSorted = uploads.map((upload) => upload.key);
      const items = uploads.map((upload) => ({ key: upload.key, value: upload.uploadId }));
      for (let caseIndex = 0; caseIndex < 40; caseIndex += 1) {
        const prefix = randomPrefix(random, keysSorted);
        const delimiter = DELIMITERS[random(DELIMITERS.length)];
        const maxUploads = 1 + random(12);
        let keyMarker = randomMarker(random, keysSorted);
        let uploadIdMarker = keyMarker !== undefined && random(2) === 0 ? uploads[random(uploads.length)]!.uploadId : undefined;
        const label = `seed ${seed} case ${caseIndex}: ${JSON.stringify({ prefix, delimiter, maxUploads, keyMarker, uploadIdMarker })}`;
        for (let pageIndex = 0; ; pageIndex += 1) {
          assert.ok(pageIndex < 1000, `${label}: too many pages`);
          const actual = await store.listMultipartUploads({ bucket: "bucket-a", prefix, delimiter, keyMarker, uploadIdMarker, maxUploads });
          const markerKey = keyMarker;
          const markerUpload = uploadIdMarker;
          const expected = modelPage({
            items,
            prefix,
            delimiter,
            marker: markerKey,
            keep: (item) => {
              if (markerKey === undefined) return true;
              const order = compareUtf8(item.key, markerKey);
              if (order !== 0) return order > 0;
              return markerUpload !== undefined && compareUtf8(item.value, markerUpload) > 0;
            },
            entryCountMax: maxUploads,
          });
          const pageLabel = `${label} page ${pageIndex}`;
          assert.deepEqual(
            actual.uploads.map((upload) => upload.uploadId),
            expected.entries.flatMap((entry) => (entry.kind === "entry" ? [entry.value] : [])),
            pageLabel,
          );
          assert.deepEqual(
            actual.commonPrefixes,
            expected.entries.filter((entry) => entry.kind === "prefix").map((entry) => entry.key),
            pageLabel,
          );
          assert.equal(actual.isTruncated, expected.isTruncated, pageLabel);
          if (!actual.isTruncated) break;
          keyMarker = actual.nextKeyMarker;
          uploadIdMarker = actual.nextUploadIdMarker;
        }
      }
    });

    test("listMultipartUploadsInitiatedBefore returns the oldest uploads first, up to the limit", async () => {
      await store.createBucket(makeBucket("bucket-a"));
      const uploads = [300, 100, 200, 400].map((initiatedAtMs) => makeUpload("bucket-a", `key-${initiatedAtMs}`, newVersionId(), initiatedAtMs));
      for (const upload of uploads) await store.createMultipartUpload(upload);
      const old = await store.listMultipartUploadsInitiatedBefore(350, 10);
      assert.deepEqual(old.map((upload) => upload.initiatedAtMs), [100, 200, 300]);
      const limited = await store.listMultipartUploadsInitiatedBefore(350, 2);
      assert.deepEqual(limited.map((upload) => upload.initiatedAtMs), [100, 200]);
    });

    // ---- garbage ----

    test("takeGarbageChunks returns the oldest entries without removing them; removeGarbageChunks does", async () => {
      await store.createBucket(makeBucket("bucket-a"));
      const versions = [0, 1, 2].map(() => makeVersion("bucket-a", "key", NULL_VERSION_ID));
      for (const version of versions) await store.putObjectVersion(version);
      await deleteObject(store, "bucket-a", "key");
      const queued = [...versions[0]!.chunks, ...versions[1]!.chunks, ...versions[2]!.chunks];
      const firstTwo = await store.takeGarbageChunks(2);
      assert.deepEqual(firstTwo.map((garbage) => garbage.chunk), queued.slice(0, 2));
      assert.ok(firstTwo[0]!.garbageId < firstTwo[1]!.garbageId);
      assert.ok(Number.isFinite(firstTwo[0]!.queuedAtMs));
      assert.deepEqual(await store.takeGarbageChunks(2), firstTwo);
      await store.removeGarbageChunks(firstTwo.map((garbage) => garbage.garbageId));
      const rest = await store.takeGarbageChunks(100);
      assert.deepEqual(rest.map((garbage) => garbage.chunk), queued.slice(2));
      await store.removeGarbageChunks(rest.map((garbage) => garbage.garbageId));
      assert.deepEqual(await store.takeGarbageChunks(100), []);
    });

    // ---- users and keys ----

    test("users and access keys: create, read, list, and the documented errors", async () => {
      const alice = { userId: "alice", displayName: "Alice", createdAtMs: 1, isRoot: true };
      const bob = { userId: "bob", displayName: "Bob", createdAtMs: 2, isRoot: false };
      await store.createUser(bob);
      await store.createUser(alice);
      await assert.rejects(store.createUser(alice), UserAlreadyExists);
      assert.deepEqual(await store.getUser("alice"), alice);
      assert.equal(await store.getUser("carol"), undefined);
      assert.deepEqual(await store.listUsers(), [alice, bob]);

      const key1 = { accessKeyId: "AKIA1", userId: "alice", secretSealed: "sealed-1", createdAtMs: 10 };
      const key2 = { accessKeyId: "AKIA2", userId: "alice", secretSealed: "sealed-2", createdAtMs: 11 };
      const key3 = { accessKeyId: "AKIA3", userId: "bob", secretSealed: "sealed-3", createdAtMs: 12 };
      for (const key of [key2, key1, key3]) await store.addAccessKey(key);
      await assert.rejects(store.addAccessKey({ ...key1, userId: "bob" }), AccessKeyAlreadyExists);
      await assert.rejects(store.addAccessKey({ ...key1, accessKeyId: "AKIA9", userId: "carol" }), NoSuchUser);
      assert.deepEqual(await store.getAccessKey("AKIA1"), key1);
      assert.deepEqual(await store.listAccessKeys("alice"), [key1, key2]);
      await store.removeAccessKey("AKIA2");
      await assert.rejects(store.removeAccessKey("AKIA2"), NoSuchAccessKey);
      assert.deepEqual(await store.listAccessKeys("alice"), [key1]);

      await store.deleteUser("alice");
      assert.equal(await store.getUser("alice"), undefined);
      assert.equal(await store.getAccessKey("AKIA1"), undefined);
      assert.deepEqual(await store.listAccessKeys("alice"), []);
      assert.deepEqual(await store.getAccessKey("AKIA3"), key3);
      await assert.rejects(store.deleteUser("alice"), NoSuchUser);
    });
  });
}
