// Proves that a 1 GiB object streams through with flat memory: PUT with the SDK's default
// (aws-chunked, CRC32 trailer) and GET back, MD5-equal, while the server's peak resident
// memory stays far below the object size; and that by default (--direct-io) a large object's
// chunks go to the volume page-aligned (written around the page cache) and read back intact, and
// with --direct-io=false they are written through the page cache, without padding.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { Readable } from "node:stream";
import { CreateBucketCommand, GetObjectCommand, PutObjectCommand } from "@aws-sdk/client-s3";
import { readdirSync } from "node:fs";
import * as path from "node:path";
import { GIBIBYTE, MEBIBYTE } from "../src/base/index.js";
import { directWritesAllowedIn } from "../src/datanode/direct-write.js";
import { needlesInVolumeFile } from "../src/datanode/fixtures.js";
import { NEEDLE_FLAG_PADDING } from "../src/datanode/needle-codec.js";
import { makeDataDirectory, removeDataDirectory, s3Client, startCairn } from "./helpers/cairn-process.js";

const OBJECT_SIZE_BYTES = 1 * GIBIBYTE;
/** Peak RSS allowed for the server: Node's baseline plus a few chunks, nowhere near 1 GiB. */
const SERVER_PEAK_RESIDENT_BYTES_MAX = 256 * MEBIBYTE;

/** A deterministic body: a random block whose first bytes carry the block index, so no two blocks match. */
function* generateBody(block: Buffer, totalBytes: number): Generator<Buffer> {
  for (let offset = 0, index = 0; offset < totalBytes; offset += block.length, index++) {
    const piece = Buffer.from(block.subarray(0, Math.min(block.length, totalBytes - offset)));
    piece.writeUInt32BE(index, 0);
    yield piece;
  }
}

test("a 1 GiB object round-trips with flat server memory", { timeout: 300_000 }, async (t) => {
  const dataDirectory = makeDataDirectory("large");
  const cairn = await startCairn({ dataDirectory });
  const s3 = s3Client(cairn.endpoint);
  try {
    await s3.send(new CreateBucketCommand({ Bucket: "large" }));
    const block = randomBytes(MEBIBYTE);
    const sent = createHash("md5");
    for (const piece of generateBody(block, OBJECT_SIZE_BYTES)) sent.update(piece);
    const expectedMd5 = sent.digest("hex");
    const put = await s3.send(
      new PutObjectCommand({ Bucket: "large", Key: "big", Body: Readable.from(generateBody(block, OBJECT_SIZE_BYTES)), ContentLength: OBJECT_SIZE_BYTES }),
    );
    assert.equal(put.ETag, `"${expectedMd5}"`);
    const got = await s3.send(new GetObjectCommand({ Bucket: "large", Key: "big" }));
    assert.equal(got.ContentLength, OBJECT_SIZE_BYTES);
    const received = createHash("md5");
    let receivedBytes = 0;
    for await (const piece of got.Body as Readable) {
      received.update(piece as Buffer);
      receivedBytes += (piece as Buffer).length;
    }
    assert.equal(receivedBytes, OBJECT_SIZE_BYTES);
    assert.equal(received.digest("hex"), expectedMd5);
    const peak = await cairn.peakResidentBytes();
    t.diagnostic(`server peak RSS ${Math.round(peak / MEBIBYTE)} MiB for a ${OBJECT_SIZE_BYTES / MEBIBYTE} MiB object`);
    assert.ok(peak < SERVER_PEAK_RESIDENT_BYTES_MAX, `server peak RSS ${Math.round(peak / MEBIBYTE)} MiB stays under ${SERVER_PEAK_RESIDENT_BYTES_MAX / MEBIBYTE} MiB`);
  } finally {
    s3.destroy();
    await cairn.stop();
    removeDataDirectory(dataDirectory);
  }
});

async function roundTripSixtyFourMebibytes(args: string[]): Promise<{ dataDirectory: string; chunks: Array<{ offsetBytes: number }>; paddingCount: number }> {
  const dataDirectory = makeDataDirectory("large-direct");
  const cairn = await startCairn({ dataDirectory, args });
  const s3 = s3Client(cairn.endpoint);
  const objectSizeBytes = 64 * MEBIBYTE;
  const block = randomBytes(MEBIBYTE);
  try {
    await s3.send(new CreateBucketCommand({ Bucket: "large" }));
    const sent = createHash("md5");
    for (const piece of generateBody(block, objectSizeBytes)) sent.update(piece);
    const expectedMd5 = sent.digest("hex");
    const put = await s3.send(new PutObjectCommand({ Bucket: "large", Key: "big", Body: Readable.from(generateBody(block, objectSizeBytes)), ContentLength: objectSizeBytes }));
    assert.equal(put.ETag, `"${expectedMd5}"`);
    const got = await s3.send(new GetObjectCommand({ Bucket: "large", Key: "big" }));
    const received = createHash("md5");
    for await (const piece of got.Body as Readable) received.update(piece as Buffer);
    assert.equal(received.digest("hex"), expectedMd5);
  } finally {
    s3.destroy();
    await cairn.stop();
  }
  try {
    // The file says how its needles were placed.
    const volumesDirectory = path.join(dataDirectory, "disk0", "volumes");
    const needles = [];
    for (const name of readdirSync(volumesDirectory).filter((file) => file.endsWith(".vol"))) {
      needles.push(...(await needlesInVolumeFile(path.join(volumesDirectory, name))));
    }
    const chunks = needles.filter((needle) => needle.dataSizeBytes === 4 * MEBIBYTE);
    assert.equal(chunks.length, objectSizeBytes / (4 * MEBIBYTE));
    return { dataDirectory, chunks, paddingCount: needles.filter((needle) => needle.flags === NEEDLE_FLAG_PADDING).length };
  } catch (error) {
    removeDataDirectory(dataDirectory);
    throw error;
  }
}

test("by default a 64 MiB object round-trips and its chunks sit page-aligned in the volume behind padding needles", { timeout: 120_000 }, async () => {
  const { dataDirectory, chunks, paddingCount } = await roundTripSixtyFourMebibytes([]);
  try {
    // Where O_DIRECT is allowed (not on tmpfs), every 4 MiB chunk's needle starts at a page
    // boundary, most of them behind a padding needle.
    if (await directWritesAllowedIn(dataDirectory)) {
      assert.ok(chunks.every((needle) => needle.offsetBytes % 4096 === 0), "every chunk's needle starts at a page boundary");
      assert.ok(paddingCount > 0, "padding needles line them up");
    }
  } finally {
    removeDataDirectory(dataDirectory);
  }
});

test("with --direct-io=false a 64 MiB object round-trips and its chunks follow each other without padding", { timeout: 120_000 }, async () => {
  const { dataDirectory, chunks, paddingCount } = await roundTripSixtyFourMebibytes(["--direct-io=false"]);
  try {
    assert.equal(paddingCount, 0, "written through the page cache, nothing is padded");
    assert.ok(chunks.some((needle) => needle.offsetBytes % 4096 !== 0), "the chunks' needles follow each other, not page-aligned");
  } finally {
    removeDataDirectory(dataDirectory);
  }
});
