// Proves the S3 core against a real `cairn server` process with the AWS SDK for JavaScript v3
// at its default settings (CRC32 checksums, aws-chunked bodies): buckets, objects, metadata,
// ranges, listing with prefix/delimiter/pagination, and AWS's errors for each misuse.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import path from "node:path";
import { Readable } from "node:stream";
import {
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectCommand,
  GetBucketLocationCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListBucketsCommand,
  ListObjectsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  type ListObjectsV2CommandOutput,
} from "@aws-sdk/client-s3";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";
import { expectS3Error } from "./helpers/assertions.js";
import { makeDataDirectory, removeDataDirectory, s3Client, startCairn, type CairnProcess } from "./helpers/cairn-process.js";

let cairn: CairnProcess;
let s3: S3Client;
let dataDirectory: string;

before(async () => {
  dataDirectory = makeDataDirectory("core");
  cairn = await startCairn({ dataDirectory });
  s3 = s3Client(cairn.endpoint);
});

after(async () => {
  s3?.destroy();
  await cairn?.stop();
  removeDataDirectory(dataDirectory);
});


function md5(data: Buffer): string {
  return createHash("md5").update(data).digest("hex");
}

describe("buckets", () => {
  test("create, head, list, location and delete a bucket", async () => {
    await s3.send(new CreateBucketCommand({ Bucket: "bucket-life" }));
    await s3.send(new HeadBucketCommand({ Bucket: "bucket-life" }));
    const listed = await s3.send(new ListBucketsCommand({}));
    assert.ok(listed.Buckets?.some((bucket) => bucket.Name === "bucket-life"));
    assert.ok(listed.Buckets?.find((bucket) => bucket.Name === "bucket-life")?.CreationDate instanceof Date);
    const location = await s3.send(new GetBucketLocationCommand({ Bucket: "bucket-life" }));
    assert.equal(location.LocationConstraint ?? "", "");
    await s3.send(new DeleteBucketCommand({ Bucket: "bucket-life" }));
    await expectS3Error(s3.send(new HeadBucketCommand({ Bucket: "bucket-life" })), "NotFound", 404);
  });

  test("creating a bucket you own again is BucketAlreadyOwnedByYou", async () => {
    await s3.send(new CreateBucketCommand({ Bucket: "owned-twice" }));
    await expectS3Error(s3.send(new CreateBucketCommand({ Bucket: "owned-twice" })), "BucketAlreadyOwnedByYou", 409);
  });

  test("invalid bucket names are InvalidBucketName and create nothing", async () => {
    for (const name of ["ab", "a".repeat(64), "Upper", "under_score", "-leading", "trailing-", "two..dots", "192.168.1.1", "xn--punycode", "dot.-hyphen"]) {
      await expectS3Error(s3.send(new CreateBucketCommand({ Bucket: name })), "InvalidBucketName", 400);
    }
    const listed = await s3.send(new ListBucketsCommand({}));
    assert.ok(!listed.Buckets?.some((bucket) => bucket.Name === "ab" || bucket.Name === "Upper"));
  });

  test("deleting a bucket with objects is BucketNotEmpty; a missing bucket is NoSuchBucket", async () => {
    await s3.send(new CreateBucketCommand({ Bucket: "not-empty" }));
    await s3.send(new PutObjectCommand({ Bucket: "not-empty", Key: "k", Body: "x" }));
    await expectS3Error(s3.send(new DeleteBucketCommand({ Bucket: "not-empty" })), "BucketNotEmpty", 409);
    await s3.send(new DeleteObjectCommand({ Bucket: "not-empty", Key: "k" }));
    await s3.send(new DeleteBucketCommand({ Bucket: "not-empty" }));
    await expectS3Error(s3.send(new DeleteBucketCommand({ Bucket: "not-empty" })), "NoSuchBucket", 404);
    await expectS3Error(s3.send(new GetObjectCommand({ Bucket: "never-made", Key: "k" })), "NoSuchBucket", 404);
  });
});

describe("objects", () => {
  before(async () => {
    await s3.send(new CreateBucketCommand({ Bucket: "objects" }));
  });

  test("put and get round-trip bytes, ETag, metadata and system headers", async () => {
    const body = randomBytes(100_000);
    const expires = new Date("2030-01-02T03:04:05Z");
    const put = await s3.send(
      new PutObjectCommand({
        Bucket: "objects",
        Key: "dir/file.bin",
        Body: body,
        ContentType: "application/x-test",
        ContentEncoding: "identity",
        ContentDisposition: 'attachment; filename="file.bin"',
        CacheControl: "max-age=60",
        ContentLanguage: "en",
        Expires: expires,
        Metadata: { color: "blue", "Mixed-Case": "Value" },
      }),
    );
    assert.equal(put.ETag, `"${md5(body)}"`);
    const got = await s3.send(new GetObjectCommand({ Bucket: "objects", Key: "dir/file.bin" }));
    const bytes = Buffer.from(await got.Body!.transformToByteArray());
    assert.ok(bytes.equals(body));
    assert.equal(got.ETag, `"${md5(body)}"`);
    assert.equal(got.ContentLength, body.length);
    assert.equal(got.ContentType, "application/x-test");
    assert.equal(got.ContentEncoding, "identity");
    assert.equal(got.ContentDisposition, 'attachment; filename="file.bin"');
    assert.equal(got.CacheControl, "max-age=60");
    assert.equal(got.ContentLanguage, "en");
    assert.equal(got.Expires?.getTime(), expires.getTime());
    assert.deepEqual(got.Metadata, { color: "blue", "mixed-case": "Value" });
    assert.ok(got.LastModified instanceof Date);
    assert.ok(Math.abs(got.LastModified.getTime() - Date.now()) < 60_000);
    const head = await s3.send(new HeadObjectCommand({ Bucket: "objects", Key: "dir/file.bin" }));
    assert.equal(head.ContentLength, body.length);
    assert.equal(head.ETag, put.ETag);
    assert.deepEqual(head.Metadata, { color: "blue", "mixed-case": "Value" });
  });

  test("a streamed body of unknown chunking (aws-chunked with CRC32 trailer) is stored without framing", async () => {
    const body = randomBytes(3 * 1024 * 1024 + 17);
    const stream = Readable.from(
      (function* () {
        for (let offset = 0; offset < body.length; offset += 65_536) yield body.subarray(offset, offset + 65_536);
      })(),
    );
    await s3.send(new PutObjectCommand({ Bucket: "objects", Key: "streamed", Body: stream, ContentLength: body.length }));
    const got = await s3.send(new GetObjectCommand({ Bucket: "objects", Key: "streamed" }));
    const bytes = Buffer.from(await got.Body!.transformToByteArray());
    assert.equal(bytes.length, body.length);
    assert.ok(bytes.equals(body));
  });

  test("objects larger than one chunk round-trip exactly", async () => {
    const body = randomBytes(9 * 1024 * 1024 + 5);
    await s3.send(new PutObjectCommand({ Bucket: "objects", Key: "multi-chunk", Body: body }));
    const got = await s3.send(new GetObjectCommand({ Bucket: "objects", Key: "multi-chunk" }));
    assert.equal(md5(Buffer.from(await got.Body!.transformToByteArray())), md5(body));
    const range = await s3.send(new GetObjectCommand({ Bucket: "objects", Key: "multi-chunk", Range: "bytes=4194300-4194400" }));
    assert.ok(Buffer.from(await range.Body!.transformToByteArray()).equals(body.subarray(4194300, 4194401)));
  });

  test("the stored checksum comes back with checksum mode and matches", async () => {
    const body = Buffer.from("checksummed body");
    await s3.send(new PutObjectCommand({ Bucket: "objects", Key: "crc", Body: body, ChecksumAlgorithm: "CRC32C" }));
    const head = await s3.send(new HeadObjectCommand({ Bucket: "objects", Key: "crc", ChecksumMode: "ENABLED" }));
    const { crc32c } = await import("../src/base/checksum.js");
    const expected = Buffer.alloc(4);
    expected.writeUInt32BE(crc32c(body));
    assert.equal(head.ChecksumCRC32C, expected.toString("base64"));
  });

  test("an empty object round-trips", async () => {
    const put = await s3.send(new PutObjectCommand({ Bucket: "objects", Key: "empty", Body: Buffer.alloc(0) }));
    assert.equal(put.ETag, '"d41d8cd98f00b204e9800998ecf8427e"');
    const got = await s3.send(new GetObjectCommand({ Bucket: "objects", Key: "empty" }));
    assert.equal((await got.Body!.transformToByteArray()).length, 0);
    assert.equal(got.ContentLength, 0);
  });

  test("ranges: closed, open, suffix, clamped, and 416 past the end", async () => {
    const body = Buffer.from("0123456789abcdefghij");
    await s3.send(new PutObjectCommand({ Bucket: "objects", Key: "ranged", Body: body }));
    const cases: Array<[string, string, string]> = [
      ["bytes=0-4", "01234", "bytes 0-4/20"],
      ["bytes=15-", "fghij", "bytes 15-19/20"],
      ["bytes=-3", "hij", "bytes 17-19/20"],
      ["bytes=18-100", "ij", "bytes 18-19/20"],
      ["bytes=-50", "0123456789abcdefghij", "bytes 0-19/20"],
    ];
    for (const [range, expected, contentRange] of cases) {
      const got = await s3.send(new GetObjectCommand({ Bucket: "objects", Key: "ranged", Range: range }));
      assert.equal(got.$metadata.httpStatusCode, 206, range);
      assert.equal(got.ContentRange, contentRange, range);
      assert.equal(Buffer.from(await got.Body!.transformToByteArray()).toString(), expected, range);
    }
    await expectS3Error(s3.send(new GetObjectCommand({ Bucket: "objects", Key: "ranged", Range: "bytes=20-" })), "InvalidRange", 416);
    await expectS3Error(s3.send(new GetObjectCommand({ Bucket: "objects", Key: "ranged", Range: "bytes=-0" })), "InvalidRange", 416);
    const ignored = await s3.send(new GetObjectCommand({ Bucket: "objects", Key: "ranged", Range: "bytes=5-2" }));
    assert.equal(ignored.$metadata.httpStatusCode, 200);
  });

  test("overwrite replaces, delete removes, and a missing key is NoSuchKey", async () => {
    await s3.send(new PutObjectCommand({ Bucket: "objects", Key: "over", Body: "first" }));
    await s3.send(new PutObjectCommand({ Bucket: "objects", Key: "over", Body: "second" }));
    const got = await s3.send(new GetObjectCommand({ Bucket: "objects", Key: "over" }));
    assert.equal(await got.Body!.transformToString(), "second");
    const deleted = await s3.send(new DeleteObjectCommand({ Bucket: "objects", Key: "over" }));
    assert.equal(deleted.$metadata.httpStatusCode, 204);
    const error = await expectS3Error(s3.send(new GetObjectCommand({ Bucket: "objects", Key: "over" })), "NoSuchKey", 404);
    assert.match(String((error as unknown as { RequestId?: string }).RequestId ?? error.$metadata.requestId), /^[0-9A-F]{16}$/);
    await expectS3Error(s3.send(new HeadObjectCommand({ Bucket: "objects", Key: "over" })), "NotFound", 404);
    const again = await s3.send(new DeleteObjectCommand({ Bucket: "objects", Key: "over" }));
    assert.equal(again.$metadata.httpStatusCode, 204);
  });

  test("keys over 1024 bytes are KeyTooLongError", async () => {
    await expectS3Error(s3.send(new PutObjectCommand({ Bucket: "objects", Key: "k".repeat(1025), Body: "x" })), "KeyTooLongError", 400);
    await s3.send(new PutObjectCommand({ Bucket: "objects", Key: "k".repeat(1024), Body: "x" }));
  });

  test("a wrong Content-MD5 is BadDigest and stores nothing", async () => {
    const wrong = createHash("md5").update("something else").digest("base64");
    await expectS3Error(
      s3.send(new PutObjectCommand({ Bucket: "objects", Key: "bad-md5", Body: "payload", ContentMD5: wrong })),
      "BadDigest",
      400,
    );
    await expectS3Error(s3.send(new HeadObjectCommand({ Bucket: "objects", Key: "bad-md5" })), "NotFound", 404);
    const right = createHash("md5").update("payload").digest("base64");
    await s3.send(new PutObjectCommand({ Bucket: "objects", Key: "good-md5", Body: "payload", ContentMD5: right }));
  });

  test("keys with spaces, plus, percent, unicode and deep paths round-trip", async () => {
    const keys = ["with space", "plus+sign", "percent%20literal", "ünïcødé/日本語/😀", "a/".repeat(100) + "deep", "tilde~star*=eq&amp"];
    for (const key of keys) await s3.send(new PutObjectCommand({ Bucket: "objects", Key: key, Body: key }));
    for (const key of keys) {
      const got = await s3.send(new GetObjectCommand({ Bucket: "objects", Key: key }));
      assert.equal(await got.Body!.transformToString(), key);
    }
    const listed = await s3.send(new ListObjectsV2Command({ Bucket: "objects" }));
    for (const key of keys) assert.ok(listed.Contents?.some((object) => object.Key === key), key);
  });
});

describe("listing", () => {
  const keys: string[] = [];
  before(async () => {
    await s3.send(new CreateBucketCommand({ Bucket: "listing" }));
    for (const top of ["alpha", "beta", "gamma"]) {
      for (let index = 0; index < 7; index++) keys.push(`${top}/item-${index}`);
    }
    keys.push("root-a", "root-b", "alpha-not-dir");
    keys.sort();
    await Promise.all(keys.map((key) => s3.send(new PutObjectCommand({ Bucket: "listing", Key: key, Body: key }))));
  });

  test("a full listing returns every key in order with size and ETag", async () => {
    const listed = await s3.send(new ListObjectsV2Command({ Bucket: "listing" }));
    assert.deepEqual(listed.Contents?.map((object) => object.Key), keys);
    assert.equal(listed.KeyCount, keys.length);
    assert.equal(listed.IsTruncated, false);
    const first = listed.Contents![0]!;
    assert.equal(first.Size, Buffer.byteLength(first.Key!));
    assert.equal(first.ETag, `"${md5(Buffer.from(first.Key!))}"`);
  });

  test("delimiter groups common prefixes; prefix narrows", async () => {
    const listed = await s3.send(new ListObjectsV2Command({ Bucket: "listing", Delimiter: "/" }));
    assert.deepEqual(listed.CommonPrefixes?.map((prefix) => prefix.Prefix), ["alpha/", "beta/", "gamma/"]);
    assert.deepEqual(listed.Contents?.map((object) => object.Key), ["alpha-not-dir", "root-a", "root-b"]);
    const narrowed = await s3.send(new ListObjectsV2Command({ Bucket: "listing", Prefix: "beta/", Delimiter: "/" }));
    assert.deepEqual(narrowed.Contents?.map((object) => object.Key), keys.filter((key) => key.startsWith("beta/")));
    assert.equal(narrowed.CommonPrefixes, undefined);
  });

  test("max-keys and continuation tokens page through keys and prefixes exactly once", async () => {
    for (const delimiter of [undefined, "/"]) {
      const seen: string[] = [];
      let token: string | undefined;
      let pages = 0;
      do {
        const page: ListObjectsV2CommandOutput = await s3.send(
          new ListObjectsV2Command({ Bucket: "listing", MaxKeys: 2, ContinuationToken: token, Delimiter: delimiter }),
        );
        assert.ok((page.KeyCount ?? 0) <= 2);
        for (const object of page.Contents ?? []) seen.push(object.Key!);
        for (const prefix of page.CommonPrefixes ?? []) seen.push(prefix.Prefix!);
        token = page.IsTruncated ? page.NextContinuationToken : undefined;
        pages += 1;
        assert.ok(pages < 50, "pagination terminates");
      } while (token !== undefined);
      const expected = delimiter === undefined ? keys : ["alpha-not-dir", "alpha/", "beta/", "gamma/", "root-a", "root-b"];
      assert.deepEqual(seen, expected, `delimiter ${String(delimiter)}`);
    }
  });

  test("start-after skips keys up to and including it", async () => {
    const listed = await s3.send(new ListObjectsV2Command({ Bucket: "listing", StartAfter: "gamma/item-3" }));
    assert.deepEqual(listed.Contents?.map((object) => object.Key), keys.filter((key) => key > "gamma/item-3"));
  });

  test("ListObjects v1 pages with markers", async () => {
    const first = await s3.send(new ListObjectsCommand({ Bucket: "listing", MaxKeys: 5 }));
    assert.equal(first.IsTruncated, true);
    assert.deepEqual(first.Contents?.map((object) => object.Key), keys.slice(0, 5));
    const second = await s3.send(new ListObjectsCommand({ Bucket: "listing", Marker: keys[4] }));
    assert.deepEqual(second.Contents?.map((object) => object.Key), keys.slice(5));
  });

  test("an invalid continuation token and negative max-keys are InvalidArgument", async () => {
    await expectS3Error(s3.send(new ListObjectsV2Command({ Bucket: "listing", ContinuationToken: "!!not-a-token" })), "InvalidArgument", 400);
    await expectS3Error(s3.send(new ListObjectsV2Command({ Bucket: "listing", MaxKeys: -1 })), "InvalidArgument", 400);
  });
});

describe("authentication", () => {
  before(async () => {
    await s3.send(new CreateBucketCommand({ Bucket: "auth" }));
    await s3.send(new PutObjectCommand({ Bucket: "auth", Key: "secret.txt", Body: "top secret" }));
  });

  test("a wrong secret is SignatureDoesNotMatch and changes nothing", async () => {
    const wrong = s3Client(cairn.endpoint, { credentials: { accessKeyId: "CKTESTROOTACCESSKEY1", secretAccessKey: "wrong-secret" } });
    await expectS3Error(wrong.send(new PutObjectCommand({ Bucket: "auth", Key: "secret.txt", Body: "overwritten" })), "SignatureDoesNotMatch", 403);
    await expectS3Error(wrong.send(new CreateBucketCommand({ Bucket: "made-by-wrong-secret" })), "SignatureDoesNotMatch", 403);
    wrong.destroy();
    const got = await s3.send(new GetObjectCommand({ Bucket: "auth", Key: "secret.txt" }));
    assert.equal(await got.Body!.transformToString(), "top secret");
    await expectS3Error(s3.send(new HeadBucketCommand({ Bucket: "made-by-wrong-secret" })), "NotFound", 404);
  });

  test("an unknown access key is InvalidAccessKeyId", async () => {
    const stranger = s3Client(cairn.endpoint, { credentials: { accessKeyId: "CKUNKNOWNKEY00000000", secretAccessKey: "whatever" } });
    await expectS3Error(stranger.send(new ListBucketsCommand({})), "InvalidAccessKeyId", 403);
    await expectS3Error(stranger.send(new DeleteObjectCommand({ Bucket: "auth", Key: "secret.txt" })), "InvalidAccessKeyId", 403);
    stranger.destroy();
    await s3.send(new HeadObjectCommand({ Bucket: "auth", Key: "secret.txt" }));
  });

  test("an unsigned request is AccessDenied", async () => {
    const response = await fetch(`${cairn.endpoint}/auth/secret.txt`);
    assert.equal(response.status, 403);
    const text = await response.text();
    assert.match(text, /<Code>AccessDenied<\/Code>/);
    assert.match(text, /<RequestId>[0-9A-F]{16}<\/RequestId>/);
    const put = await fetch(`${cairn.endpoint}/auth/anonymous.txt`, { method: "PUT", body: "anon" });
    assert.equal(put.status, 403);
    await expectS3Error(s3.send(new HeadObjectCommand({ Bucket: "auth", Key: "anonymous.txt" })), "NotFound", 404);
  });

  test("presigned GET and PUT URLs work; tampered and expired ones are refused", async () => {
    const getUrl = await getSignedUrl(s3, new GetObjectCommand({ Bucket: "auth", Key: "secret.txt" }), { expiresIn: 60 });
    const got = await fetch(getUrl);
    assert.equal(got.status, 200);
    assert.equal(await got.text(), "top secret");
    const putUrl = await getSignedUrl(s3, new PutObjectCommand({ Bucket: "auth", Key: "presigned-put.txt" }), { expiresIn: 60 });
    const put = await fetch(putUrl, { method: "PUT", body: "via presigned url" });
    assert.equal(put.status, 200, await put.text());
    const check = await s3.send(new GetObjectCommand({ Bucket: "auth", Key: "presigned-put.txt" }));
    assert.equal(await check.Body!.transformToString(), "via presigned url");
    const tampered = await fetch(getUrl.replace("secret.txt", "presigned-put.txt"));
    assert.equal(tampered.status, 403);
    assert.match(await tampered.text(), /<Code>SignatureDoesNotMatch<\/Code>/);
    const anHourAgo = new Date(Date.now() - 3_600_000);
    const expiredUrl = await getSignedUrl(s3, new GetObjectCommand({ Bucket: "auth", Key: "secret.txt" }), { expiresIn: 60, signingDate: anHourAgo });
    const expired = await fetch(expiredUrl);
    assert.equal(expired.status, 403);
    assert.match(await expired.text(), /<Code>AccessDenied<\/Code>[\s\S]*expired/);
    const expiredPutUrl = await getSignedUrl(s3, new PutObjectCommand({ Bucket: "auth", Key: "expired-put.txt" }), {
      expiresIn: 60,
      signingDate: anHourAgo,
    });
    const expiredPut = await fetch(expiredPutUrl, { method: "PUT", body: "late" });
    assert.equal(expiredPut.status, 403);
    await expectS3Error(s3.send(new HeadObjectCommand({ Bucket: "auth", Key: "expired-put.txt" })), "NotFound", 404);
  });

  test("virtual-host-style requests address the bucket by Host", async () => {
    // Resolve <bucket>.localhost to 127.0.0.1 whatever the system resolver does.
    const { NodeHttpHandler } = await import("@smithy/node-http-handler");
    const http = await import("node:http");
    const agent = new http.Agent({
      lookup: ((_hostname: string, options: { all?: boolean }, callback: (...args: unknown[]) => void) => {
        if (options.all) callback(null, [{ address: "127.0.0.1", family: 4 }]);
        else callback(null, "127.0.0.1", 4);
      }) as never,
    });
    const client = s3Client(`http://localhost:${cairn.port}`, {
      forcePathStyle: false,
      requestHandler: new NodeHttpHandler({ httpAgent: agent }),
    });
    const body = "virtual host body";
    await client.send(new PutObjectCommand({ Bucket: "auth", Key: "virtual.txt", Body: body }));
    const got = await s3.send(new GetObjectCommand({ Bucket: "auth", Key: "virtual.txt" }));
    assert.equal(await got.Body!.transformToString(), body);
    const listed = await client.send(new ListObjectsV2Command({ Bucket: "auth", Prefix: "virtual" }));
    assert.deepEqual(listed.Contents?.map((object) => object.Key), ["virtual.txt"]);
    client.destroy();
    agent.destroy();
  });
});

describe("disks", () => {
  // Each writable volume commits (fsyncs) its own groups, so the server keeps one per disk: two
  // on one disk would pay two fsyncs where one does, and every disk must still take writes.
  async function volumeFileSizes(disk: string): Promise<number[]> {
    const { readdir, stat } = await import("node:fs/promises");
    const names = (await readdir(path.join(disk, "volumes"))).filter((name) => name.endsWith(".vol"));
    return Promise.all(names.map(async (name) => (await stat(path.join(disk, "volumes", name))).size));
  }

  test("one disk has one writable volume; two disks have one each and both take writes", async () => {
    // Over the server's inline limit (8 KiB), so every object is a needle in a volume.
    const bodies = Array.from({ length: 24 }, (_, index) => randomBytes(16 * 1024 + index));
    const putAll = async (client: S3Client, bucket: string) => {
      await client.send(new CreateBucketCommand({ Bucket: bucket }));
      await Promise.all(bodies.map((body, index) => client.send(new PutObjectCommand({ Bucket: bucket, Key: `k${index}`, Body: body }))));
      for (const [index, body] of bodies.entries()) {
        const got = await client.send(new GetObjectCommand({ Bucket: bucket, Key: `k${index}` }));
        assert.equal(md5(Buffer.from(await got.Body!.transformToByteArray())), md5(body));
      }
    };

    await putAll(s3, "one-disk");
    const oneDisk = await volumeFileSizes(path.join(dataDirectory, "disk0"));
    assert.equal(oneDisk.length, 1);

    const twoDiskDirectory = makeDataDirectory("two-disks");
    const disks = [path.join(twoDiskDirectory, "a"), path.join(twoDiskDirectory, "b")];
    const twoDisks = await startCairn({ dataDirectory: path.join(twoDiskDirectory, "data"), args: disks.flatMap((disk) => ["--disk", disk]) });
    const client = s3Client(twoDisks.endpoint);
    try {
      await putAll(client, "two-disks");
      for (const disk of disks) {
        const sizes = await volumeFileSizes(disk);
        assert.equal(sizes.length, 1, `${disk} holds one volume`);
        // The superblock is 32 bytes; some of the 24 objects landed on this disk.
        assert.ok(sizes[0]! > 32 + 16 * 1024, `${disk} took writes (${sizes[0]} bytes)`);
      }
    } finally {
      client.destroy();
      await twoDisks.stop();
      removeDataDirectory(twoDiskDirectory);
    }
  });
});
