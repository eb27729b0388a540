/**
 * Proves the SigV4 verifier accepts AWS's own published S3 examples byte for byte (GET object
 * with Range, PUT object with a '$' in the key, GET ?lifecycle, GET ?max-keys&prefix, the
 * presigned GET) and that every refusal carries the reason AWS would answer: wrong secret,
 * unknown key, skewed clock, expired or over-long presigned URLs, unknown payload hash forms,
 * unsigned x-amz-* headers, SigV2. Also pins the canonical-URI policy: the raw path is decoded
 * and re-encoded, so clients that send '~', '*' or '$' raw still verify.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import type { IncomingHttpHeaders } from "node:http";
import { AuthError, type AuthErrorReason } from "./auth-error.js";
import { EMPTY_SHA256_HEX, sha256Hex } from "./canonical.js";
import { presignUrl, signRequest } from "./signer.js";
import { verifyRequest, type AuthRequest, type AuthResult } from "./sigv4.js";
import {
  AWS_EXAMPLE_ACCESS_KEY_ID,
  AWS_EXAMPLE_NOW_MS,
  AWS_EXAMPLE_SECRET_ACCESS_KEY,
  exampleLookup,
} from "./test-support.js";

const SCOPE = `${AWS_EXAMPLE_ACCESS_KEY_ID}/20130524/us-east-1/s3/aws4_request`;

function authorization(signedHeaders: string, signature: string): string {
  return `AWS4-HMAC-SHA256 Credential=${SCOPE},SignedHeaders=${signedHeaders},Signature=${signature}`;
}

function request(method: string, rawUrl: string, headers: IncomingHttpHeaders, nowMs = AWS_EXAMPLE_NOW_MS): AuthRequest {
  return { method, rawUrl, headers, nowMs };
}

async function rejects(promise: Promise<unknown>, reason: AuthErrorReason, message?: RegExp): Promise<AuthError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof AuthError, `expected AuthError, got ${String(error)}`);
    assert.equal(error.reason, reason, error.message);
    if (message !== undefined) assert.match(error.message, message);
    return error;
  }
  assert.fail(`expected ${reason}, but the request was accepted`);
}

function authenticated(result: AuthResult): Extract<AuthResult, { kind: "authenticated" }> {
  assert.equal(result.kind, "authenticated");
  return result as Extract<AuthResult, { kind: "authenticated" }>;
}

// ---- AWS's published examples (sig-v4-header-based-auth, sigv4-query-string-auth) ----

const GET_RANGE_HEADERS: IncomingHttpHeaders = {
  host: "examplebucket.s3.amazonaws.com",
  range: "bytes=0-9",
  "x-amz-content-sha256": EMPTY_SHA256_HEX,
  "x-amz-date": "20130524T000000Z",
  authorization: authorization(
    "host;range;x-amz-content-sha256;x-amz-date",
    "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
  ),
};

test("AWS example: GET object with Range verifies", async () => {
  const result = authenticated(await verifyRequest(request("GET", "/test.txt", GET_RANGE_HEADERS), exampleLookup));
  assert.equal(result.accessKeyId, AWS_EXAMPLE_ACCESS_KEY_ID);
  assert.equal(result.userId, `user-of-${AWS_EXAMPLE_ACCESS_KEY_ID}`);
  assert.deepEqual(result.payload, { kind: "signed", sha256Hex: EMPTY_SHA256_HEX });
  assert.equal(result.signing.seedSignature, "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
  assert.equal(result.signing.scope, "20130524/us-east-1/s3/aws4_request");
});

test("AWS example: PUT object with '$' in the key verifies (canonical URI /test%24file.text)", async () => {
  const headers: IncomingHttpHeaders = {
    host: "examplebucket.s3.amazonaws.com",
    date: "Fri, 24 May 2013 00:00:00 GMT",
    "x-amz-date": "20130524T000000Z",
    "x-amz-storage-class": "REDUCED_REDUNDANCY",
    "x-amz-content-sha256": sha256Hex("Welcome to Amazon S3."),
    authorization: authorization(
      "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class",
      "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd",
    ),
  };
  assert.equal(headers["x-amz-content-sha256"], "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
  // The JS SDK sends the '$' encoded, curl and boto3 send it raw: both are the same key.
  for (const rawUrl of ["/test%24file.text", "/test$file.text"]) {
    authenticated(await verifyRequest(request("PUT", rawUrl, headers), exampleLookup));
  }
});

test("AWS example: GET ?lifecycle (parameter without '=') verifies", async () => {
  const headers: IncomingHttpHeaders = {
    host: "examplebucket.s3.amazonaws.com",
    "x-amz-date": "20130524T000000Z",
    "x-amz-content-sha256": EMPTY_SHA256_HEX,
    authorization: authorization(
      "host;x-amz-content-sha256;x-amz-date",
      "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543",
    ),
  };
  authenticated(await verifyRequest(request("GET", "/?lifecycle", headers), exampleLookup));
});

test("AWS example: GET ?max-keys=2&prefix=J verifies in either parameter order", async () => {
  const headers: IncomingHttpHeaders = {
    host: "examplebucket.s3.amazonaws.com",
    "x-amz-date": "20130524T000000Z",
    "x-amz-content-sha256": EMPTY_SHA256_HEX,
    authorization: authorization(
      "host;x-amz-content-sha256;x-amz-date",
      "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7",
    ),
  };
  authenticated(await verifyRequest(request("GET", "/?max-keys=2&prefix=J", headers), exampleLookup));
  authenticated(await verifyRequest(request("GET", "/?prefix=J&max-keys=2", headers), exampleLookup));
});

const PRESIGNED_EXAMPLE =
  "/test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request" +
  "&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host" +
  "&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404";

test("AWS example: presigned GET verifies within its 86400 s and is UNSIGNED-PAYLOAD", async () => {
  const headers = { host: "examplebucket.s3.amazonaws.com" };
  const result = authenticated(
    await verifyRequest(request("GET", PRESIGNED_EXAMPLE, headers, AWS_EXAMPLE_NOW_MS + 86_399_000), exampleLookup),
  );
  assert.deepEqual(result.payload, { kind: "unsigned" });
});

test("the test signer reproduces AWS's examples exactly", () => {
  const signed = signRequest({
    method: "GET",
    url: "http://examplebucket.s3.amazonaws.com/test.txt",
    headers: { Range: "bytes=0-9" },
    payloadHash: EMPTY_SHA256_HEX,
    accessKeyId: AWS_EXAMPLE_ACCESS_KEY_ID,
    secretAccessKey: AWS_EXAMPLE_SECRET_ACCESS_KEY,
    region: "us-east-1",
    nowMs: AWS_EXAMPLE_NOW_MS,
  });
  assert.equal(signed.headers.authorization, GET_RANGE_HEADERS.authorization);
  const url = presignUrl({
    method: "GET",
    url: "https://examplebucket.s3.amazonaws.com/test.txt",
    accessKeyId: AWS_EXAMPLE_ACCESS_KEY_ID,
    secretAccessKey: AWS_EXAMPLE_SECRET_ACCESS_KEY,
    region: "us-east-1",
    nowMs: AWS_EXAMPLE_NOW_MS,
    expiresSeconds: 86400,
  });
  assert.equal(url, "https://examplebucket.s3.amazonaws.com" + PRESIGNED_EXAMPLE);
});

// ---- Refusals ----

test("a wrong secret is SignatureDoesNotMatch, with AWS's diagnostic details", async () => {
  const error = await rejects(
    verifyRequest(request("GET", "/test.txt", GET_RANGE_HEADERS), async () => ({ secretAccessKey: "wrong", userId: "u" })),
    "SignatureDoesNotMatch",
  );
  assert.match(error.details.CanonicalRequest ?? "", /^GET\n\/test\.txt\n\nhost:examplebucket/);
  assert.match(error.details.StringToSign ?? "", /^AWS4-HMAC-SHA256\n20130524T000000Z\n/);
});

test("a tampered signed header or path is SignatureDoesNotMatch", async () => {
  await rejects(
    verifyRequest(request("GET", "/test.txt", { ...GET_RANGE_HEADERS, range: "bytes=0-99" }), exampleLookup),
    "SignatureDoesNotMatch",
  );
  await rejects(verifyRequest(request("GET", "/test.txT", GET_RANGE_HEADERS), exampleLookup), "SignatureDoesNotMatch");
  await rejects(verifyRequest(request("PUT", "/test.txt", GET_RANGE_HEADERS), exampleLookup), "SignatureDoesNotMatch");
});

test("an unknown access key is InvalidAccessKeyId", async () => {
  await rejects(verifyRequest(request("GET", "/test.txt", GET_RANGE_HEADERS), async () => undefined), "InvalidAccessKeyId");
});

test("a request dated more than 15 minutes from our clock is RequestTimeTooSkewed, either way", async () => {
  const sixteenMinutesMs = 16 * 60_000;
  for (const nowMs of [AWS_EXAMPLE_NOW_MS + sixteenMinutesMs, AWS_EXAMPLE_NOW_MS - sixteenMinutesMs]) {
    await rejects(verifyRequest(request("GET", "/test.txt", GET_RANGE_HEADERS, nowMs), exampleLookup), "RequestTimeTooSkewed");
  }
  authenticated(await verifyRequest(request("GET", "/test.txt", GET_RANGE_HEADERS, AWS_EXAMPLE_NOW_MS + 14 * 60_000), exampleLookup));
});

test("an expired presigned URL is AccessDenied 'Request has expired'", async () => {
  const headers = { host: "examplebucket.s3.amazonaws.com" };
  await rejects(
    verifyRequest(request("GET", PRESIGNED_EXAMPLE, headers, AWS_EXAMPLE_NOW_MS + 86_401_000), exampleLookup),
    "AccessDenied",
    /^Request has expired$/,
  );
});

test("X-Amz-Expires above seven days, negative or missing is AuthorizationQueryParametersError", async () => {
  const sign = (expiresSeconds: number): string =>
    presignUrl({
      method: "GET",
      url: "http://localhost/bucket/key",
      accessKeyId: AWS_EXAMPLE_ACCESS_KEY_ID,
      secretAccessKey: AWS_EXAMPLE_SECRET_ACCESS_KEY,
      region: "us-east-1",
      nowMs: AWS_EXAMPLE_NOW_MS,
      expiresSeconds,
    }).slice("http://localhost".length);
  const headers = { host: "localhost" };
  authenticated(await verifyRequest(request("GET", sign(604_800), headers), exampleLookup));
  await rejects(verifyRequest(request("GET", sign(604_801), headers), exampleLookup), "AuthorizationQueryParametersError", /less than a week/);
  await rejects(verifyRequest(request("GET", sign(-1), headers), exampleLookup), "AuthorizationQueryParametersError", /non-negative/);
  const withoutExpires = sign(60).replace(/&X-Amz-Expires=60/, "");
  await rejects(verifyRequest(request("GET", withoutExpires, headers), exampleLookup), "AuthorizationQueryParametersError");
});

test("a presigned URL dated in the future is AccessDenied 'Request is not valid yet'", async () => {
  const url = presignUrl({
    method: "GET",
    url: "http://localhost/bucket/key",
    accessKeyId: AWS_EXAMPLE_ACCESS_KEY_ID,
    secretAccessKey: AWS_EXAMPLE_SECRET_ACCESS_KEY,
    region: "us-east-1",
    nowMs: AWS_EXAMPLE_NOW_MS + 3_600_000,
    expiresSeconds: 60,
  }).slice("http://localhost".length);
  await rejects(verifyRequest(request("GET", url, { host: "localhost" }), exampleLookup), "AccessDenied", /not valid yet/);
});

function signedPut(headers: Record<string, string>, payloadHash: string): IncomingHttpHeaders {
  return signRequest({
    method: "PUT",
    url: "http://localhost/bucket/key",
    headers,
    payloadHash,
    accessKeyId: AWS_EXAMPLE_ACCESS_KEY_ID,
    secretAccessKey: AWS_EXAMPLE_SECRET_ACCESS_KEY,
    region: "eu-central-7", // any region string is accepted and signed with
    nowMs: AWS_EXAMPLE_NOW_MS,
  }).headers;
}

test("an unknown x-amz-content-sha256 value is InvalidArgument naming the header", async () => {
  for (const value of ["GIBBERISH", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILERX", "abc", sha256Hex("x").slice(1)]) {
    const error = await rejects(verifyRequest(request("PUT", "/bucket/key", signedPut({}, value)), exampleLookup), "InvalidArgument");
    assert.equal(error.details.ArgumentName, "x-amz-content-sha256");
    assert.equal(error.details.ArgumentValue, value);
  }
});

test("every payload form AWS defines parses to its mode", async () => {
  const verify = async (headers: Record<string, string>, payloadHash: string): Promise<AuthResult["payload"]> =>
    authenticated(await verifyRequest(request("PUT", "/bucket/key", signedPut(headers, payloadHash)), exampleLookup)).payload;
  const chunked = { "content-encoding": "aws-chunked", "x-amz-decoded-content-length": "5" };
  assert.deepEqual(await verify({}, "UNSIGNED-PAYLOAD"), { kind: "unsigned" });
  assert.deepEqual(await verify({}, sha256Hex("hello")), { kind: "signed", sha256Hex: sha256Hex("hello") });
  assert.deepEqual(await verify(chunked, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"), {
    kind: "streaming-signed",
    trailer: undefined,
    decodedContentLengthBytes: 5,
  });
  assert.deepEqual(
    await verify({ ...chunked, "x-amz-trailer": "x-amz-checksum-crc64nvme" }, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"),
    { kind: "streaming-signed", trailer: "CRC64NVME", decodedContentLengthBytes: 5 },
  );
  assert.deepEqual(await verify({ ...chunked, "x-amz-trailer": "x-amz-checksum-crc32" }, "STREAMING-UNSIGNED-PAYLOAD-TRAILER"), {
    kind: "streaming-unsigned-trailer",
    trailer: "CRC32",
    decodedContentLengthBytes: 5,
  });
  // UNSIGNED-PAYLOAD with an aws-chunked body is still decoded, never stored framed.
  assert.deepEqual(await verify(chunked, "UNSIGNED-PAYLOAD"), {
    kind: "streaming-unsigned-trailer",
    trailer: undefined,
    decodedContentLengthBytes: 5,
  });
});

test("streaming forms refuse a missing decoded length, an unknown trailer and a doubled checksum", async () => {
  const verify = (headers: Record<string, string>, payloadHash: string): Promise<AuthResult> =>
    verifyRequest(request("PUT", "/bucket/key", signedPut(headers, payloadHash)), exampleLookup);
  await rejects(verify({ "content-encoding": "aws-chunked" }, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"), "MissingContentLength");
  await rejects(
    verify({ "x-amz-decoded-content-length": "abc" }, "STREAMING-UNSIGNED-PAYLOAD-TRAILER"),
    "MissingContentLength",
  );
  const length = { "x-amz-decoded-content-length": "5" };
  await rejects(
    verify({ ...length, "x-amz-trailer": "x-amz-checksum-sha10" }, "STREAMING-UNSIGNED-PAYLOAD-TRAILER"),
    "InvalidRequest",
    /x-amz-trailer header is not supported/,
  );
  await rejects(
    verify(
      { ...length, "x-amz-trailer": "x-amz-checksum-crc32", "x-amz-checksum-crc32": "AAAAAA==" },
      "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
    ),
    "InvalidRequest",
    /single x-amz-checksum/,
  );
  await rejects(verify(length, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"), "MalformedTrailerError");
  await rejects(verify(length, "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD"), "InvalidRequest");
});

test("header auth without x-amz-content-sha256 is InvalidRequest", async () => {
  const headers: IncomingHttpHeaders = { ...GET_RANGE_HEADERS };
  delete headers["x-amz-content-sha256"];
  await rejects(verifyRequest(request("GET", "/test.txt", headers), exampleLookup), "InvalidRequest", /x-amz-content-sha256/);
});

test("an x-amz-* header present but not signed is AccessDenied, naming it", async () => {
  const headers = { ...signedPut({}, "UNSIGNED-PAYLOAD"), "x-amz-copy-source": "/other/secret" };
  const error = await rejects(verifyRequest(request("PUT", "/bucket/key", headers), exampleLookup), "AccessDenied");
  assert.equal(error.details.HeadersNotSigned, "x-amz-copy-source");
});

test("scope errors are AuthorizationHeaderMalformed: wrong service, date mismatch, bad terminator", async () => {
  const base = GET_RANGE_HEADERS.authorization as string;
  for (const [from, to] of [
    ["/s3/", "/ec2/"],
    ["/20130524/", "/20130525/"],
    ["aws4_request", "aws5_request"],
  ] as const) {
    const headers = { ...GET_RANGE_HEADERS, authorization: base.replace(from, to) };
    await rejects(verifyRequest(request("GET", "/test.txt", headers), exampleLookup), "AuthorizationHeaderMalformed");
  }
  const noSignature = { ...GET_RANGE_HEADERS, authorization: base.replace(/,Signature=.*/, "") };
  await rejects(verifyRequest(request("GET", "/test.txt", noSignature), exampleLookup), "AuthorizationHeaderMalformed");
});

test("SigV2, SigV4a and two mechanisms at once are refused; no credentials at all is anonymous", async () => {
  const host = { host: "localhost" };
  await rejects(verifyRequest(request("GET", "/b/k", { ...host, authorization: "AWS AKID:c2lnbmF0dXJl" }), exampleLookup), "InvalidRequest");
  await rejects(
    verifyRequest(request("GET", "/b/k", { ...host, authorization: "AWS4-ECDSA-P256-SHA256 Credential=x" }), exampleLookup),
    "InvalidRequest",
  );
  await rejects(verifyRequest(request("GET", "/b/k?AWSAccessKeyId=A&Signature=s&Expires=1", host), exampleLookup), "InvalidRequest");
  await rejects(
    verifyRequest(request("GET", PRESIGNED_EXAMPLE, { ...GET_RANGE_HEADERS }), exampleLookup),
    "InvalidArgument",
    /Only one auth mechanism/,
  );
  assert.deepEqual(await verifyRequest(request("GET", "/b/k?prefix=x", host), exampleLookup), {
    kind: "anonymous",
    payload: { kind: "unsigned" },
  });
  // An anonymous aws-chunked upload is decoded too, and an anonymous chunk-signed one is refused.
  const anonymousChunked = { ...host, "x-amz-content-sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER", "x-amz-decoded-content-length": "3" };
  assert.equal((await verifyRequest(request("PUT", "/b/k", anonymousChunked), exampleLookup)).payload.kind, "streaming-unsigned-trailer");
  await rejects(
    verifyRequest(request("PUT", "/b/k", { ...anonymousChunked, "x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD" }), exampleLookup),
    "InvalidRequest",
  );
});

test("canonical URI: raw '~ * ( ) ! @ : +' and %-encoded forms of the same key all verify", async () => {
  const key = "/bucket/dir//a b~c*(d)!e@f:g+h=i,j;k'l&m$n%o.txt";
  const signedEncoded = "/bucket/dir//a%20b~c%2A%28d%29%21e%40f%3Ag%2Bh%3Di%2Cj%3Bk%27l%26m%24n%25o.txt";
  const headers = signRequest({
    method: "GET",
    url: `http://localhost${signedEncoded}`,
    payloadHash: EMPTY_SHA256_HEX,
    accessKeyId: AWS_EXAMPLE_ACCESS_KEY_ID,
    secretAccessKey: AWS_EXAMPLE_SECRET_ACCESS_KEY,
    region: "us-east-1",
    nowMs: AWS_EXAMPLE_NOW_MS,
  }).headers;
  const wireForms = [
    signedEncoded,
    "/bucket/dir//a%20b%7Ec*(d)!e@f:g%2Bh=i,j;k'l&m$n%25o.txt", // boto3-like: most reserved characters raw
    key.replace("%", "%25").replace(" ", "%20").replace("+", "%2B"),
  ];
  for (const rawUrl of wireForms) authenticated(await verifyRequest(request("GET", rawUrl, headers), exampleLookup));
  // A raw '+' in a path is a plus, not a space: a different key, a different signature.
  await rejects(verifyRequest(request("GET", signedEncoded.replace("%2B", "%20"), headers), exampleLookup), "SignatureDoesNotMatch");
});

test("canonical query: '+' is a space, encodings and order are normalized, an added parameter breaks it", async () => {
  const signedHeaders = signRequest({
    method: "GET",
    url: "http://localhost/bucket?list-type=2&prefix=a%20b%2Bc%2F%C3%A9&delimiter=%2F&empty=&flag",
    payloadHash: EMPTY_SHA256_HEX,
    accessKeyId: AWS_EXAMPLE_ACCESS_KEY_ID,
    secretAccessKey: AWS_EXAMPLE_SECRET_ACCESS_KEY,
    region: "us-east-1",
    nowMs: AWS_EXAMPLE_NOW_MS,
  }).headers;
  for (const rawUrl of [
    "/bucket?list-type=2&prefix=a%20b%2Bc%2F%C3%A9&delimiter=%2F&empty=&flag",
    "/bucket?flag&empty&delimiter=/&prefix=a+b%2bc/%c3%a9&list-type=2", // Go-style '+', lower-case hex, raw '/'
  ]) {
    authenticated(await verifyRequest(request("GET", rawUrl, signedHeaders), exampleLookup));
  }
  await rejects(
    verifyRequest(request("GET", "/bucket?list-type=2&prefix=a%20b%2Bc%2F%C3%A9&delimiter=%2F&empty=&flag&extra", signedHeaders), exampleLookup),
    "SignatureDoesNotMatch",
  );
});

test("repeated headers canonicalize as 'a,b' when rawHeaders are given", async () => {
  const signed = signRequest({
    method: "GET",
    url: "http://localhost/bucket/key",
    headers: { "x-amz-meta-tags": "one,two" },
    payloadHash: EMPTY_SHA256_HEX,
    accessKeyId: AWS_EXAMPLE_ACCESS_KEY_ID,
    secretAccessKey: AWS_EXAMPLE_SECRET_ACCESS_KEY,
    region: "us-east-1",
    nowMs: AWS_EXAMPLE_NOW_MS,
  }).headers;
  const rawHeaders = Object.entries(signed).flatMap(([name, value]) =>
    name === "x-amz-meta-tags" ? [name, " one ", name, "two"] : [name, value],
  );
  const headers = { ...signed, "x-amz-meta-tags": " one , two" }; // what node would join
  authenticated(await verifyRequest({ method: "GET", rawUrl: "/bucket/key", headers, rawHeaders, nowMs: AWS_EXAMPLE_NOW_MS }, exampleLookup));
});
