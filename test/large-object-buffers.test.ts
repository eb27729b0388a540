// Proves that reusing chunk buffers across requests (chunk-buffer-pool.ts) never mixes bytes:
// concurrent large PUTs and GETs of distinct objects (of several chunks, and of one chunk sent
// in 256 KiB slices), with GETs abandoned mid-body in between, all read back MD5-equal; and that a needle rotted on disk in the middle of a large object
// still cuts the GET short (after the status line) instead of sending wrong bytes.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { open, readdir } from "node:fs/promises";
import path from "node:path";
import type { Readable } from "node:stream";
import { CreateBucketCommand, GetObjectCommand, PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { MEBIBYTE } from "../src/base/index.js";
import { makeDataDirectory, removeDataDirectory, s3Client, startCairn } from "./helpers/cairn-process.js";

const BUCKET = "buffers";
/** Two full 4 MiB chunks and a short one; and one chunk, answered from one buffer in slices. */
const OBJECT_SIZES_BYTES = [9 * MEBIBYTE + 12_345, 3 * MEBIBYTE + 777];
const OBJECT_COUNT = 6;
const ROUNDS = 2;

function md5Hex(bytes: Buffer): string {
  return createHash("md5").update(bytes).digest("hex");
}

/** The body's bytes, or the error that ended it and how many bytes came first. */
async function readBody(s3: S3Client, key: string): Promise<{ bytes: Buffer; error: unknown }> {
  const pieces: Buffer[] = [];
  try {
    const got = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
    for await (const piece of got.Body as Readable) pieces.push(piece as Buffer);
    return { bytes: Buffer.concat(pieces), error: undefined };
  } catch (error) {
    return { bytes: Buffer.concat(pieces), error };
  }
}

async function volumeFiles(directory: string): Promise<string[]> {
  const found: string[] = [];
  for (const entry of await readdir(directory, { withFileTypes: true })) {
    const full = path.join(directory, entry.name);
    if (entry.isDirectory()) found.push(...(await volumeFiles(full)));
    else if (entry.name.endsWith(".vol")) found.push(full);
  }
  return found;
}

test("concurrent large PUTs and GETs through reused chunk buffers keep every object's bytes", { timeout: 240_000 }, async () => {
  const dataDirectory = makeDataDirectory("buffers");
  const cairn = await startCairn({ dataDirectory });
  const s3 = s3Client(cairn.endpoint);
  try {
    await s3.send(new CreateBucketCommand({ Bucket: BUCKET }));
    const bodies = Array.from({ length: OBJECT_COUNT }, (_, index) => randomBytes(OBJECT_SIZES_BYTES[index % OBJECT_SIZES_BYTES.length]!));
    for (let round = 0; round < ROUNDS; round++) {
      const puts = await Promise.all(
        bodies.map((body, index) => s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: `object-${index}`, Body: body, ContentLength: body.length }))),
      );
      puts.forEach((put, index) => assert.equal(put.ETag, `"${md5Hex(bodies[index]!)}"`, `ETag of object ${index}`));
      // GETs abandoned after their first bytes leave their buffers to the server to reclaim.
      await Promise.all(
        bodies.map(async (_, index) => {
          const got = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: `object-${index}` }));
          const stream = got.Body as Readable;
          for await (const piece of stream) {
            assert.ok((piece as Buffer).length > 0);
            break;
          }
          stream.destroy();
        }),
      );
      const reads = await Promise.all(bodies.map((_, index) => readBody(s3, `object-${index}`)));
      reads.forEach((read, index) => {
        assert.equal(read.error, undefined, `GET of object ${index} completes`);
        assert.equal(read.bytes.length, bodies[index]!.length);
        assert.equal(md5Hex(read.bytes), md5Hex(bodies[index]!), `object ${index} reads back its own bytes (round ${round})`);
      });
    }
  } finally {
    s3.destroy();
    await cairn.stop();
    removeDataDirectory(dataDirectory);
  }
});

test("a large object whose middle chunk rotted on disk is cut short on GET, never sent with wrong bytes", { timeout: 120_000 }, async () => {
  const dataDirectory = makeDataDirectory("rot");
  const cairn = await startCairn({ dataDirectory });
  const s3 = s3Client(cairn.endpoint);
  try {
    await s3.send(new CreateBucketCommand({ Bucket: BUCKET }));
    const body = randomBytes(OBJECT_SIZES_BYTES[0]!);
    // A marker inside the second chunk (bytes 4..8 MiB), to find its needle in the volume file.
    const markerOffsetBytes = 6 * MEBIBYTE;
    const marker = body.subarray(markerOffsetBytes, markerOffsetBytes + 32);
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: "rotten", Body: body, ContentLength: body.length }));
    const intact = await readBody(s3, "rotten");
    assert.equal(md5Hex(intact.bytes), md5Hex(body), "the object reads back before the rot");

    let flipped = 0;
    for (const file of await volumeFiles(dataDirectory)) {
      const handle = await open(file, "r+");
      try {
        const contents = await handle.readFile();
        const at = contents.indexOf(marker);
        if (at < 0) continue;
        await handle.write(Buffer.from([contents[at + 7]! ^ 0x10]), 0, 1, at + 7);
        flipped += 1;
      } finally {
        await handle.close();
      }
    }
    assert.equal(flipped, 1, "the marker's needle was found and one byte flipped");

    for (let attempt = 0; attempt < 3; attempt++) {
      const read = await readBody(s3, "rotten");
      assert.ok(read.error !== undefined, "the GET fails");
      assert.ok(read.bytes.length < body.length, "the body is cut short");
      assert.ok(read.bytes.equals(body.subarray(0, read.bytes.length)), "every byte sent is the object's own");
    }
  } finally {
    s3.destroy();
    await cairn.stop();
    removeDataDirectory(dataDirectory);
  }
});
