// Proves that bad input gets AWS's error (code, status, XML body with a RequestId) and changes
// nothing: truncated bodies, malformed names, long keys, bad ranges, wrong digests, unknown
// keys and tampered signatures, sent as raw HTTP signed by the SDK's own SigV4 signer.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { makeDataDirectory, removeDataDirectory, startCairn, type CairnProcess } from "./helpers/cairn-process.js";
import { errorCode, rawRequest } from "./helpers/raw-s3.js";

let cairn: CairnProcess;
let dataDirectory: string;

before(async () => {
  dataDirectory = makeDataDirectory("bad-input");
  cairn = await startCairn({ dataDirectory });
  const created = await rawRequest({ port: cairn.port, method: "PUT", path: "/inputs" });
  assert.equal(created.statusCode, 200, created.body);
});

after(async () => {
  await cairn?.stop();
  removeDataDirectory(dataDirectory);
});

async function objectExists(key: string): Promise<boolean> {
  const response = await rawRequest({ port: cairn.port, method: "HEAD", path: `/inputs/${key}` });
  assert.ok(response.statusCode === 200 || response.statusCode === 404, `HEAD status ${response.statusCode}`);
  return response.statusCode === 200;
}

test("a body shorter than its Content-Length stores nothing", async () => {
  const body = Buffer.alloc(1000, 7);
  try {
    const response = await rawRequest({
      port: cairn.port,
      method: "PUT",
      path: "/inputs/truncated",
      body: body.subarray(0, 400),
      declaredContentLength: 1000,
      payloadHash: "UNSIGNED-PAYLOAD",
    });
    // The client half-closed its side: the server still answers with S3's error.
    assert.equal(response.statusCode, 400);
    assert.equal(errorCode(response), "IncompleteBody");
  } catch (error) {
    assert.match(String(error), /socket hang up|ECONNRESET/);
  }
  assert.equal(await objectExists("truncated"), false);
});

test("a signed payload whose bytes differ from x-amz-content-sha256 is refused", async () => {
  const response = await rawRequest({
    port: cairn.port,
    method: "PUT",
    path: "/inputs/sha-mismatch",
    body: "actual body",
    payloadHash: createHash("sha256").update("declared body").digest("hex"),
  });
  assert.equal(response.statusCode, 400);
  assert.equal(errorCode(response), "XAmzContentSHA256Mismatch");
  assert.equal(await objectExists("sha-mismatch"), false);
});

test("an invalid Content-MD5 is InvalidDigest; a wrong one is BadDigest", async () => {
  const invalid = await rawRequest({ port: cairn.port, method: "PUT", path: "/inputs/md5", body: "abc", headers: { "content-md5": "not-base64-md5" } });
  assert.equal(invalid.statusCode, 400);
  assert.equal(errorCode(invalid), "InvalidDigest");
  const wrong = await rawRequest({
    port: cairn.port,
    method: "PUT",
    path: "/inputs/md5",
    body: "abc",
    headers: { "content-md5": createHash("md5").update("abd").digest("base64") },
  });
  assert.equal(wrong.statusCode, 400);
  assert.equal(errorCode(wrong), "BadDigest");
  assert.equal(await objectExists("md5"), false);
});

test("a wrong x-amz-checksum-crc32 is BadDigest; a malformed one is InvalidRequest", async () => {
  const wrong = await rawRequest({ port: cairn.port, method: "PUT", path: "/inputs/crc", body: "abc", headers: { "x-amz-checksum-crc32": "AAAAAA==" } });
  assert.equal(wrong.statusCode, 400);
  assert.equal(errorCode(wrong), "BadDigest");
  const malformed = await rawRequest({ port: cairn.port, method: "PUT", path: "/inputs/crc", body: "abc", headers: { "x-amz-checksum-crc32": "nope" } });
  assert.equal(malformed.statusCode, 400);
  assert.equal(errorCode(malformed), "InvalidRequest");
  assert.equal(await objectExists("crc"), false);
});

test("malformed bucket names are InvalidBucketName with an XML body", async () => {
  for (const name of ["AB", "a_b", "-ab", "ab-", "a..b", "10.0.0.1"]) {
    const response = await rawRequest({ port: cairn.port, method: "PUT", path: `/${name}` });
    assert.equal(response.statusCode, 400, name);
    assert.equal(errorCode(response), "InvalidBucketName", name);
    assert.match(response.body, /<RequestId>[0-9A-F]{16}<\/RequestId>/);
  }
});

test("a key over 1024 bytes is KeyTooLongError", async () => {
  const response = await rawRequest({ port: cairn.port, method: "PUT", path: `/inputs/${"x".repeat(1025)}`, body: "x" });
  assert.equal(response.statusCode, 400);
  assert.equal(errorCode(response), "KeyTooLongError");
});

test("an object stored without Content-Type is served as binary/octet-stream", async () => {
  const put = await rawRequest({ port: cairn.port, method: "PUT", path: "/inputs/untyped", body: "bytes" });
  assert.equal(put.statusCode, 200);
  const got = await rawRequest({ port: cairn.port, method: "GET", path: "/inputs/untyped" });
  assert.equal(got.headers["content-type"], "binary/octet-stream");
});

test("bad Range headers: unsatisfiable is 416 with Content-Range; garbage is ignored", async () => {
  const put = await rawRequest({ port: cairn.port, method: "PUT", path: "/inputs/ranged", body: "0123456789" });
  assert.equal(put.statusCode, 200);
  const unsatisfiable = await rawRequest({ port: cairn.port, method: "GET", path: "/inputs/ranged", headers: { range: "bytes=10-20" } });
  assert.equal(unsatisfiable.statusCode, 416);
  assert.equal(errorCode(unsatisfiable), "InvalidRange");
  assert.equal(unsatisfiable.headers["content-range"], "bytes */10");
  for (const garbage of ["bytes=abc", "items=0-1", "bytes=1-2,4-5"]) {
    const ignored = await rawRequest({ port: cairn.port, method: "GET", path: "/inputs/ranged", headers: { range: garbage } });
    assert.equal(ignored.statusCode, 200, garbage);
    assert.equal(ignored.body, "0123456789");
  }
});

test("a missing Content-Length on PUT is MissingContentLength", async () => {
  const { signer } = await import("./helpers/raw-s3.js");
  const net = await import("node:net");
  const signed = await signer.sign({
    method: "PUT",
    protocol: "http:",
    hostname: "127.0.0.1",
    port: cairn.port,
    path: "/inputs/no-length",
    headers: { host: `127.0.0.1:${cairn.port}`, "x-amz-content-sha256": "UNSIGNED-PAYLOAD" },
  });
  // A raw socket: node's http client would add a Content-Length of its own.
  const head =
    "PUT /inputs/no-length HTTP/1.1\r\n" +
    Object.entries(signed.headers as Record<string, string>).map(([name, value]) => `${name}: ${value}\r\n`).join("") +
    "Connection: close\r\n\r\n";
  const response = await new Promise<string>((resolve, reject) => {
    const socket = net.connect(cairn.port, "127.0.0.1", () => socket.write(head));
    let received = "";
    socket.on("data", (piece: Buffer) => (received += piece.toString()));
    socket.on("end", () => resolve(received));
    socket.on("error", reject);
  });
  assert.match(response, /^HTTP\/1\.1 411/);
  assert.match(response, /<Code>MissingContentLength<\/Code>/);
  assert.equal(await objectExists("no-length"), false);
});

test("an unknown access key and a tampered signature are refused and store nothing", async () => {
  const amzDate = new Date().toISOString().replace(/[-:]/g, "").replace(/\.\d{3}/, "");
  const unknown = await rawRequest({
    port: cairn.port,
    method: "PUT",
    path: "/inputs/stranger",
    body: "x",
    headers: {
      authorization: `AWS4-HMAC-SHA256 Credential=CKNOSUCHKEY000000000/${amzDate.slice(0, 8)}/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=${"0".repeat(64)}`,
      "x-amz-date": amzDate,
    },
    sign: false,
  });
  assert.equal(unknown.statusCode, 403);
  assert.equal(errorCode(unknown), "InvalidAccessKeyId", unknown.body);
  const tampered = await rawRequest({
    port: cairn.port,
    method: "PUT",
    path: "/inputs/tampered",
    body: "x",
    headers: { "x-amz-meta-color": "blue" },
    tamper: (headers) => {
      headers["x-amz-meta-color"] = "red";
    },
  });
  assert.equal(tampered.statusCode, 403);
  assert.equal(errorCode(tampered), "SignatureDoesNotMatch");
  assert.equal(await objectExists("tampered"), false);
  assert.equal(await objectExists("stranger"), false);
  assert.equal(await objectExists("stranger"), false);
});

test("anonymous requests are AccessDenied", async () => {
  const response = await rawRequest({ port: cairn.port, method: "GET", path: "/inputs/ranged", sign: false });
  assert.equal(response.statusCode, 403);
  assert.equal(errorCode(response), "AccessDenied");
});

test("Expect: 100-continue gets one interim response and the body is stored", async () => {
  const { signer } = await import("./helpers/raw-s3.js");
  const net = await import("node:net");
  const body = "continued body";
  const signed = await signer.sign({
    method: "PUT",
    protocol: "http:",
    hostname: "127.0.0.1",
    port: cairn.port,
    path: "/inputs/continued",
    headers: { host: `127.0.0.1:${cairn.port}`, "x-amz-content-sha256": "UNSIGNED-PAYLOAD", "content-length": String(body.length), expect: "100-continue" },
  });
  const head =
    "PUT /inputs/continued HTTP/1.1\r\n" +
    Object.entries(signed.headers as Record<string, string>).map(([name, value]) => `${name}: ${value}\r\n`).join("") +
    "Connection: close\r\n\r\n";
  const response = await new Promise<string>((resolve, reject) => {
    const socket = net.connect(cairn.port, "127.0.0.1", () => socket.write(head));
    let received = "";
    let sentBody = false;
    socket.on("data", (piece: Buffer) => {
      received += piece.toString();
      if (!sentBody && received.startsWith("HTTP/1.1 100 Continue\r\n\r\n")) {
        sentBody = true;
        socket.write(body);
      }
    });
    socket.on("end", () => resolve(received));
    socket.on("error", reject);
  });
  assert.equal(response.match(/HTTP\/1\.1 100 Continue/g)?.length, 1);
  assert.match(response, /HTTP\/1\.1 200 OK/);
  const got = await rawRequest({ port: cairn.port, method: "GET", path: "/inputs/continued" });
  assert.equal(got.body, body);
});

test("a body sent with Transfer-Encoding: chunked is stored without the framing", async () => {
  const { signer } = await import("./helpers/raw-s3.js");
  const http = await import("node:http");
  const signed = await signer.sign({
    method: "PUT",
    protocol: "http:",
    hostname: "127.0.0.1",
    port: cairn.port,
    path: "/inputs/chunked",
    headers: { host: `127.0.0.1:${cairn.port}`, "x-amz-content-sha256": "UNSIGNED-PAYLOAD", "transfer-encoding": "chunked" },
  });
  const status = await new Promise<number>((resolve, reject) => {
    const request = http.request(
      { host: "127.0.0.1", port: cairn.port, method: "PUT", path: "/inputs/chunked", headers: signed.headers as Record<string, string>, agent: false },
      (res) => {
        res.resume();
        res.on("end", () => resolve(res.statusCode ?? 0));
      },
    );
    request.on("error", reject);
    request.write("first piece, ");
    setTimeout(() => request.end("second piece"), 20);
  });
  assert.equal(status, 200);
  const got = await rawRequest({ port: cairn.port, method: "GET", path: "/inputs/chunked" });
  assert.equal(got.body, "first piece, second piece");
});
