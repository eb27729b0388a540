// Proves the real command-line clients work against a `cairn server` child: the aws CLI v2
// (Debian's awscli) `s3 mb/cp/ls/rm/rb` and boto3 (Debian's python3-boto3). Each run asserts
// on what it read back. Outside CI a missing client skips its test and says why; in CI
// (CI=true, where .ci/run installs them) a missing client fails.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { promisify } from "node:util";
import {
  clientEnvironment,
  makeDataDirectory,
  REPO_ROOT,
  removeDataDirectory,
  startCairn,
  type CairnProcess,
} from "./helpers/cairn-process.js";

const run = promisify(execFile);
const AWS_CLI = "/usr/bin/aws";
const SYSTEM_PYTHON = "/usr/bin/python3";
const inCi = process.env.CI === "true";

let cairn: CairnProcess;
let dataDirectory: string;

before(async () => {
  dataDirectory = makeDataDirectory("cli");
  cairn = await startCairn({ dataDirectory });
});

after(async () => {
  await cairn?.stop();
  removeDataDirectory(dataDirectory);
});

function clientEnv(): NodeJS.ProcessEnv {
  return clientEnvironment({ CAIRN_ENDPOINT: cairn.endpoint });
}

function skipUnlessPresent(tool: string, t: { skip(message: string): void }): boolean {
  if (existsSync(tool)) return false;
  assert.ok(!inCi, `${tool} is required in CI (.ci/run installs it)`);
  t.skip(`${tool} is not installed (apt-get install awscli python3-boto3)`);
  return true;
}

async function aws(...args: string[]): Promise<string> {
  const { stdout } = await run(AWS_CLI, ["--endpoint-url", cairn.endpoint, ...args], { env: clientEnv(), maxBuffer: 16 * 1024 * 1024 });
  return stdout;
}

test("aws CLI v2: s3 mb, cp up and down, ls, rm, rb", async (t) => {
  if (skipUnlessPresent(AWS_CLI, t)) return;
  const { stdout: version } = await run(AWS_CLI, ["--version"], { env: clientEnv() });
  assert.match(version, /^aws-cli\/2\./);
  const work = path.join(dataDirectory, "aws-cli-files");
  mkdirSync(work, { recursive: true });
  const body = randomBytes(3 * 1024 * 1024 + 11);
  writeFileSync(path.join(work, "upload.bin"), body);
  await aws("s3", "mb", "s3://cli-bucket");
  await aws("s3", "cp", path.join(work, "upload.bin"), "s3://cli-bucket/some dir/upload.bin");
  await aws("s3", "cp", path.join(work, "upload.bin"), "s3://cli-bucket/second.bin");
  const listing = await aws("s3", "ls", "s3://cli-bucket/");
  assert.match(listing, /PRE some dir\//);
  assert.match(listing, new RegExp(`${body.length} second\\.bin`));
  const recursive = await aws("s3", "ls", "--recursive", "s3://cli-bucket/");
  assert.match(recursive, /some dir\/upload\.bin/);
  await aws("s3", "cp", "s3://cli-bucket/some dir/upload.bin", path.join(work, "download.bin"));
  const downloaded = readFileSync(path.join(work, "download.bin"));
  assert.equal(createHash("md5").update(downloaded).digest("hex"), createHash("md5").update(body).digest("hex"));
  const head = JSON.parse(await aws("s3api", "head-object", "--bucket", "cli-bucket", "--key", "second.bin")) as { ContentLength: number; ETag: string };
  assert.equal(head.ContentLength, body.length);
  assert.equal(head.ETag, `"${createHash("md5").update(body).digest("hex")}"`);
  await assert.rejects(aws("s3", "rb", "s3://cli-bucket"), /BucketNotEmpty/);
  await aws("s3", "rm", "--recursive", "s3://cli-bucket/");
  assert.equal((await aws("s3", "ls", "s3://cli-bucket/")).trim(), "");
  await aws("s3", "rb", "s3://cli-bucket");
  assert.doesNotMatch(await aws("s3", "ls"), /cli-bucket/);
});

test("boto3: buckets, objects, ranges, listing, presigned URLs and errors", async (t) => {
  if (skipUnlessPresent(SYSTEM_PYTHON, t)) return;
  const probe = await run(SYSTEM_PYTHON, ["-c", "import boto3"]).then(
    () => true,
    () => false,
  );
  if (!probe) {
    assert.ok(!inCi, "python3-boto3 is required in CI (.ci/run installs it)");
    t.skip("boto3 is not installed for /usr/bin/python3 (apt-get install python3-boto3)");
    return;
  }
  const { stdout } = await run(SYSTEM_PYTHON, [path.join(REPO_ROOT, "test", "clients", "boto3_core.py")], { env: clientEnv() });
  assert.match(stdout, /boto3 core: OK/);
});
