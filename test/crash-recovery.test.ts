// Proves that every acknowledged write survives a SIGKILL: a `cairn server` child takes a
// stream of concurrent PUTs, is killed mid-stream, and restarted on the same data directory;
// every PUT that got a 200 reads back with the same MD5, and nothing half-written is visible.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { CreateBucketCommand, GetObjectCommand, ListObjectsV2Command, PutObjectCommand, S3ServiceException } from "@aws-sdk/client-s3";
import { makeDataDirectory, removeDataDirectory, s3Client, startCairn } from "./helpers/cairn-process.js";

const WRITERS_COUNT = 16;
const RUN_BEFORE_KILL_MS = 2_500;
const PUTS_PER_WRITER_MAX = 400;

function md5(data: Buffer): string {
  return createHash("md5").update(data).digest("hex");
}

for (const round of [1, 2]) {
  test(`SIGKILL during concurrent PUTs loses no acknowledged write (round ${round})`, async () => {
    const dataDirectory = makeDataDirectory("crash");
    try {
      // Small volumes so the kill can also land around a seal.
      const args = ["--volume-size-bytes", String(16 * 1024 * 1024)];
      const first = await startCairn({ dataDirectory, args });
      const s3 = s3Client(first.endpoint);
      await s3.send(new CreateBucketCommand({ Bucket: "crash" }));
      const acknowledged = new Map<string, string>();
      const attempted = new Map<string, string>();
      let stop = false;
      const writers = Array.from({ length: WRITERS_COUNT }, async (_, writer) => {
        for (let index = 0; index < PUTS_PER_WRITER_MAX && !stop; index++) {
          const key = `w${writer}/obj-${index}`;
          // Mostly small objects, some spanning several chunks.
          const size = index % 10 === 9 ? 5 * 1024 * 1024 + 123 : 1 + Math.floor(Math.random() * 64 * 1024);
          const body = randomBytes(size);
          attempted.set(key, md5(body));
          try {
            await s3.send(new PutObjectCommand({ Bucket: "crash", Key: key, Body: body }));
            acknowledged.set(key, md5(body));
          } catch {
            return; // the server is gone
          }
        }
      });
      await new Promise((resolve) => setTimeout(resolve, RUN_BEFORE_KILL_MS));
      await first.kill();
      stop = true;
      await Promise.all(writers);
      s3.destroy();
      assert.ok(acknowledged.size > 20, `enough writes were acknowledged before the kill (${acknowledged.size})`);

      const second = await startCairn({ dataDirectory, args });
      const reader = s3Client(second.endpoint);
      try {
        for (const [key, expected] of acknowledged) {
          const got = await reader.send(new GetObjectCommand({ Bucket: "crash", Key: key }));
          const bytes = Buffer.from(await got.Body!.transformToByteArray());
          assert.equal(md5(bytes), expected, `acknowledged ${key} reads back intact`);
        }
        // Writes in flight at the kill are either absent or whole, never partial.
        let token: string | undefined;
        do {
          const page = await reader.send(new ListObjectsV2Command({ Bucket: "crash", ContinuationToken: token }));
          for (const object of page.Contents ?? []) {
            const expected = attempted.get(object.Key!);
            assert.ok(expected !== undefined, `listed key ${object.Key} was written by the test`);
            assert.equal(object.ETag, `"${expected}"`, `listed ${object.Key} is whole`);
          }
          token = page.NextContinuationToken;
        } while (token !== undefined);
        // And the restarted server takes writes.
        const body = randomBytes(1000);
        await reader.send(new PutObjectCommand({ Bucket: "crash", Key: "after-restart", Body: body }));
        const got = await reader.send(new GetObjectCommand({ Bucket: "crash", Key: "after-restart" }));
        assert.equal(md5(Buffer.from(await got.Body!.transformToByteArray())), md5(body));
      } catch (error) {
        if (error instanceof S3ServiceException) assert.fail(`${error.name}: ${error.message}\n${second.stderr()}`);
        throw error;
      } finally {
        reader.destroy();
        await second.stop();
      }
    } finally {
      removeDataDirectory(dataDirectory);
    }
  });
}

test("data survives a clean restart", async () => {
  const dataDirectory = makeDataDirectory("restart");
  try {
    const first = await startCairn({ dataDirectory });
    const s3 = s3Client(first.endpoint);
    await s3.send(new CreateBucketCommand({ Bucket: "restart" }));
    const body = randomBytes(200_000);
    await s3.send(new PutObjectCommand({ Bucket: "restart", Key: "kept", Body: body }));
    s3.destroy();
    await first.stop();
    const second = await startCairn({ dataDirectory });
    const reader = s3Client(second.endpoint);
    const got = await reader.send(new GetObjectCommand({ Bucket: "restart", Key: "kept" }));
    assert.equal(md5(Buffer.from(await got.Body!.transformToByteArray())), md5(body));
    reader.destroy();
    await second.stop();
  } finally {
    removeDataDirectory(dataDirectory);
  }
});
