// Proves root credentials are generated on first start when the environment gives none:
// printed once, saved with 0600 permissions, reused (not printed) on the next start, and they
// really authenticate.
import { test } from "node:test";
import assert from "node:assert/strict";
import { statSync } from "node:fs";
import * as path from "node:path";
import { CreateBucketCommand, ListBucketsCommand } from "@aws-sdk/client-s3";
import { makeDataDirectory, removeDataDirectory, s3Client, startCairn } from "./helpers/cairn-process.js";

test("generated root credentials are printed once, saved 0600, and work", async () => {
  const dataDirectory = makeDataDirectory("root-keys");
  const noKeys = { CAIRN_ROOT_ACCESS_KEY: "", CAIRN_ROOT_SECRET_KEY: "" };
  const started: Array<{ stop(): Promise<void> }> = [];
  try {
    const first = await startCairn({ dataDirectory, env: noKeys });
    started.push(first);
    await new Promise((resolve) => setTimeout(resolve, 100));
    const accessKeyId = /AWS_ACCESS_KEY_ID=(\S+)/.exec(first.stdout())?.[1];
    const secretAccessKey = /AWS_SECRET_ACCESS_KEY=(\S+)/.exec(first.stdout())?.[1];
    assert.ok(accessKeyId && secretAccessKey, "credentials printed on first start");
    const file = path.join(dataDirectory, "root-credentials.json");
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.equal(statSync(path.join(dataDirectory, "master.key")).mode & 0o777, 0o600);
    const s3 = s3Client(first.endpoint, { credentials: { accessKeyId, secretAccessKey } });
    await s3.send(new CreateBucketCommand({ Bucket: "made-by-root" }));
    s3.destroy();
    await first.stop();
    const second = await startCairn({ dataDirectory, env: noKeys });
    started.push(second);
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.doesNotMatch(second.stdout(), /AWS_SECRET_ACCESS_KEY/, "not printed again");
    // A plain substring test: the secret is base64, and '+' or '/' in it are not a pattern.
    assert.ok(!second.stderr().includes(secretAccessKey), "never logged");
    const again = s3Client(second.endpoint, { credentials: { accessKeyId, secretAccessKey } });
    const listed = await again.send(new ListBucketsCommand({}));
    assert.deepEqual(listed.Buckets?.map((bucket) => bucket.Name), ["made-by-root"]);
    again.destroy();
    await second.stop();
  } finally {
    // A failed assertion must not leave a server running: the test process would wait for it.
    for (const server of started) await server.stop().catch(() => undefined);
    removeDataDirectory(dataDirectory);
  }
});
