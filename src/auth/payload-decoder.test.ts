/**
 * Proves the body decoder outputs exactly the object bytes and checks every promise made about
 * them: AWS's published chunk-signed upload (seed 4f232c43..., chunks ad80c730..., 0055627c...,
 * b6c6ea8a...) and its signed-trailer variant (seed 106e2a8a..., trailer d81f82fc...) decode
 * after verifying the documented request; any body split into 1-byte pieces decodes identically;
 * tampered data, a bad trailer checksum, a truncated body, a wrong decoded length, bad framing,
 * an over-long chunk header and a wrong signed SHA-256 are each refused with AWS's reason.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import type { IncomingHttpHeaders } from "node:http";
import { AuthError, type AuthErrorReason } from "./auth-error.js";
import { sha256Hex } from "./canonical.js";
import { createPayloadDecoder } from "./payload-decoder.js";
import { storedContentEncoding } from "./payload-mode.js";
import { encodeAwsChunked, signRequest } from "./signer.js";
import { verifyRequest, type AuthResult } from "./sigv4.js";
import {
  AWS_EXAMPLE_ACCESS_KEY_ID,
  AWS_EXAMPLE_NOW_MS,
  AWS_EXAMPLE_SECRET_ACCESS_KEY,
  decodeAll,
  exampleLookup,
  piecesOf,
  type DecodeOutcome,
} from "./test-support.js";

const EXAMPLE_DATA = Buffer.alloc(66_560, "a");

function exampleBody(chunkSignatures: [string, string, string], trailer = ""): Buffer {
  return Buffer.concat([
    Buffer.from(`10000;chunk-signature=${chunkSignatures[0]}\r\n`),
    EXAMPLE_DATA.subarray(0, 65_536),
    Buffer.from(`\r\n400;chunk-signature=${chunkSignatures[1]}\r\n`),
    EXAMPLE_DATA.subarray(65_536),
    Buffer.from(`\r\n0;chunk-signature=${chunkSignatures[2]}\r\n`),
    Buffer.from(trailer === "" ? "\r\n" : trailer),
  ]);
}

/** The request of AWS's "PUT Object in chunks" example, which its documentation signs. */
async function exampleStreamingAuth(withTrailer: boolean): Promise<AuthResult> {
  const headers: IncomingHttpHeaders = {
    host: "s3.amazonaws.com",
    "x-amz-date": "20130524T000000Z",
    "x-amz-storage-class": "REDUCED_REDUNDANCY",
    "content-encoding": "aws-chunked",
    "x-amz-decoded-content-length": "66560",
    ...(withTrailer
      ? {
          "x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
          "x-amz-trailer": "x-amz-checksum-crc32c",
          authorization:
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request," +
            "SignedHeaders=content-encoding;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;" +
            "x-amz-storage-class;x-amz-trailer,Signature=106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e",
        }
      : {
          "x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
          "content-length": "66824",
          authorization:
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request," +
            "SignedHeaders=content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;" +
            "x-amz-decoded-content-length;x-amz-storage-class," +
            "Signature=4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9",
        }),
  };
  return verifyRequest(
    { method: "PUT", rawUrl: "/examplebucket/chunkObject.txt", headers, nowMs: AWS_EXAMPLE_NOW_MS },
    exampleLookup,
  );
}

const EXAMPLE_CHUNK_SIGNATURES: [string, string, string] = [
  "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
  "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
  "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9",
];
const EXAMPLE_TRAILER_CHUNK_SIGNATURES: [string, string, string] = [
  "b474d8862b1487a5145d686f57f013e54db672cee1c953b3010fb58501ef5aa2",
  "1c1344b170168f8e65b41376b44b20fe354e373826ccbbe2c1d40a8cae51e5c7",
  "2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992",
];
const EXAMPLE_TRAILER =
  "x-amz-checksum-crc32c:sOO8/Q==\r\n" +
  "x-amz-trailer-signature:d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435\r\n\r\n";

function assertRefused(outcome: DecodeOutcome, reason: AuthErrorReason): void {
  assert.ok(outcome.error instanceof AuthError, `expected ${reason}, got ${String(outcome.error)}`);
  assert.equal(outcome.error.reason, reason, outcome.error.message);
}

test("AWS example: chunk-signed PUT decodes to its 66560 bytes, whole and in 1-byte pieces", async () => {
  const auth = await exampleStreamingAuth(false);
  assert.equal(auth.kind === "authenticated" && auth.signing.seedSignature, "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9");
  const body = exampleBody(EXAMPLE_CHUNK_SIGNATURES);
  for (const pieceSizeBytes of [body.length, 1, 7, 4096]) {
    const outcome = await decodeAll(createPayloadDecoder(auth), piecesOf(body, pieceSizeBytes));
    assert.equal(outcome.error, undefined);
    assert.ok(outcome.data.equals(EXAMPLE_DATA), `piece size ${pieceSizeBytes}`);
  }
});

test("AWS example: chunk-signed PUT with a signed crc32c trailer decodes and exposes the trailer", async () => {
  const auth = await exampleStreamingAuth(true);
  assert.equal(auth.kind === "authenticated" && auth.signing.seedSignature, "106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e");
  const body = exampleBody(EXAMPLE_TRAILER_CHUNK_SIGNATURES, EXAMPLE_TRAILER);
  for (const pieceSizeBytes of [body.length, 1]) {
    const decoder = createPayloadDecoder(auth);
    const outcome = await decodeAll(decoder, piecesOf(body, pieceSizeBytes));
    assert.equal(outcome.error, undefined);
    assert.ok(outcome.data.equals(EXAMPLE_DATA));
    assert.deepEqual(decoder.trailerChecksum, { algorithm: "CRC32C", valueBase64: "sOO8/Q==" });
  }
  // The form with an empty line between the final chunk and the trailer is accepted too.
  const withBlank = exampleBody(EXAMPLE_TRAILER_CHUNK_SIGNATURES, "\r\n" + EXAMPLE_TRAILER);
  assert.equal((await decodeAll(createPayloadDecoder(auth), [withBlank])).error, undefined);
});

test("tampered chunk data, a swapped chunk signature and a tampered trailer are SignatureDoesNotMatch", async () => {
  const auth = await exampleStreamingAuth(false);
  const body = exampleBody(EXAMPLE_CHUNK_SIGNATURES);
  const tampered = Buffer.from(body);
  tampered[66_000] = "b".charCodeAt(0);
  const tamperedOutcome = await decodeAll(createPayloadDecoder(auth), piecesOf(tampered, 1000));
  assertRefused(tamperedOutcome, "SignatureDoesNotMatch");
  // Nothing of the bad chunk got out: only the verified first chunk did.
  assert.equal(tamperedOutcome.data.length, 65_536);
  const swapped = exampleBody([EXAMPLE_CHUNK_SIGNATURES[1], EXAMPLE_CHUNK_SIGNATURES[0], EXAMPLE_CHUNK_SIGNATURES[2]]);
  assertRefused(await decodeAll(createPayloadDecoder(auth), [swapped]), "SignatureDoesNotMatch");

  const trailerAuth = await exampleStreamingAuth(true);
  const otherTrailer = EXAMPLE_TRAILER.replace("sOO8/Q==", "sOO8/A==");
  const outcome = await decodeAll(createPayloadDecoder(trailerAuth), [exampleBody(EXAMPLE_TRAILER_CHUNK_SIGNATURES, otherTrailer)]);
  assertRefused(outcome, "SignatureDoesNotMatch");
});

function signedStreaming(options: { trailer?: "CRC32" | "CRC32C" | "CRC64NVME" | "SHA1" | "SHA256"; data: Buffer }) {
  const headers: Record<string, string> = {
    "content-encoding": "aws-chunked",
    "x-amz-decoded-content-length": String(options.data.length),
  };
  if (options.trailer !== undefined) headers["x-amz-trailer"] = `x-amz-checksum-${options.trailer.toLowerCase()}`;
  return signRequest({
    method: "PUT",
    url: "http://localhost:9000/bucket/object",
    headers,
    payloadHash: options.trailer ? "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER" : "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
    accessKeyId: AWS_EXAMPLE_ACCESS_KEY_ID,
    secretAccessKey: AWS_EXAMPLE_SECRET_ACCESS_KEY,
    region: "us-east-1",
    nowMs: AWS_EXAMPLE_NOW_MS,
  });
}

async function verifySigned(headers: IncomingHttpHeaders): Promise<AuthResult> {
  return verifyRequest({ method: "PUT", rawUrl: "/bucket/object", headers, nowMs: AWS_EXAMPLE_NOW_MS }, exampleLookup);
}

test("every trailer algorithm round-trips signed and unsigned; a wrong checksum is BadDigest", async () => {
  const data = Buffer.from(Array.from({ length: 20_000 }, (_, index) => (index * 31) % 251));
  for (const trailer of ["CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256"] as const) {
    const signed = signedStreaming({ trailer, data });
    const auth = await verifySigned(signed.headers);
    const body = encodeAwsChunked({ data, chunkSizeBytes: 8192, signing: signed.signing, trailer });
    const decoder = createPayloadDecoder(auth);
    const outcome = await decodeAll(decoder, piecesOf(body, 1));
    assert.equal(outcome.error, undefined, `${trailer}: ${String(outcome.error)}`);
    assert.ok(outcome.data.equals(data));
    assert.equal(decoder.trailerChecksum?.algorithm, trailer);

    const unsignedAuth: AuthResult = {
      kind: "anonymous",
      payload: { kind: "streaming-unsigned-trailer", trailer, decodedContentLengthBytes: data.length },
    };
    const unsignedBody = encodeAwsChunked({ data, chunkSizeBytes: 3000, trailer });
    const unsignedOutcome = await decodeAll(createPayloadDecoder(unsignedAuth), piecesOf(unsignedBody, 1));
    assert.equal(unsignedOutcome.error, undefined);
    assert.ok(unsignedOutcome.data.equals(data));

    // The same framing around different bytes: the checksum no longer matches the data.
    const otherData = Buffer.from(data);
    otherData[0] = otherData[0]! ^ 1;
    const mismatched = Buffer.concat([
      encodeAwsChunked({ data: otherData, chunkSizeBytes: 3000 }).subarray(0, -2),
      Buffer.from(unsignedBody.toString("latin1").match(/x-amz-checksum-[^\r]*\r\n\r\n$/)![0], "latin1"),
    ]);
    const badDigest = await decodeAll(createPayloadDecoder(unsignedAuth), [mismatched]);
    assertRefused(badDigest, "BadDigest");
    assert.match((badDigest.error as AuthError).message, new RegExp(`^The ${trailer} you specified did not match`));
  }
});

const UNSIGNED_CRC32: AuthResult = {
  kind: "anonymous",
  payload: { kind: "streaming-unsigned-trailer", trailer: "CRC32", decodedContentLengthBytes: 11 },
};
const HELLO = Buffer.from("hello world");
const HELLO_BODY = encodeAwsChunked({ data: HELLO, chunkSizeBytes: 5, trailer: "CRC32" });

test("the JS SDK's unsigned-trailer framing decodes; its bytes are exactly what the SDKs send", async () => {
  assert.equal(
    HELLO_BODY.toString("latin1"),
    "5\r\nhello\r\n5\r\n worl\r\n1\r\nd\r\n0\r\nx-amz-checksum-crc32:DUoRhQ==\r\n\r\n",
  );
  const decoder = createPayloadDecoder(UNSIGNED_CRC32);
  const outcome = await decodeAll(decoder, piecesOf(HELLO_BODY, 1));
  assert.equal(outcome.error, undefined);
  assert.equal(outcome.data.toString(), "hello world");
  assert.deepEqual(decoder.trailerChecksum, { algorithm: "CRC32", valueBase64: "DUoRhQ==" });
  // STREAMING-UNSIGNED-PAYLOAD-TRAILER without any x-amz-trailer: AWS accepts "0\r\n\r\n".
  const bare: AuthResult = { kind: "anonymous", payload: { kind: "streaming-unsigned-trailer", trailer: undefined, decodedContentLengthBytes: 11 } };
  const bareOutcome = await decodeAll(createPayloadDecoder(bare), [encodeAwsChunked({ data: HELLO, chunkSizeBytes: 64 })]);
  assert.equal(bareOutcome.error, undefined);
  assert.equal(bareOutcome.data.toString(), "hello world");
});

test("every truncation of a framed body is refused, never emitted as a complete object", async () => {
  const signed = signedStreaming({ trailer: "CRC32", data: HELLO });
  const auth = await verifySigned(signed.headers);
  const signedBody = encodeAwsChunked({ data: HELLO, chunkSizeBytes: 64, signing: signed.signing, trailer: "CRC32" });
  for (const [authResult, body] of [
    [UNSIGNED_CRC32, HELLO_BODY],
    [auth, signedBody],
  ] as const) {
    for (let length = 0; length < body.length; length++) {
      const outcome = await decodeAll(createPayloadDecoder(authResult), length === 0 ? [] : [body.subarray(0, length)]);
      assert.ok(outcome.error instanceof AuthError, `truncated at ${length} of ${body.length} was accepted`);
      assert.ok(["IncompleteBody", "MalformedTrailerError"].includes(outcome.error.reason), outcome.error.reason);
    }
  }
});

test("malformed framing is refused and never passed through as data", async () => {
  const cases: Array<[string, AuthErrorReason]> = [
    ["5\r\nhello\r\n6\r\n world\r\n0\r\nx-amz-checksum-crc32:DUoRhQ==\r\n\r\n", "IncompleteBody"], // well formed: the harness check below
    ["5\nhello\r\n6\r\n world\r\n0\r\n\r\n", "IncompleteBody"], // bare LF
    ["5\r\nhelloXX6\r\n world\r\n0\r\n\r\n", "IncompleteBody"], // data not followed by CRLF
    ["zz\r\nhello\r\n", "IncompleteBody"], // size not hex
    ["5;chunk-signature=00\r\nhello\r\n", "IncompleteBody"], // extension in the unsigned form
    ["b\r\nhello world\r\n0\r\nx-amz-checksum-crc32c:yZRlqg==\r\n\r\n", "MalformedTrailerError"], // undeclared trailer
    ["b\r\nhello world\r\n0\r\nx-amz-checksum-crc32 DUoRhQ==\r\n\r\n", "MalformedTrailerError"], // no colon
    ["b\r\nhello world\r\n0\r\nx-amz-checksum-crc32:DUoRhQ==\r\nx-amz-checksum-crc32:DUoRhQ==\r\n\r\n", "MalformedTrailerError"],
    ["b\r\nhello world\r\n0\r\n\r\n", "MalformedTrailerError"], // declared trailer missing
    ["b\r\nhello world\r\n0\r\nx-amz-checksum-crc32:DUoRhQ==\r\n\r\nextra", "IncompleteBody"], // bytes after the end
    ["c\r\nhello world!\r\n0\r\n\r\n", "IncompleteBody"], // more than x-amz-decoded-content-length
    ["a\r\nhello worl\r\n0\r\nx-amz-checksum-crc32:DUoRhQ==\r\n\r\n", "IncompleteBody"], // less than declared
    ["b\r\nhello world\r\n0\r\nx-amz-checksum-crc32:DUoRhQ=\r\n\r\n", "InvalidRequest"], // not base64 of 4 bytes
  ];
  // The first case is a well-formed 11-byte body; check the harness accepts it before refusals.
  const good = await decodeAll(createPayloadDecoder(UNSIGNED_CRC32), [Buffer.from(cases[0]![0])]);
  assert.equal(good.error, undefined);
  for (const [body, reason] of cases.slice(1)) {
    const outcome = await decodeAll(createPayloadDecoder(UNSIGNED_CRC32), [Buffer.from(body)]);
    assertRefused(outcome, reason);
    assert.ok(!outcome.data.toString("latin1").includes("\r\n"), `framing leaked for ${JSON.stringify(body)}`);
  }
});

test("a chunk header longer than AWS_CHUNK_HEADER_SIZE_BYTES_MAX is refused without buffering it", async () => {
  const longHeader = Buffer.from("5;" + "x".repeat(10_000));
  assertRefused(await decodeAll(createPayloadDecoder(UNSIGNED_CRC32), piecesOf(longHeader, 100)), "IncompleteBody");
});

test("a signed chunk below 8 KiB followed by another data chunk is InvalidChunkSizeError", async () => {
  const data = Buffer.alloc(10_000, 1);
  const signed = signedStreaming({ data });
  const auth = await verifySigned(signed.headers);
  const body = encodeAwsChunked({ data, chunkSizeBytes: 4096, signing: signed.signing });
  assertRefused(await decodeAll(createPayloadDecoder(auth), [body]), "InvalidChunkSizeError");
  const good = encodeAwsChunked({ data, chunkSizeBytes: 8192, signing: signed.signing });
  assert.equal((await decodeAll(createPayloadDecoder(auth), [good])).error, undefined);
});

test("a signed single-part body whose SHA-256 differs is XAmzContentSHA256Mismatch", async () => {
  const auth: AuthResult = { kind: "anonymous", payload: { kind: "signed", sha256Hex: sha256Hex("hello") } };
  const ok = await decodeAll(createPayloadDecoder(auth), piecesOf(Buffer.from("hello"), 1));
  assert.equal(ok.error, undefined);
  assert.equal(ok.data.toString(), "hello");
  const bad = await decodeAll(createPayloadDecoder(auth), [Buffer.from("hellO")]);
  assertRefused(bad, "XAmzContentSHA256Mismatch");
  assert.equal((bad.error as AuthError).details.S3ComputedContentSHA256, sha256Hex("hellO"));
});

test("unsigned bodies pass through untouched", async () => {
  const outcome = await decodeAll(createPayloadDecoder({ kind: "anonymous", payload: { kind: "unsigned" } }), [
    Buffer.from("0\r\n\r\n"),
  ]);
  assert.equal(outcome.data.toString(), "0\r\n\r\n");
});

test("storedContentEncoding drops only the aws-chunked token", () => {
  assert.equal(storedContentEncoding(undefined), undefined);
  assert.equal(storedContentEncoding("aws-chunked"), undefined);
  assert.equal(storedContentEncoding("AWS-Chunked , "), undefined);
  assert.equal(storedContentEncoding("aws-chunked,gzip"), "gzip");
  assert.equal(storedContentEncoding("gzip, aws-chunked, br"), "gzip,br");
});
