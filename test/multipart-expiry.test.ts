// Proves abandoned multipart uploads are aborted after the configured age
// (--multipart-expiry-seconds), and that a fresh upload is left alone.
import { test } from "node:test";
import assert from "node:assert/strict";
import { CreateBucketCommand, CreateMultipartUploadCommand, ListMultipartUploadsCommand, UploadPartCommand } from "@aws-sdk/client-s3";
import { makeDataDirectory, removeDataDirectory, s3Client, startCairn } from "./helpers/cairn-process.js";

test("uploads older than the expiry are aborted by the sweeper", async () => {
  const dataDirectory = makeDataDirectory("expiry");
  const cairn = await startCairn({ dataDirectory, args: ["--multipart-expiry-seconds", "2"] });
  const s3 = s3Client(cairn.endpoint);
  try {
    await s3.send(new CreateBucketCommand({ Bucket: "expiry" }));
    const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: "expiry", Key: "abandoned" }));
    await s3.send(new UploadPartCommand({ Bucket: "expiry", Key: "abandoned", UploadId, PartNumber: 1, Body: "part" }));
    const listed = await s3.send(new ListMultipartUploadsCommand({ Bucket: "expiry" }));
    assert.equal(listed.Uploads?.length, 1);
    const deadline = Date.now() + 15_000;
    let remaining = 1;
    while (remaining > 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 500));
      remaining = (await s3.send(new ListMultipartUploadsCommand({ Bucket: "expiry" }))).Uploads?.length ?? 0;
    }
    assert.equal(remaining, 0, "the abandoned upload was aborted");
  } finally {
    s3.destroy();
    await cairn.stop();
    removeDataDirectory(dataDirectory);
  }
});
