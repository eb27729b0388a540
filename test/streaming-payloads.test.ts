// Proves every payload signing mode end to end through a `cairn server`: signed aws-chunked
// (each chunk signature verified), signed aws-chunked with a signed trailing checksum, and
// unsigned aws-chunked with a trailing checksum. The stored object holds exactly the decoded
// bytes (no framing), its trailing checksum is returned with checksum mode, and a tampered
// chunk is refused without storing anything.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import * as http from "node:http";
import { encodeAwsChunked, presignUrl, signRequest } from "../src/auth/index.js";
import { newChecksummer, type ChecksumAlgorithm } from "../src/base/index.js";
import { makeDataDirectory, removeDataDirectory, startCairn, TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY, type CairnProcess } from "./helpers/cairn-process.js";
import { errorCode, rawRequest } from "./helpers/raw-s3.js";

let cairn: CairnProcess;
let dataDirectory: string;

before(async () => {
  dataDirectory = makeDataDirectory("streaming");
  cairn = await startCairn({ dataDirectory });
  assert.equal((await rawRequest({ port: cairn.port, method: "PUT", path: "/streams" })).statusCode, 200);
});

after(async () => {
  await cairn?.stop();
  removeDataDirectory(dataDirectory);
});

function send(path: string, headers: Record<string, string>, body: Buffer): Promise<{ statusCode: number; body: string }> {
  return new Promise((resolve, reject) => {
    const request = http.request({ host: "127.0.0.1", port: cairn.port, method: "PUT", path, headers, agent: false }, (response) => {
      let text = "";
      response.on("data", (piece: Buffer) => (text += piece.toString()));
      response.on("end", () => resolve({ statusCode: response.statusCode ?? 0, body: text }));
    });
    request.on("error", reject);
    request.end(body);
  });
}

async function streamingPut(options: { key: string; data: Buffer; mode: string; trailer?: ChecksumAlgorithm; signed: boolean; tamper?: boolean }) {
  const path = `/streams/${options.key}`;
  const headers: Record<string, string> = {
    host: `127.0.0.1:${cairn.port}`,
    "content-encoding": "aws-chunked",
    "x-amz-decoded-content-length": String(options.data.length),
    ...(options.trailer ? { "x-amz-trailer": `x-amz-checksum-${options.trailer.toLowerCase()}` } : {}),
  };
  const signed = signRequest({
    method: "PUT",
    url: path,
    headers,
    payloadHash: options.mode,
    accessKeyId: TEST_ACCESS_KEY_ID,
    secretAccessKey: TEST_SECRET_ACCESS_KEY,
    region: "us-east-1",
    nowMs: Date.now(),
  });
  const body = encodeAwsChunked({
    data: options.data,
    chunkSizeBytes: 64 * 1024,
    ...(options.signed ? { signing: signed.signing } : {}),
    ...(options.trailer ? { trailer: options.trailer } : {}),
  });
  if (options.tamper) body[200] = body[200]! ^ 0xff;
  return send(path, { ...signed.headers, "content-length": String(body.length) }, body);
}

const cases: Array<{ name: string; mode: string; trailer?: ChecksumAlgorithm; signed: boolean }> = [
  { name: "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", mode: "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", signed: true },
  { name: "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER", mode: "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER", trailer: "CRC32C", signed: true },
  { name: "STREAMING-UNSIGNED-PAYLOAD-TRAILER", mode: "STREAMING-UNSIGNED-PAYLOAD-TRAILER", trailer: "SHA256", signed: false },
];

for (const mode of cases) {
  test(`${mode.name}: stored byte-exact, trailer checksum kept`, async () => {
    const data = randomBytes(200_000 + 17);
    const key = mode.name.toLowerCase();
    const response = await streamingPut({ key, data, ...mode });
    assert.equal(response.statusCode, 200, response.body);
    const url = presignUrl({ method: "GET", url: `http://127.0.0.1:${cairn.port}/streams/${key}`, accessKeyId: TEST_ACCESS_KEY_ID, secretAccessKey: TEST_SECRET_ACCESS_KEY, region: "us-east-1", nowMs: Date.now(), expiresSeconds: 60 });
    const got = Buffer.from(await (await fetch(url)).arrayBuffer());
    assert.ok(got.equals(data), "GET returns exactly the decoded bytes");
    const head = await rawRequest({ port: cairn.port, method: "HEAD", path: `/streams/${key}`, headers: { "x-amz-checksum-mode": "ENABLED" } });
    assert.equal(head.headers["content-length"], String(data.length));
    assert.equal(head.headers.etag, `"${createHash("md5").update(data).digest("hex")}"`);
    if (mode.trailer) {
      const checksummer = newChecksummer(mode.trailer);
      checksummer.update(data);
      assert.equal(head.headers[`x-amz-checksum-${mode.trailer.toLowerCase()}`], checksummer.digest().toString("base64"));
    }
  });
}

test("a tampered signed chunk is SignatureDoesNotMatch and stores nothing", async () => {
  const response = await streamingPut({ key: "tampered", data: randomBytes(200_000), mode: "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", signed: true, tamper: true });
  assert.equal(response.statusCode, 403);
  assert.match(response.body, /<Code>SignatureDoesNotMatch<\/Code>/);
  const head = await rawRequest({ port: cairn.port, method: "HEAD", path: "/streams/tampered" });
  assert.equal(head.statusCode, 404);
  assert.equal(errorCode(head), undefined);
});

test("a wrong trailing checksum is BadDigest and stores nothing", async () => {
  const data = randomBytes(100_000);
  const path = "/streams/bad-trailer";
  const headers: Record<string, string> = {
    host: `127.0.0.1:${cairn.port}`,
    "content-encoding": "aws-chunked",
    "x-amz-decoded-content-length": String(data.length),
    "x-amz-trailer": "x-amz-checksum-crc32",
  };
  const signed = signRequest({ method: "PUT", url: path, headers, payloadHash: "STREAMING-UNSIGNED-PAYLOAD-TRAILER", accessKeyId: TEST_ACCESS_KEY_ID, secretAccessKey: TEST_SECRET_ACCESS_KEY, region: "us-east-1", nowMs: Date.now() });
  const body = Buffer.from(encodeAwsChunked({ data, chunkSizeBytes: 65_536, trailer: "CRC32" }).toString("latin1").replace(/x-amz-checksum-crc32:[^\r]+/, "x-amz-checksum-crc32:AAAAAA=="), "latin1");
  const response = await send(path, { ...signed.headers, "content-length": String(body.length) }, body);
  assert.equal(response.statusCode, 400);
  assert.match(response.body, /<Code>BadDigest<\/Code>/);
  assert.equal((await rawRequest({ port: cairn.port, method: "HEAD", path })).statusCode, 404);
});
