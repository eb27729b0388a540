/**
 * Proves interoperability with the signer AWS ships, not just with our own: requests and
 * presigned URLs signed by @smithy/signature-v4 verify, and a real @aws-sdk/client-s3 client
 * talking HTTP to a tiny server built on verifyRequest + createPayloadDecoder can PUT (buffer
 * and streaming bodies, which the SDK sends aws-chunked with a CRC32 trailer), GET and LIST
 * keys with spaces, unicode, '+', '%', '=', '&', '~', '*', '//' and friends, and fetch
 * presigned GET/PUT URLs made by @aws-sdk/s3-request-presigner. A wrong secret is refused.
 */
import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { createHash, createHmac } from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { Readable } from "node:stream";
import { SignatureV4 } from "@smithy/signature-v4";
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";
import { AuthError } from "./auth-error.js";
import { createPayloadDecoder } from "./payload-decoder.js";
import { verifyRequest, type AuthResult } from "./sigv4.js";
import { lookupOf } from "./test-support.js";

const ACCESS_KEY_ID = "CKTESTACCESSKEY00001";
const SECRET_ACCESS_KEY = "s3cr3t/with+odd=chars/0123456789abcdefghi";
const lookup = lookupOf({ [ACCESS_KEY_ID]: SECRET_ACCESS_KEY });

/** The Checksum constructor smithy wants, on node:crypto. */
class NodeSha256 {
  private readonly hash;
  constructor(secret?: string | ArrayBuffer | ArrayBufferView) {
    const key = secret === undefined ? undefined : typeof secret === "string" ? secret : toBytes(secret);
    this.hash = key === undefined ? createHash("sha256") : createHmac("sha256", key);
  }
  update(data: string | ArrayBuffer | ArrayBufferView): void {
    this.hash.update(typeof data === "string" ? data : toBytes(data));
  }
  async digest(): Promise<Uint8Array> {
    return new Uint8Array(this.hash.digest());
  }
  reset(): void {}
}

function toBytes(data: ArrayBuffer | ArrayBufferView): Uint8Array {
  return ArrayBuffer.isView(data) ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength) : new Uint8Array(data);
}

const ODD_KEYS = [
  "plain.txt",
  "with space.txt",
  "unicode-é-中文-🙂.bin",
  "plus+sign+",
  "percent%25literal%",
  "equals=and&ampersand",
  "tilde~star*paren(1)!",
  "dir//double/slash/",
  "quote'and\"double",
  "colon:semi;comma,at@dollar$hash#",
];

/** How the JS SDK puts a key in a path: encodeURIComponent plus !'()* escaped. */
function sdkEncode(text: string): string {
  return encodeURIComponent(text).replace(/[!'()*]/g, (c) => "%" + c.charCodeAt(0).toString(16).toUpperCase());
}

function smithySigner(region = "us-east-1"): SignatureV4 {
  return new SignatureV4({
    credentials: { accessKeyId: ACCESS_KEY_ID, secretAccessKey: SECRET_ACCESS_KEY },
    region,
    service: "s3",
    sha256: NodeSha256,
    uriEscapePath: false, // S3 signs the path single-encoded
  });
}

function queryString(query: Record<string, string>, encode: (text: string) => string): string {
  return Object.entries(query)
    .map(([name, value]) => `${encode(name)}=${encode(value)}`)
    .join("&");
}

test("@smithy/signature-v4 header signatures verify for odd keys, regions and query values", async () => {
  const query = { prefix: "a b+c/é~*", delimiter: "/", "list-type": "2", marker: "x=y&z%" };
  for (const key of ODD_KEYS) {
    const path = "/bucket/" + key.split("/").map(sdkEncode).join("/");
    const signed = await smithySigner("eu-west-3").sign(
      {
        method: "GET",
        protocol: "http:",
        hostname: "localhost",
        port: 9000,
        path,
        query,
        headers: { host: "localhost:9000", "x-amz-content-sha256": "UNSIGNED-PAYLOAD", "x-amz-meta-note": "  a   b  " },
      },
      { signingDate: new Date() },
    );
    const headers = Object.fromEntries(Object.entries(signed.headers).map(([name, value]) => [name.toLowerCase(), value]));
    // Two wire encodings of the same query: the SDK's, and Go's ('+' for space, raw '/').
    for (const wireQuery of [
      queryString(query, sdkEncode),
      queryString(query, (text) => encodeURIComponent(text).replace(/%20/g, "+").replace(/%2F/g, "/")),
    ]) {
      const result = await verifyRequest(
        { method: "GET", rawUrl: `${path}?${wireQuery}`, headers, nowMs: Date.now() },
        lookup,
      );
      assert.equal(result.kind, "authenticated", key);
    }
  }
});

test("@smithy/signature-v4 presigned URLs verify for odd keys and extra query parameters", async () => {
  for (const key of ODD_KEYS) {
    const path = "/bucket/" + key.split("/").map(sdkEncode).join("/");
    const presigned = await smithySigner().presign(
      {
        method: "PUT",
        protocol: "http:",
        hostname: "localhost",
        path,
        query: { "x-id": "PutObject", partNumber: "3", uploadId: "a+b/c=" },
        headers: { host: "localhost", "x-amz-content-sha256": "UNSIGNED-PAYLOAD" },
      },
      { expiresIn: 3600, signingDate: new Date() },
    );
    const query = Object.entries(presigned.query ?? {})
      .map(([name, value]) => `${sdkEncode(name)}=${sdkEncode(String(value))}`)
      .join("&");
    const result = await verifyRequest(
      { method: "PUT", rawUrl: `${path}?${query}`, headers: { host: "localhost" }, nowMs: Date.now() },
      lookup,
    );
    assert.equal(result.kind, "authenticated", key);
    await assert.rejects(
      verifyRequest({ method: "PUT", rawUrl: `${path}x?${query}`, headers: { host: "localhost" }, nowMs: Date.now() }, lookup),
      (error: unknown) => error instanceof AuthError && error.reason === "SignatureDoesNotMatch",
    );
  }
});

// ---- A real S3Client against a minimal server built on this module ----

interface Seen {
  payload: AuthResult["payload"];
  contentEncoding: string | undefined;
}

const objects = new Map<string, Buffer>();
const seen: Seen[] = [];
let server: http.Server;
let endpoint = "";

function xmlEscape(text: string): string {
  return text.replace(/[<>&'"]/g, (c) => `&#${c.charCodeAt(0)};`);
}

before(async () => {
  server = http.createServer((request, response) => {
    void (async () => {
      try {
        const auth = await verifyRequest(
          {
            method: request.method ?? "GET",
            rawUrl: request.url ?? "/",
            headers: request.headers,
            rawHeaders: request.rawHeaders,
            nowMs: Date.now(),
          },
          lookup,
        );
        const decoder = createPayloadDecoder(auth, request.headers);
        const chunks: Buffer[] = [];
        for await (const chunk of request.pipe(decoder)) chunks.push(chunk as Buffer);
        seen.push({ payload: auth.payload, contentEncoding: request.headers["content-encoding"] });
        const url = new URL(request.url ?? "/", "http://x");
        const key = decodeURIComponent(url.pathname);
        if (request.method === "PUT") {
          objects.set(key, Buffer.concat(chunks));
          response.setHeader("ETag", '"0"');
          response.end();
        } else if (request.method === "GET" && url.searchParams.get("list-type") === "2") {
          const prefix = url.searchParams.get("prefix") ?? "";
          const keys = [...objects.keys()].filter((name) => name.startsWith("/bucket/" + prefix)).map((name) => name.slice(8));
          response.setHeader("Content-Type", "application/xml");
          response.end(
            `<?xml version="1.0" encoding="UTF-8"?><ListBucketResult><Name>bucket</Name><Prefix>${xmlEscape(prefix)}</Prefix>` +
              `<KeyCount>${keys.length}</KeyCount><IsTruncated>false</IsTruncated>` +
              keys.map((name) => `<Contents><Key>${xmlEscape(name)}</Key><Size>0</Size></Contents>`).join("") +
              `</ListBucketResult>`,
          );
        } else {
          const body = objects.get(key);
          response.statusCode = body === undefined ? 404 : 200;
          response.end(body ?? "");
        }
      } catch (error) {
        const reason = error instanceof AuthError ? error.reason : "InternalError";
        response.statusCode = reason === "InternalError" ? 500 : 403;
        response.setHeader("Content-Type", "application/xml");
        response.end(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>${reason}</Code><Message>${xmlEscape(String(error))}</Message></Error>`);
      }
    })();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

function client(secretAccessKey = SECRET_ACCESS_KEY): S3Client {
  return new S3Client({
    region: "us-east-1",
    endpoint,
    forcePathStyle: true,
    credentials: { accessKeyId: ACCESS_KEY_ID, secretAccessKey },
    maxAttempts: 1,
  });
}

test("the AWS SDK's PutObject/GetObject/ListObjectsV2 verify and round-trip odd keys", async () => {
  const s3 = client();
  try {
    for (const [index, key] of ODD_KEYS.entries()) {
      const body = Buffer.from(`body of ${key} ` + "x".repeat(index * 1000));
      await s3.send(new PutObjectCommand({ Bucket: "bucket", Key: key, Body: body }));
      assert.ok(objects.get("/bucket/" + key)?.equals(body), `stored bytes of ${key}`);
      const got = await s3.send(new GetObjectCommand({ Bucket: "bucket", Key: key }));
      assert.equal(await got.Body?.transformToString(), body.toString());
    }
    const listed = await s3.send(new ListObjectsV2Command({ Bucket: "bucket", Prefix: "plus+sign" }));
    assert.deepEqual(listed.Contents?.map((entry) => entry.Key), ["plus+sign+"]);
  } finally {
    s3.destroy();
  }
});

test("the AWS SDK's streaming PutObject (aws-chunked, CRC32 trailer) stores exactly the object", async () => {
  const s3 = client();
  try {
    const data = Buffer.from(Array.from({ length: 300_000 }, (_, index) => index % 256));
    const pieces = [data.subarray(0, 100_000), data.subarray(100_000, 100_001), data.subarray(100_001)];
    seen.length = 0;
    await s3.send(
      new PutObjectCommand({ Bucket: "bucket", Key: "streamed.bin", Body: Readable.from(pieces), ContentLength: data.length }),
    );
    assert.ok(objects.get("/bucket/streamed.bin")?.equals(data));
    const payload = seen.at(-1)?.payload;
    assert.equal(payload?.kind, "streaming-unsigned-trailer", JSON.stringify(seen.at(-1)));
    assert.equal(payload.kind === "streaming-unsigned-trailer" && payload.trailer, "CRC32");
  } finally {
    s3.destroy();
  }
});

test("presigned GET and PUT URLs from @aws-sdk/s3-request-presigner verify over real HTTP", async () => {
  const s3 = client();
  try {
    for (const key of ODD_KEYS) {
      const putUrl = await getSignedUrl(s3, new PutObjectCommand({ Bucket: "bucket", Key: key }), { expiresIn: 600 });
      const body = Buffer.from(`presigned ${key}`);
      assert.equal((await send("PUT", putUrl, body)).status, 200, `PUT ${key} via ${putUrl}`);
      assert.ok(objects.get("/bucket/" + key)?.equals(body));
      const getUrl = await getSignedUrl(s3, new GetObjectCommand({ Bucket: "bucket", Key: key }), { expiresIn: 600 });
      const got = await send("GET", getUrl);
      assert.equal(got.status, 200);
      assert.equal(got.body.toString(), body.toString());
      const tampered = await send("GET", getUrl.replace("X-Amz-Expires=600", "X-Amz-Expires=601"));
      assert.equal(tampered.status, 403);
      assert.match(tampered.body.toString(), /SignatureDoesNotMatch/);
    }
  } finally {
    s3.destroy();
  }
});

test("the AWS SDK with a wrong secret gets SignatureDoesNotMatch", async () => {
  const s3 = client("not-the-secret");
  try {
    await assert.rejects(s3.send(new GetObjectCommand({ Bucket: "bucket", Key: "plain.txt" })), (error: Error) => {
      return error.name === "SignatureDoesNotMatch";
    });
  } finally {
    s3.destroy();
  }
});

async function send(method: string, url: string, body?: Buffer): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const request = http.request(url, { method, headers: body ? { "content-length": body.length } : {} }, (response) => {
      const chunks: Buffer[] = [];
      response.on("data", (chunk: Buffer) => chunks.push(chunk));
      response.on("end", () => resolve({ status: response.statusCode ?? 0, body: Buffer.concat(chunks) }));
    });
    request.on("error", reject);
    request.end(body);
  });
}
