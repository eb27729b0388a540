// Small objects kept in their metadata row (`--inline-object-bytes-max`, 8 KiB by default in
// `cairn server`): what S3 clients see of them is what they see of any object (GET, ranges, HEAD,
// copies, part copies, versions, deletes, a restart), their bytes are in the metadata database and
// not in a needle, a flipped byte in that database is caught on read, and 0 turns the feature off.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import path from "node:path";
import { crc32 } from "node:zlib";
import Database from "better-sqlite3";
import {
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  PutBucketVersioningCommand,
  PutObjectCommand,
  S3ServiceException,
  UploadPartCommand,
  UploadPartCopyCommand,
  type S3Client,
} from "@aws-sdk/client-s3";
import { makeDataDirectory, removeDataDirectory, s3Client, startCairn } from "./helpers/cairn-process.js";

const INLINE_DEFAULT_BYTES = 8 * 1024;

function md5(data: Buffer): string {
  return createHash("md5").update(data).digest("hex");
}

async function getBytes(s3: S3Client, bucket: string, key: string, extra: { Range?: string; VersionId?: string } = {}): Promise<Buffer> {
  const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key, ...extra }));
  return Buffer.from(await got.Body!.transformToByteArray());
}

/** [key, length of its inline bytes] for every version in the metadata database, oldest first (null: in needles). */
function inlineLengths(dataDirectory: string, bucket: string): Array<[string, number | null]> {
  const db = new Database(path.join(dataDirectory, "metadata.sqlite"), { readonly: true });
  try {
    const rows = db
      .prepare(
        `SELECT key, size_bytes, length(inline_data) AS length, chunks_json FROM object_versions
         WHERE bucket = ? AND is_delete_marker = 0 ORDER BY key, version_seq`,
      )
      .all(bucket) as Array<{ key: string; size_bytes: number; length: number | null; chunks_json: string }>;
    for (const row of rows) {
      // Either the row holds the bytes or needles do, never both (an empty object has neither).
      if (row.size_bytes > 0) assert.equal(row.length !== null, row.chunks_json === "[]", `${row.key}: inline bytes xor chunks`);
    }
    return rows.map((row) => [row.key, row.length]);
  } finally {
    db.close();
  }
}

test("small objects live in their metadata row and read back as any object does, across a restart", async () => {
  const dataDirectory = makeDataDirectory("inline");
  let server = await startCairn({ dataDirectory });
  let s3 = s3Client(server.endpoint);
  try {
    await s3.send(new CreateBucketCommand({ Bucket: "small" }));
    const bodies = new Map<string, Buffer>([
      ["one-byte", randomBytes(1)],
      ["four-kib", randomBytes(4096)],
      ["at-limit", randomBytes(INLINE_DEFAULT_BYTES)],
      ["over-limit", randomBytes(INLINE_DEFAULT_BYTES + 1)],
      ["empty", Buffer.alloc(0)],
    ]);
    for (const [key, body] of bodies) {
      const put = await s3.send(new PutObjectCommand({ Bucket: "small", Key: key, Body: body, ContentType: "application/x-test" }));
      assert.equal(put.ETag, `"${md5(body)}"`, `${key}: ETag is the MD5`);
    }
    for (const [key, body] of bodies) assert.ok((await getBytes(s3, "small", key)).equals(body), `${key} reads back`);
    const four = bodies.get("four-kib")!;
    assert.ok((await getBytes(s3, "small", "four-kib", { Range: "bytes=100-199" })).equals(four.subarray(100, 200)), "a range of an inline object");
    assert.ok((await getBytes(s3, "small", "four-kib", { Range: "bytes=-10" })).equals(four.subarray(-10)), "a suffix range");
    const head = await s3.send(new HeadObjectCommand({ Bucket: "small", Key: "four-kib" }));
    assert.equal(head.ContentLength, 4096);
    assert.equal(head.ContentType, "application/x-test");
    assert.equal(head.ETag, `"${md5(four)}"`);

    // A copy of a small object is small too; a part copied out of one lands in a needle.
    await s3.send(new CopyObjectCommand({ Bucket: "small", Key: "copy", CopySource: "small/four-kib" }));
    assert.ok((await getBytes(s3, "small", "copy")).equals(four), "the copy reads back");
    const upload = await s3.send(new CreateMultipartUploadCommand({ Bucket: "small", Key: "stitched" }));
    const firstPart = randomBytes(5 * 1024 * 1024);
    const part1 = await s3.send(new UploadPartCommand({ Bucket: "small", Key: "stitched", UploadId: upload.UploadId, PartNumber: 1, Body: firstPart }));
    const part2 = await s3.send(
      new UploadPartCopyCommand({ Bucket: "small", Key: "stitched", UploadId: upload.UploadId, PartNumber: 2, CopySource: "small/four-kib", CopySourceRange: "bytes=0-999" }),
    );
    await s3.send(
      new CompleteMultipartUploadCommand({
        Bucket: "small",
        Key: "stitched",
        UploadId: upload.UploadId,
        MultipartUpload: { Parts: [{ PartNumber: 1, ETag: part1.ETag }, { PartNumber: 2, ETag: part2.CopyPartResult!.ETag }] },
      }),
    );
    assert.ok((await getBytes(s3, "small", "stitched")).equals(Buffer.concat([firstPart, four.subarray(0, 1000)])), "a part copied from an inline object");

    // Versions of one key each keep their own bytes; a delete removes them.
    await s3.send(new CreateBucketCommand({ Bucket: "versions" }));
    await s3.send(new PutBucketVersioningCommand({ Bucket: "versions", VersioningConfiguration: { Status: "Enabled" } }));
    const older = randomBytes(300);
    const newer = randomBytes(400);
    const olderId = (await s3.send(new PutObjectCommand({ Bucket: "versions", Key: "k", Body: older }))).VersionId!;
    await s3.send(new PutObjectCommand({ Bucket: "versions", Key: "k", Body: newer }));
    assert.ok((await getBytes(s3, "versions", "k")).equals(newer));
    assert.ok((await getBytes(s3, "versions", "k", { VersionId: olderId })).equals(older));
    await s3.send(new DeleteObjectCommand({ Bucket: "small", Key: "one-byte" }));
    await assert.rejects(getBytes(s3, "small", "one-byte"), (error: S3ServiceException) => error.name === "NoSuchKey");

    s3.destroy();
    await server.stop();
    const lengths = inlineLengths(dataDirectory, "small");
    assert.deepEqual(
      Object.fromEntries(lengths),
      { "at-limit": INLINE_DEFAULT_BYTES, copy: 4096, empty: null, "four-kib": 4096, "over-limit": null, stitched: null },
      "objects up to the limit are in their rows, larger (and empty) ones are not",
    );
    assert.deepEqual(inlineLengths(dataDirectory, "versions"), [["k", 300], ["k", 400]]);

    server = await startCairn({ dataDirectory });
    s3 = s3Client(server.endpoint);
    for (const key of ["four-kib", "at-limit", "over-limit", "empty"]) {
      assert.ok((await getBytes(s3, "small", key)).equals(bodies.get(key)!), `${key} reads back after a restart`);
    }
    assert.ok((await getBytes(s3, "versions", "k", { VersionId: olderId })).equals(older));
  } finally {
    s3.destroy();
    await server.stop();
    removeDataDirectory(dataDirectory);
  }
});

test("a flipped byte in an inline object's row is caught on read, by its CRC32 or, in older rows, its MD5: InternalError, not wrong bytes", async () => {
  const dataDirectory = makeDataDirectory("inline-rot");
  let server = await startCairn({ dataDirectory });
  let s3 = s3Client(server.endpoint);
  try {
    await s3.send(new CreateBucketCommand({ Bucket: "rot" }));
    const body = randomBytes(2000);
    for (const key of ["victim", "bystander", "old-victim", "old-bystander"]) await s3.send(new PutObjectCommand({ Bucket: "rot", Key: key, Body: body }));
    s3.destroy();
    await server.stop();
    const db = new Database(path.join(dataDirectory, "metadata.sqlite"));
    const stored = db.prepare("SELECT DISTINCT inline_crc32 FROM object_versions WHERE bucket = 'rot'").pluck().all();
    assert.deepEqual(stored, [crc32(body)], "each row keeps its bytes' CRC32");
    const flipped = Buffer.from(body);
    flipped[1234] = flipped[1234]! ^ 0x10;
    assert.equal(db.prepare("UPDATE object_versions SET inline_data = ? WHERE key IN ('victim', 'old-victim')").run(flipped).changes, 2);
    // Rows as written before the CRC32 was kept: checked against the ETag.
    assert.equal(db.prepare("UPDATE object_versions SET inline_crc32 = NULL WHERE key LIKE 'old-%'").run().changes, 2);
    db.close();

    server = await startCairn({ dataDirectory });
    s3 = s3Client(server.endpoint);
    for (const key of ["victim", "old-victim"]) {
      await assert.rejects(getBytes(s3, "rot", key), (error: S3ServiceException) => {
        assert.equal(error.name, "InternalError", key);
        assert.equal(error.$metadata.httpStatusCode, 500);
        return true;
      });
    }
    assert.ok((await getBytes(s3, "rot", "bystander")).equals(body), "the other objects still read");
    assert.ok((await getBytes(s3, "rot", "old-bystander")).equals(body));
    assert.equal(server.stderr().match(/inline object failed verification on read/g)?.length, 2);
  } finally {
    s3.destroy();
    await server.stop();
    removeDataDirectory(dataDirectory);
  }
});

test("--inline-object-bytes-max 0 keeps every object in needles; a value over the limit is refused", async () => {
  const dataDirectory = makeDataDirectory("inline-off");
  const server = await startCairn({ dataDirectory, args: ["--inline-object-bytes-max", "0"] });
  const s3 = s3Client(server.endpoint);
  try {
    await s3.send(new CreateBucketCommand({ Bucket: "off" }));
    const body = randomBytes(4096);
    await s3.send(new PutObjectCommand({ Bucket: "off", Key: "k", Body: body }));
    assert.ok((await getBytes(s3, "off", "k")).equals(body));
  } finally {
    s3.destroy();
    await server.stop();
  }
  try {
    assert.deepEqual(Object.fromEntries(inlineLengths(dataDirectory, "off")), { k: null });
    await assert.rejects(startCairn({ dataDirectory, args: ["--inline-object-bytes-max", String(64 * 1024 + 1)] }), /inline-object-bytes-max must be at most 65536/);
  } finally {
    removeDataDirectory(dataDirectory);
  }
});
