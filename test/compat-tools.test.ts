// Proves Cairn works unmodified with the tools people use, each run asserting on what it read
// back: the aws CLI v2 (s3 and s3api, a 100 MiB cp that goes multipart, sync), s3cmd, rclone
// (copy, sync, check with MD5), and users from `cairn admin` isolated from each other.
// Outside CI a missing tool skips its test and says why; in CI a missing tool fails.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { promisify } from "node:util";
import { CreateBucketCommand, GetObjectCommand, PutObjectCommand, S3ServiceException } from "@aws-sdk/client-s3";
import {
  CAIRN_BIN,
  clientEnvironment,
  makeDataDirectory,
  removeDataDirectory,
  s3Client,
  startCairn,
  TEST_ACCESS_KEY_ID,
  TEST_SECRET_ACCESS_KEY,
  type CairnProcess,
} from "./helpers/cairn-process.js";

const run = promisify(execFile);
const inCi = process.env.CI === "true";
const MIB = 1024 * 1024;

let cairn: CairnProcess;
let dataDirectory: string;
let work: string;

before(async () => {
  dataDirectory = makeDataDirectory("compat");
  cairn = await startCairn({ dataDirectory });
  work = path.join(dataDirectory, "client-files");
  mkdirSync(work, { recursive: true });
});

after(async () => {
  await cairn?.stop();
  removeDataDirectory(dataDirectory);
});

function toolMissing(tool: string, t: { skip(message: string): void }): boolean {
  if (existsSync(tool)) return false;
  assert.ok(!inCi, `${tool} is required in CI (.ci/run installs it)`);
  t.skip(`${tool} is not installed`);
  return true;
}

const env = clientEnvironment;

const md5File = (file: string) => createHash("md5").update(readFileSync(file)).digest("hex");

function writeTree(root: string, files: Record<string, Buffer>): void {
  for (const [name, body] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(root, name)), { recursive: true });
    writeFileSync(path.join(root, name), body);
  }
}

test("aws CLI v2: a 100 MiB cp goes multipart and round-trips; sync uploads only changes; s3api works", async (t) => {
  const aws = "/usr/bin/aws";
  if (toolMissing(aws, t)) return;
  const cli = async (...args: string[]) => (await run(aws, ["--endpoint-url", cairn.endpoint, ...args], { env: env(), maxBuffer: 64 * MIB })).stdout;
  await cli("s3", "mb", "s3://aws-compat");
  const big = path.join(work, "big.bin");
  writeFileSync(big, randomBytes(100 * MIB));
  await cli("s3", "cp", big, "s3://aws-compat/big.bin");
  const head = JSON.parse(await cli("s3api", "head-object", "--bucket", "aws-compat", "--key", "big.bin")) as { ContentLength: number; ETag: string };
  assert.equal(head.ContentLength, 100 * MIB);
  assert.match(head.ETag, /^"[0-9a-f]{32}-\d+"$/, "the CLI uploaded it in parts");
  await cli("s3", "cp", "s3://aws-compat/big.bin", path.join(work, "big.back"));
  assert.equal(md5File(path.join(work, "big.back")), md5File(big));

  const tree = path.join(work, "tree");
  writeTree(tree, { "a.txt": Buffer.from("alpha"), "dir/b.txt": Buffer.from("beta"), "dir/sub/c.bin": randomBytes(2 * MIB) });
  const firstSync = await cli("s3", "sync", tree, "s3://aws-compat/tree");
  assert.equal((firstSync.match(/upload:/g) ?? []).length, 3);
  writeFileSync(path.join(tree, "a.txt"), "alpha, changed");
  const secondSync = await cli("s3", "sync", tree, "s3://aws-compat/tree");
  const uploads = secondSync.match(/upload: \S+/g) ?? [];
  assert.equal(uploads.length, 1, secondSync);
  assert.match(uploads[0]!, /tree\/a\.txt$/);
  const back = path.join(work, "tree-back");
  await cli("s3", "sync", "s3://aws-compat/tree", back);
  for (const name of ["a.txt", "dir/b.txt", "dir/sub/c.bin"]) assert.equal(md5File(path.join(back, name)), md5File(path.join(tree, name)), name);

  await cli("s3api", "put-bucket-versioning", "--bucket", "aws-compat", "--versioning-configuration", "Status=Enabled");
  const versioning = JSON.parse(await cli("s3api", "get-bucket-versioning", "--bucket", "aws-compat")) as { Status: string };
  assert.equal(versioning.Status, "Enabled");
  await cli("s3api", "put-object-tagging", "--bucket", "aws-compat", "--key", "tree/a.txt", "--tagging", "TagSet=[{Key=k,Value=v}]");
  const tagging = JSON.parse(await cli("s3api", "get-object-tagging", "--bucket", "aws-compat", "--key", "tree/a.txt")) as { TagSet: unknown[] };
  assert.deepEqual(tagging.TagSet, [{ Key: "k", Value: "v" }]);
  const listed = JSON.parse(await cli("s3api", "list-objects-v2", "--bucket", "aws-compat", "--prefix", "tree/", "--delimiter", "/")) as {
    Contents: Array<{ Key: string }>;
    CommonPrefixes: Array<{ Prefix: string }>;
  };
  assert.deepEqual(listed.Contents.map((object) => object.Key), ["tree/a.txt"]);
  assert.deepEqual(listed.CommonPrefixes.map((prefix) => prefix.Prefix), ["tree/dir/"]);
});

test("s3cmd: mb, put, ls, get, info, del, rb", async (t) => {
  const s3cmd = "/usr/bin/s3cmd";
  if (toolMissing(s3cmd, t)) return;
  const config = path.join(work, "s3cfg");
  const host = `127.0.0.1:${cairn.port}`;
  writeFileSync(
    config,
    [
      "[default]",
      `access_key = ${TEST_ACCESS_KEY_ID}`,
      `secret_key = ${TEST_SECRET_ACCESS_KEY}`,
      `host_base = ${host}`,
      `host_bucket = ${host}`,
      "bucket_location = us-east-1",
      "use_https = False",
      "signature_v2 = False",
      "check_ssl_certificate = False",
      "",
    ].join("\n"),
  );
  const cmd = async (...args: string[]) => (await run(s3cmd, ["-c", config, ...args], { env: env(), maxBuffer: 16 * MIB })).stdout;
  await cmd("mb", "s3://s3cmd-compat");
  const small = path.join(work, "s3cmd-small.txt");
  writeFileSync(small, "hello from s3cmd");
  const large = path.join(work, "s3cmd-large.bin");
  writeFileSync(large, randomBytes(20 * MIB));
  await cmd("put", small, "s3://s3cmd-compat/small.txt");
  await cmd("put", "--multipart-chunk-size-mb=5", large, "s3://s3cmd-compat/large.bin");
  const listing = await cmd("ls", "s3://s3cmd-compat/");
  assert.match(listing, /s3:\/\/s3cmd-compat\/small\.txt/);
  assert.match(listing, /s3:\/\/s3cmd-compat\/large\.bin/);
  await cmd("get", "--force", "s3://s3cmd-compat/large.bin", path.join(work, "s3cmd-large.back"));
  assert.equal(md5File(path.join(work, "s3cmd-large.back")), md5File(large));
  await cmd("get", "--force", "s3://s3cmd-compat/small.txt", path.join(work, "s3cmd-small.back"));
  assert.equal(readFileSync(path.join(work, "s3cmd-small.back"), "utf8"), "hello from s3cmd");
  const info = await cmd("info", "s3://s3cmd-compat/small.txt");
  assert.match(info, new RegExp(createHash("md5").update("hello from s3cmd").digest("hex")));
  await cmd("del", "s3://s3cmd-compat/small.txt", "s3://s3cmd-compat/large.bin");
  assert.equal((await cmd("ls", "s3://s3cmd-compat/")).trim(), "");
  await cmd("rb", "s3://s3cmd-compat");
});

test("rclone: copy, sync and check with MD5", async (t) => {
  const rclone = "/usr/bin/rclone";
  if (toolMissing(rclone, t)) return;
  const rcloneEnv = env({
    RCLONE_CONFIG: "/dev/null",
    RCLONE_CONFIG_CAIRN_TYPE: "s3",
    RCLONE_CONFIG_CAIRN_PROVIDER: "Other",
    RCLONE_CONFIG_CAIRN_ACCESS_KEY_ID: TEST_ACCESS_KEY_ID,
    RCLONE_CONFIG_CAIRN_SECRET_ACCESS_KEY: TEST_SECRET_ACCESS_KEY,
    RCLONE_CONFIG_CAIRN_ENDPOINT: cairn.endpoint,
    RCLONE_CONFIG_CAIRN_REGION: "us-east-1",
    RCLONE_CONFIG_CAIRN_FORCE_PATH_STYLE: "true",
  });
  const rc = async (...args: string[]) => run(rclone, [...args], { env: rcloneEnv, maxBuffer: 16 * MIB });
  const source = path.join(work, "rclone-source");
  writeTree(source, {
    "one.txt": Buffer.from("one"),
    "nested/two.bin": randomBytes(300_000),
    "nested/deeper/three.bin": randomBytes(30 * MIB),
    "with space & plus+.txt": Buffer.from("odd name"),
  });
  await rc("mkdir", "cairn:rclone-compat");
  await rc("copy", source, "cairn:rclone-compat/data");
  await rc("check", source, "cairn:rclone-compat/data");
  const { stdout: hashes } = await rc("md5sum", "cairn:rclone-compat/data");
  assert.match(hashes, new RegExp(`${md5File(path.join(source, "nested/two.bin"))}\\s+nested/two\\.bin`));
  writeFileSync(path.join(source, "one.txt"), "one, changed");
  writeFileSync(path.join(source, "new.txt"), "new");
  await rc("sync", source, "cairn:rclone-compat/data");
  await rc("check", source, "cairn:rclone-compat/data");
  const back = path.join(work, "rclone-back");
  await rc("copy", "cairn:rclone-compat/data", back);
  assert.deepEqual(readdirSync(back).sort(), readdirSync(source).sort());
  assert.equal(md5File(path.join(back, "nested/deeper/three.bin")), md5File(path.join(source, "nested/deeper/three.bin")));
  assert.equal(readFileSync(path.join(back, "one.txt"), "utf8"), "one, changed");
  // A corrupted local copy is caught by check.
  writeFileSync(path.join(source, "new.txt"), "NEW");
  await assert.rejects(rc("check", source, "cairn:rclone-compat/data"), /differ|difference/);
});

test("users from cairn admin get their own keys and cannot touch each other's buckets", async () => {
  const admin = async (...args: string[]) =>
    (await run(process.execPath, [CAIRN_BIN, "admin", "--data-dir", dataDirectory, ...args], { env: env() })).stdout;
  const keysOf = (output: string) => ({
    accessKeyId: /AWS_ACCESS_KEY_ID=(\S+)/.exec(output)![1]!,
    secretAccessKey: /AWS_SECRET_ACCESS_KEY=(\S+)/.exec(output)![1]!,
  });
  const alice = keysOf(await admin("user", "add", "alice"));
  const bob = keysOf(await admin("user", "add", "bob"));
  assert.match(await admin("user", "ls"), /alice\tuser\t1 key/);
  const aliceS3 = s3Client(cairn.endpoint, { credentials: alice });
  const bobS3 = s3Client(cairn.endpoint, { credentials: bob });
  try {
    await aliceS3.send(new CreateBucketCommand({ Bucket: "alice-private" }));
    await aliceS3.send(new PutObjectCommand({ Bucket: "alice-private", Key: "diary", Body: "dear diary" }));
    for (const call of [
      bobS3.send(new GetObjectCommand({ Bucket: "alice-private", Key: "diary" })),
      bobS3.send(new PutObjectCommand({ Bucket: "alice-private", Key: "graffiti", Body: "x" })),
    ]) {
      await assert.rejects(call, (error: unknown) => error instanceof S3ServiceException && error.name === "AccessDenied");
    }
    const got = await aliceS3.send(new GetObjectCommand({ Bucket: "alice-private", Key: "diary" }));
    assert.equal(await got.Body!.transformToString(), "dear diary");
    // A second key works; a removed key stops working.
    const second = keysOf(await admin("key", "add", "alice"));
    const secondS3 = s3Client(cairn.endpoint, { credentials: second });
    await secondS3.send(new GetObjectCommand({ Bucket: "alice-private", Key: "diary" }));
    await admin("key", "rm", second.accessKeyId);
    await admin("user", "rm", "bob");
    // Removed keys may be cached by the gateway for a few seconds.
    await new Promise((resolve) => setTimeout(resolve, 5_500));
    await assert.rejects(secondS3.send(new GetObjectCommand({ Bucket: "alice-private", Key: "diary" })), (error: unknown) => error instanceof S3ServiceException && error.name === "InvalidAccessKeyId");
    await assert.rejects(bobS3.send(new CreateBucketCommand({ Bucket: "bob-bucket" })), (error: unknown) => error instanceof S3ServiceException && error.name === "InvalidAccessKeyId");
    secondS3.destroy();
    for (const file of readdirSync(dataDirectory).filter((name) => name.startsWith("metadata.sqlite"))) {
      const stored = readFileSync(path.join(dataDirectory, file));
      assert.equal(stored.includes(Buffer.from(alice.secretAccessKey)), false, `secrets are not stored in the clear (${file})`);
    }
  } finally {
    aliceS3.destroy();
    bobS3.destroy();
  }
});
