// Proves the S3 surface beyond the core with the AWS SDK for JavaScript v3 at its defaults:
// multipart upload (with copy parts, checksums and its errors), versioning with delete
// markers and the null version, CopyObject, DeleteObjects, conditional requests, tagging,
// ACLs with anonymous reads of public-read data, and the users' isolation.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteBucketTaggingCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  DeleteObjectTaggingCommand,
  GetBucketAclCommand,
  GetBucketTaggingCommand,
  GetBucketVersioningCommand,
  GetObjectCommand,
  GetObjectTaggingCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  ListObjectVersionsCommand,
  ListPartsCommand,
  PutBucketAclCommand,
  PutBucketTaggingCommand,
  PutBucketVersioningCommand,
  PutObjectAclCommand,
  PutObjectCommand,
  PutObjectTaggingCommand,
  S3Client,
  S3ServiceException,
  UploadPartCommand,
  UploadPartCopyCommand,
} from "@aws-sdk/client-s3";
import { expectS3Error } from "./helpers/assertions.js";
import { makeDataDirectory, removeDataDirectory, s3Client, startCairn, type CairnProcess } from "./helpers/cairn-process.js";

const MIB = 1024 * 1024;
let cairn: CairnProcess;
let s3: S3Client;
let dataDirectory: string;

before(async () => {
  dataDirectory = makeDataDirectory("surface");
  cairn = await startCairn({ dataDirectory });
  s3 = s3Client(cairn.endpoint);
});

after(async () => {
  s3?.destroy();
  await cairn?.stop();
  removeDataDirectory(dataDirectory);
});


const md5 = (data: Buffer) => createHash("md5").update(data).digest("hex");
const text = async (output: { Body?: { transformToString(): Promise<string> } }) => output.Body!.transformToString();

describe("multipart upload", () => {
  before(async () => {
    await s3.send(new CreateBucketCommand({ Bucket: "multipart" }));
  });

  test("three parts complete into one object with the multipart ETag", async () => {
    const parts = [randomBytes(5 * MIB), randomBytes(5 * MIB + 7), randomBytes(123)];
    const created = await s3.send(new CreateMultipartUploadCommand({ Bucket: "multipart", Key: "assembled", ContentType: "video/x-test", Metadata: { origin: "mpu" } }));
    const uploadId = created.UploadId!;
    const etags: string[] = [];
    for (const [index, body] of parts.entries()) {
      const uploaded = await s3.send(new UploadPartCommand({ Bucket: "multipart", Key: "assembled", UploadId: uploadId, PartNumber: index + 1, Body: body }));
      assert.equal(uploaded.ETag, `"${md5(body)}"`);
      etags.push(uploaded.ETag!);
    }
    const listed = await s3.send(new ListPartsCommand({ Bucket: "multipart", Key: "assembled", UploadId: uploadId }));
    assert.deepEqual(listed.Parts?.map((part) => [part.PartNumber, part.Size, part.ETag]), parts.map((body, index) => [index + 1, body.length, etags[index]]));
    const uploads = await s3.send(new ListMultipartUploadsCommand({ Bucket: "multipart" }));
    assert.ok(uploads.Uploads?.some((upload) => upload.UploadId === uploadId && upload.Key === "assembled"));
    const completed = await s3.send(
      new CompleteMultipartUploadCommand({
        Bucket: "multipart",
        Key: "assembled",
        UploadId: uploadId,
        MultipartUpload: { Parts: etags.map((ETag, index) => ({ ETag, PartNumber: index + 1 })) },
      }),
    );
    const expectedEtag = createHash("md5").update(Buffer.concat(parts.map((body) => createHash("md5").update(body).digest()))).digest("hex") + "-3";
    assert.equal(completed.ETag, `"${expectedEtag}"`);
    const got = await s3.send(new GetObjectCommand({ Bucket: "multipart", Key: "assembled" }));
    assert.equal(md5(Buffer.from(await got.Body!.transformToByteArray())), md5(Buffer.concat(parts)));
    assert.equal(got.ETag, `"${expectedEtag}"`);
    assert.equal(got.ContentType, "video/x-test");
    assert.deepEqual(got.Metadata, { origin: "mpu" });
    const secondPart = await s3.send(new GetObjectCommand({ Bucket: "multipart", Key: "assembled", PartNumber: 2 }));
    assert.equal(secondPart.PartsCount, 3);
    assert.equal(secondPart.ContentRange, `bytes ${5 * MIB}-${10 * MIB + 6}/${10 * MIB + 7 + 123}`);
    assert.equal(md5(Buffer.from(await secondPart.Body!.transformToByteArray())), md5(parts[1]!));
    await expectS3Error(s3.send(new GetObjectCommand({ Bucket: "multipart", Key: "assembled", PartNumber: 4 })), "InvalidPartNumber", 416);
    const after = await s3.send(new ListMultipartUploadsCommand({ Bucket: "multipart" }));
    assert.ok(!after.Uploads?.some((upload) => upload.UploadId === uploadId));
  });

  test("small non-last parts are EntityTooSmall; wrong ETag InvalidPart; order InvalidPartOrder", async () => {
    const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: "multipart", Key: "bad" }));
    const small = await s3.send(new UploadPartCommand({ Bucket: "multipart", Key: "bad", UploadId, PartNumber: 1, Body: "tiny" }));
    const last = await s3.send(new UploadPartCommand({ Bucket: "multipart", Key: "bad", UploadId, PartNumber: 2, Body: "end" }));
    const complete = (Parts: Array<{ ETag: string; PartNumber: number }>) =>
      s3.send(new CompleteMultipartUploadCommand({ Bucket: "multipart", Key: "bad", UploadId, MultipartUpload: { Parts } }));
    await expectS3Error(complete([{ ETag: small.ETag!, PartNumber: 1 }, { ETag: last.ETag!, PartNumber: 2 }]), "EntityTooSmall", 400);
    await expectS3Error(complete([{ ETag: `"${"0".repeat(32)}"`, PartNumber: 1 }]), "InvalidPart", 400);
    await expectS3Error(complete([{ ETag: last.ETag!, PartNumber: 2 }, { ETag: small.ETag!, PartNumber: 1 }]), "InvalidPartOrder", 400);
    await expectS3Error(complete([{ ETag: small.ETag!, PartNumber: 3 }]), "InvalidPart", 400);
    await expectS3Error(s3.send(new HeadObjectCommand({ Bucket: "multipart", Key: "bad" })), "NotFound", 404);
    // A single small part is fine: it is the last.
    await complete([{ ETag: small.ETag!, PartNumber: 1 }]);
    assert.equal(await text(await s3.send(new GetObjectCommand({ Bucket: "multipart", Key: "bad" }))), "tiny");
  });

  test("abort removes the upload; later calls on it are NoSuchUpload", async () => {
    const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: "multipart", Key: "aborted" }));
    await s3.send(new UploadPartCommand({ Bucket: "multipart", Key: "aborted", UploadId, PartNumber: 1, Body: "x" }));
    await s3.send(new AbortMultipartUploadCommand({ Bucket: "multipart", Key: "aborted", UploadId }));
    await expectS3Error(s3.send(new UploadPartCommand({ Bucket: "multipart", Key: "aborted", UploadId, PartNumber: 2, Body: "y" })), "NoSuchUpload", 404);
    await expectS3Error(s3.send(new ListPartsCommand({ Bucket: "multipart", Key: "aborted", UploadId })), "NoSuchUpload", 404);
    await expectS3Error(s3.send(new UploadPartCommand({ Bucket: "multipart", Key: "aborted", UploadId: "nonexistent", PartNumber: 1, Body: "x" })), "NoSuchUpload", 404);
  });

  test("UploadPartCopy with ranges builds an object from another", async () => {
    const source = randomBytes(6 * MIB);
    await s3.send(new PutObjectCommand({ Bucket: "multipart", Key: "copy-source", Body: source }));
    const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: "multipart", Key: "copied-parts" }));
    const first = await s3.send(
      new UploadPartCopyCommand({ Bucket: "multipart", Key: "copied-parts", UploadId, PartNumber: 1, CopySource: "multipart/copy-source", CopySourceRange: `bytes=0-${5 * MIB - 1}` }),
    );
    const second = await s3.send(
      new UploadPartCopyCommand({ Bucket: "multipart", Key: "copied-parts", UploadId, PartNumber: 2, CopySource: "multipart/copy-source", CopySourceRange: `bytes=${5 * MIB}-${6 * MIB - 1}` }),
    );
    await s3.send(
      new CompleteMultipartUploadCommand({
        Bucket: "multipart",
        Key: "copied-parts",
        UploadId,
        MultipartUpload: { Parts: [{ ETag: first.CopyPartResult!.ETag!, PartNumber: 1 }, { ETag: second.CopyPartResult!.ETag!, PartNumber: 2 }] },
      }),
    );
    const got = await s3.send(new GetObjectCommand({ Bucket: "multipart", Key: "copied-parts" }));
    assert.equal(md5(Buffer.from(await got.Body!.transformToByteArray())), md5(source));
  });

  test("a CRC32 multipart upload gets a composite checksum", async () => {
    const parts = [randomBytes(5 * MIB), randomBytes(1000)];
    const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: "multipart", Key: "composite", ChecksumAlgorithm: "CRC32" }));
    const uploaded = [];
    for (const [index, Body] of parts.entries()) {
      uploaded.push(await s3.send(new UploadPartCommand({ Bucket: "multipart", Key: "composite", UploadId, PartNumber: index + 1, Body, ChecksumAlgorithm: "CRC32" })));
    }
    const { crc32 } = await import("../src/base/checksum.js");
    const partChecksums = parts.map((body) => {
      const digest = Buffer.alloc(4);
      digest.writeUInt32BE(crc32(body));
      return digest;
    });
    assert.deepEqual(uploaded.map((part) => part.ChecksumCRC32), partChecksums.map((digest) => digest.toString("base64")));
    const completed = await s3.send(
      new CompleteMultipartUploadCommand({
        Bucket: "multipart",
        Key: "composite",
        UploadId,
        MultipartUpload: { Parts: uploaded.map((part, index) => ({ ETag: part.ETag!, PartNumber: index + 1, ChecksumCRC32: part.ChecksumCRC32! })) },
      }),
    );
    const composite = Buffer.alloc(4);
    composite.writeUInt32BE(crc32(Buffer.concat(partChecksums)));
    assert.equal(completed.ChecksumCRC32, `${composite.toString("base64")}-2`);
    const head = await s3.send(new HeadObjectCommand({ Bucket: "multipart", Key: "composite", ChecksumMode: "ENABLED" }));
    assert.equal(head.ChecksumCRC32, `${composite.toString("base64")}-2`);
  });
});

describe("versioning", () => {
  before(async () => {
    await s3.send(new CreateBucketCommand({ Bucket: "versions" }));
  });

  test("enabled versioning keeps every version; a delete marker hides the key", async () => {
    assert.equal((await s3.send(new GetBucketVersioningCommand({ Bucket: "versions" }))).Status, undefined);
    await s3.send(new PutBucketVersioningCommand({ Bucket: "versions", VersioningConfiguration: { Status: "Enabled" } }));
    assert.equal((await s3.send(new GetBucketVersioningCommand({ Bucket: "versions" }))).Status, "Enabled");
    const v1 = await s3.send(new PutObjectCommand({ Bucket: "versions", Key: "doc", Body: "one" }));
    const v2 = await s3.send(new PutObjectCommand({ Bucket: "versions", Key: "doc", Body: "two" }));
    assert.ok(v1.VersionId && v2.VersionId && v1.VersionId !== v2.VersionId);
    assert.equal(await text(await s3.send(new GetObjectCommand({ Bucket: "versions", Key: "doc" }))), "two");
    assert.equal(await text(await s3.send(new GetObjectCommand({ Bucket: "versions", Key: "doc", VersionId: v1.VersionId }))), "one");
    const deleted = await s3.send(new DeleteObjectCommand({ Bucket: "versions", Key: "doc" }));
    assert.equal(deleted.DeleteMarker, true);
    const missing = await expectS3Error(s3.send(new GetObjectCommand({ Bucket: "versions", Key: "doc" })), "NoSuchKey", 404);
    assert.equal(missing.$response?.headers["x-amz-delete-marker"], "true");
    const listed = await s3.send(new ListObjectVersionsCommand({ Bucket: "versions", Prefix: "doc" }));
    assert.deepEqual(listed.Versions?.map((version) => [version.VersionId, version.IsLatest]), [[v2.VersionId, false], [v1.VersionId, false]]);
    assert.deepEqual(listed.DeleteMarkers?.map((marker) => [marker.VersionId, marker.IsLatest]), [[deleted.VersionId, true]]);
    assert.deepEqual((await s3.send(new ListObjectsV2Command({ Bucket: "versions" }))).Contents ?? [], []);
    // Removing the delete marker brings the object back.
    await s3.send(new DeleteObjectCommand({ Bucket: "versions", Key: "doc", VersionId: deleted.VersionId }));
    assert.equal(await text(await s3.send(new GetObjectCommand({ Bucket: "versions", Key: "doc" }))), "two");
    await s3.send(new DeleteObjectCommand({ Bucket: "versions", Key: "doc", VersionId: v2.VersionId }));
    assert.equal(await text(await s3.send(new GetObjectCommand({ Bucket: "versions", Key: "doc" }))), "one");
    await expectS3Error(s3.send(new GetObjectCommand({ Bucket: "versions", Key: "doc", VersionId: v2.VersionId })), "NoSuchVersion", 404);
  });

  test("suspended versioning writes the null version and replaces only it", async () => {
    await s3.send(new CreateBucketCommand({ Bucket: "suspended" }));
    await s3.send(new PutBucketVersioningCommand({ Bucket: "suspended", VersioningConfiguration: { Status: "Enabled" } }));
    const kept = await s3.send(new PutObjectCommand({ Bucket: "suspended", Key: "k", Body: "versioned" }));
    await s3.send(new PutBucketVersioningCommand({ Bucket: "suspended", VersioningConfiguration: { Status: "Suspended" } }));
    const nullOne = await s3.send(new PutObjectCommand({ Bucket: "suspended", Key: "k", Body: "null one" }));
    assert.equal(nullOne.VersionId, "null");
    await s3.send(new PutObjectCommand({ Bucket: "suspended", Key: "k", Body: "null two" }));
    const listed = await s3.send(new ListObjectVersionsCommand({ Bucket: "suspended" }));
    assert.deepEqual(listed.Versions?.map((version) => version.VersionId), ["null", kept.VersionId]);
    assert.equal(await text(await s3.send(new GetObjectCommand({ Bucket: "suspended", Key: "k", VersionId: "null" }))), "null two");
    assert.equal(await text(await s3.send(new GetObjectCommand({ Bucket: "suspended", Key: "k", VersionId: kept.VersionId }))), "versioned");
  });

  test("ListObjectVersions pages with key and version-id markers", async () => {
    await s3.send(new CreateBucketCommand({ Bucket: "version-pages" }));
    await s3.send(new PutBucketVersioningCommand({ Bucket: "version-pages", VersioningConfiguration: { Status: "Enabled" } }));
    const expected: string[] = [];
    for (const key of ["a", "b", "c"]) {
      const ids = [];
      for (let index = 0; index < 3; index++) ids.push((await s3.send(new PutObjectCommand({ Bucket: "version-pages", Key: key, Body: `${key}${index}` }))).VersionId!);
      expected.push(...ids.reverse().map((id) => `${key}:${id}`));
    }
    const seen: string[] = [];
    let keyMarker: string | undefined;
    let versionIdMarker: string | undefined;
    for (let page = 0; page < 20; page++) {
      const listed = await s3.send(new ListObjectVersionsCommand({ Bucket: "version-pages", MaxKeys: 2, KeyMarker: keyMarker, VersionIdMarker: versionIdMarker }));
      for (const version of listed.Versions ?? []) seen.push(`${version.Key}:${version.VersionId}`);
      if (!listed.IsTruncated) break;
      keyMarker = listed.NextKeyMarker;
      versionIdMarker = listed.NextVersionIdMarker;
    }
    assert.deepEqual(seen, expected);
  });
});

describe("copy, multi-delete, conditions, tagging, ACLs", () => {
  before(async () => {
    await s3.send(new CreateBucketCommand({ Bucket: "misc" }));
  });

  test("CopyObject copies data and metadata, or replaces metadata", async () => {
    await s3.send(new PutObjectCommand({ Bucket: "misc", Key: "original", Body: "copy me", ContentType: "text/plain", Metadata: { a: "1" } }));
    const copied = await s3.send(new CopyObjectCommand({ Bucket: "misc", Key: "copy", CopySource: "misc/original" }));
    assert.equal(copied.CopyObjectResult?.ETag, `"${md5(Buffer.from("copy me"))}"`);
    const got = await s3.send(new GetObjectCommand({ Bucket: "misc", Key: "copy" }));
    assert.equal(await got.Body!.transformToString(), "copy me");
    assert.deepEqual(got.Metadata, { a: "1" });
    assert.equal(got.ContentType, "text/plain");
    await s3.send(new CopyObjectCommand({ Bucket: "misc", Key: "replaced", CopySource: "misc/original", MetadataDirective: "REPLACE", Metadata: { b: "2" }, ContentType: "text/x-new" }));
    const replaced = await s3.send(new HeadObjectCommand({ Bucket: "misc", Key: "replaced" }));
    assert.deepEqual(replaced.Metadata, { b: "2" });
    assert.equal(replaced.ContentType, "text/x-new");
    await expectS3Error(s3.send(new CopyObjectCommand({ Bucket: "misc", Key: "original", CopySource: "misc/original" })), "InvalidRequest", 400);
    await expectS3Error(s3.send(new CopyObjectCommand({ Bucket: "misc", Key: "x", CopySource: "misc/missing" })), "NoSuchKey", 404);
    await expectS3Error(
      s3.send(new CopyObjectCommand({ Bucket: "misc", Key: "x", CopySource: "misc/original", CopySourceIfMatch: '"nope"' })),
      "PreconditionFailed",
      412,
    );
  });

  test("DeleteObjects deletes many keys, quietly or not", async () => {
    const keys = Array.from({ length: 10 }, (_, index) => `multi/${index}`);
    await Promise.all(keys.map((Key) => s3.send(new PutObjectCommand({ Bucket: "misc", Key, Body: Key }))));
    const loud = await s3.send(new DeleteObjectsCommand({ Bucket: "misc", Delete: { Objects: keys.slice(0, 5).map((Key) => ({ Key })) } }));
    assert.deepEqual(loud.Deleted?.map((deleted) => deleted.Key).sort(), keys.slice(0, 5));
    const quiet = await s3.send(new DeleteObjectsCommand({ Bucket: "misc", Delete: { Quiet: true, Objects: keys.slice(5).map((Key) => ({ Key })) } }));
    assert.equal(quiet.Deleted, undefined);
    assert.equal(quiet.Errors, undefined);
    assert.deepEqual((await s3.send(new ListObjectsV2Command({ Bucket: "misc", Prefix: "multi/" }))).Contents ?? [], []);
  });

  test("conditional GET answers 304 and 412; conditional PUT answers 412", async () => {
    const put = await s3.send(new PutObjectCommand({ Bucket: "misc", Key: "cond", Body: "v1" }));
    await expectS3Error(s3.send(new GetObjectCommand({ Bucket: "misc", Key: "cond", IfMatch: '"wrong"' })), "PreconditionFailed", 412);
    await expectS3Error(s3.send(new GetObjectCommand({ Bucket: "misc", Key: "cond", IfNoneMatch: put.ETag })), undefined, 304);
    await expectS3Error(s3.send(new GetObjectCommand({ Bucket: "misc", Key: "cond", IfModifiedSince: new Date(Date.now() + 3_600_000) })), undefined, 304);
    await expectS3Error(s3.send(new GetObjectCommand({ Bucket: "misc", Key: "cond", IfUnmodifiedSince: new Date(Date.now() - 3_600_000) })), "PreconditionFailed", 412);
    assert.equal(await text(await s3.send(new GetObjectCommand({ Bucket: "misc", Key: "cond", IfMatch: put.ETag }))), "v1");
    await expectS3Error(s3.send(new PutObjectCommand({ Bucket: "misc", Key: "cond", Body: "v2", IfNoneMatch: "*" })), "PreconditionFailed", 412);
    await expectS3Error(s3.send(new PutObjectCommand({ Bucket: "misc", Key: "cond", Body: "v2", IfMatch: '"0000"' })), "PreconditionFailed", 412);
    await s3.send(new PutObjectCommand({ Bucket: "misc", Key: "cond", Body: "v2", IfMatch: put.ETag }));
    assert.equal(await text(await s3.send(new GetObjectCommand({ Bucket: "misc", Key: "cond" }))), "v2");
  });

  test("racing If-None-Match: * writers: exactly one wins", async () => {
    const results = await Promise.allSettled(
      Array.from({ length: 8 }, (_, index) => s3.send(new PutObjectCommand({ Bucket: "misc", Key: "race", Body: `writer ${index}`, IfNoneMatch: "*" }))),
    );
    const winners = results.filter((result) => result.status === "fulfilled");
    assert.equal(winners.length, 1);
    for (const result of results) {
      if (result.status === "rejected") assert.equal((result.reason as S3ServiceException).$metadata.httpStatusCode, 412);
    }
  });

  test("object and bucket tagging round-trip", async () => {
    await s3.send(new PutObjectCommand({ Bucket: "misc", Key: "tagged", Body: "t", Tagging: "team=storage&tier=gold" }));
    const initial = await s3.send(new GetObjectTaggingCommand({ Bucket: "misc", Key: "tagged" }));
    assert.deepEqual(Object.fromEntries(initial.TagSet!.map((tag) => [tag.Key, tag.Value])), { team: "storage", tier: "gold" });
    await s3.send(new PutObjectTaggingCommand({ Bucket: "misc", Key: "tagged", Tagging: { TagSet: [{ Key: "only", Value: "one" }] } }));
    assert.deepEqual((await s3.send(new GetObjectTaggingCommand({ Bucket: "misc", Key: "tagged" }))).TagSet, [{ Key: "only", Value: "one" }]);
    await s3.send(new DeleteObjectTaggingCommand({ Bucket: "misc", Key: "tagged" }));
    assert.deepEqual((await s3.send(new GetObjectTaggingCommand({ Bucket: "misc", Key: "tagged" }))).TagSet ?? [], []);
    await expectS3Error(s3.send(new GetBucketTaggingCommand({ Bucket: "misc" })), "NoSuchTagSet", 404);
    await s3.send(new PutBucketTaggingCommand({ Bucket: "misc", Tagging: { TagSet: [{ Key: "env", Value: "test" }] } }));
    assert.deepEqual((await s3.send(new GetBucketTaggingCommand({ Bucket: "misc" }))).TagSet, [{ Key: "env", Value: "test" }]);
    await s3.send(new DeleteBucketTaggingCommand({ Bucket: "misc" }));
    await expectS3Error(s3.send(new GetBucketTaggingCommand({ Bucket: "misc" })), "NoSuchTagSet", 404);
  });

  test("public-read buckets and objects allow anonymous GET; private ones do not", async () => {
    await s3.send(new CreateBucketCommand({ Bucket: "public-bucket", ACL: "public-read" }));
    await s3.send(new PutObjectCommand({ Bucket: "public-bucket", Key: "open.txt", Body: "for everyone" }));
    const open = await fetch(`${cairn.endpoint}/public-bucket/open.txt`);
    assert.equal(open.status, 200);
    assert.equal(await open.text(), "for everyone");
    const anonymousPut = await fetch(`${cairn.endpoint}/public-bucket/vandal.txt`, { method: "PUT", body: "x" });
    assert.equal(anonymousPut.status, 403);
    const anonymousList = await fetch(`${cairn.endpoint}/public-bucket?list-type=2`);
    assert.equal(anonymousList.status, 403);
    const acl = await s3.send(new GetBucketAclCommand({ Bucket: "public-bucket" }));
    assert.ok(acl.Grants?.some((grant) => grant.Grantee?.URI?.endsWith("AllUsers") && grant.Permission === "READ"));
    await s3.send(new PutBucketAclCommand({ Bucket: "public-bucket", ACL: "private" }));
    assert.equal((await fetch(`${cairn.endpoint}/public-bucket/open.txt`)).status, 403);
    await s3.send(new PutObjectCommand({ Bucket: "misc", Key: "one-public", Body: "just this", ACL: "public-read" }));
    const single = await fetch(`${cairn.endpoint}/misc/one-public`);
    assert.equal(single.status, 200);
    assert.equal(await single.text(), "just this");
    assert.equal((await fetch(`${cairn.endpoint}/misc/cond`)).status, 403);
    await s3.send(new PutObjectAclCommand({ Bucket: "misc", Key: "cond", ACL: "public-read" }));
    assert.equal((await fetch(`${cairn.endpoint}/misc/cond`)).status, 200);
    await s3.send(new PutObjectAclCommand({ Bucket: "misc", Key: "cond", ACL: "private" }));
    assert.equal((await fetch(`${cairn.endpoint}/misc/cond`)).status, 403);
    assert.equal((await fetch(`${cairn.endpoint}/misc/does-not-exist`)).status, 403);
  });
});
