/**
 * A small SigV4 signer for tests and the benchmark: header-signed requests, presigned URLs and
 * signed or unsigned aws-chunked bodies. It shares canonical.ts with the verifier, so on its own
 * it proves nothing about interoperability; the tests pin it to AWS's published vectors and
 * cross-check the verifier against @smithy/signature-v4 and the AWS SDK.
 */
import { type ChecksumAlgorithm, newChecksummer } from "../base/index.js";
import {
  canonicalHeaderValue,
  canonicalQueryString,
  canonicalRequest,
  canonicalUri,
  chunkStringToSign,
  credentialScope,
  deriveSigningKey,
  formatAmzDate,
  hmacHex,
  parseQuery,
  requestStringToSign,
  sha256Hex,
  SIGV4_ALGORITHM,
  SIGV4_SERVICE,
  trailerStringToSign,
  uriEncode,
  UNSIGNED_PAYLOAD,
} from "./canonical.js";
import { trailerHeaderName } from "./payload-mode.js";
import type { SigningContext } from "./sigv4.js";

export interface SignRequestInput {
  method: string;
  /** "http://host[:port]/path?query" or a request-target "/path?query" (then headers.host). */
  url: string;
  headers?: Record<string, string>;
  /** x-amz-content-sha256: a SHA-256 hex, "UNSIGNED-PAYLOAD" or a STREAMING-* value. */
  payloadHash: string;
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
  nowMs: number;
}

export interface SignedRequest {
  /** Every header to send, names lower-case, including host, x-amz-date and authorization. */
  headers: Record<string, string>;
  /** For encodeAwsChunked: the request signature seeds the chunk signatures. */
  signing: SigningContext;
}

interface Target {
  host: string | undefined;
  rawPath: string;
  rawQuery: string;
  prefix: string;
}

function splitUrl(url: string): Target {
  const absolute = /^([a-zA-Z][a-zA-Z0-9+.-]*:\/\/)([^/?#]*)/.exec(url);
  const rest = absolute === null ? url : url.slice(absolute[0].length);
  const question = rest.indexOf("?");
  return {
    host: absolute?.[2],
    prefix: absolute === null ? "" : absolute[0],
    rawPath: question === -1 ? rest : rest.slice(0, question),
    rawQuery: question === -1 ? "" : rest.slice(question + 1),
  };
}

function lowerCaseHeaders(headers: Record<string, string> | undefined, host: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers ?? {})) out[name.toLowerCase()] = value;
  if (out.host === undefined && host !== undefined) out.host = host;
  if (out.host === undefined) throw new Error("signRequest needs a host: an absolute url or a host header");
  return out;
}

function sign(
  input: Omit<SignRequestInput, "payloadHash">,
  target: Target,
  headers: Record<string, string>,
  extraQuery: string,
  payloadHash: string,
  presigned: boolean,
): { signature: string; signingKey: Buffer; amzDate: string; scope: string; signedHeaders: string } {
  const amzDate = formatAmzDate(input.nowMs);
  const date = amzDate.slice(0, 8);
  const scope = credentialScope(date, input.region, SIGV4_SERVICE);
  const names = Object.keys(headers).sort();
  const rawQuery = [target.rawQuery, extraQuery].filter((part) => part !== "").join("&");
  const query = parseQuery(rawQuery);
  const uri = canonicalUri(target.rawPath);
  if (query === undefined || uri === undefined) throw new Error("signRequest: malformed percent-encoding in url");
  const canonical = canonicalRequest({
    method: input.method.toUpperCase(),
    canonicalUri: uri,
    canonicalQuery: canonicalQueryString(query, presigned ? "X-Amz-Signature" : undefined),
    headers: names.map((name) => [name, canonicalHeaderValue([headers[name]!])] as const),
    payloadHash,
  });
  const signingKey = deriveSigningKey(input.secretAccessKey, date, input.region, SIGV4_SERVICE);
  const signature = hmacHex(signingKey, requestStringToSign(amzDate, scope, canonical));
  return { signature, signingKey, amzDate, scope, signedHeaders: names.join(";") };
}

/** Signs a request with the Authorization header. All given headers are signed. */
export function signRequest(input: SignRequestInput): SignedRequest {
  const target = splitUrl(input.url);
  const headers = lowerCaseHeaders(input.headers, target.host);
  headers["x-amz-date"] = formatAmzDate(input.nowMs);
  headers["x-amz-content-sha256"] = input.payloadHash;
  const signed = sign(input, target, headers, "", input.payloadHash, false);
  headers.authorization =
    `${SIGV4_ALGORITHM} Credential=${input.accessKeyId}/${signed.scope},` +
    `SignedHeaders=${signed.signedHeaders},Signature=${signed.signature}`;
  return {
    headers,
    signing: { signingKey: signed.signingKey, seedSignature: signed.signature, amzDate: signed.amzDate, scope: signed.scope },
  };
}

export interface PresignUrlInput extends Omit<SignRequestInput, "payloadHash"> {
  expiresSeconds: number;
  /** Signed into the URL as X-Amz-Content-Sha256 when given; presigners normally leave it out. */
  payloadHash?: string;
}

/** A presigned URL (same form as `input.url`); given headers are signed and must be sent. */
export function presignUrl(input: PresignUrlInput): string {
  const target = splitUrl(input.url);
  const headers = lowerCaseHeaders(input.headers, target.host);
  const amzDate = formatAmzDate(input.nowMs);
  const scope = credentialScope(amzDate.slice(0, 8), input.region, SIGV4_SERVICE);
  const parameters: Array<[string, string]> = [
    ["X-Amz-Algorithm", SIGV4_ALGORITHM],
    ["X-Amz-Credential", `${input.accessKeyId}/${scope}`],
    ["X-Amz-Date", amzDate],
    ["X-Amz-Expires", String(input.expiresSeconds)],
    ["X-Amz-SignedHeaders", Object.keys(headers).sort().join(";")],
  ];
  if (input.payloadHash !== undefined) parameters.push(["X-Amz-Content-Sha256", input.payloadHash]);
  const extraQuery = parameters.map(([name, value]) => `${name}=${uriEncode(value, false)}`).join("&");
  const signed = sign(input, target, headers, extraQuery, input.payloadHash ?? UNSIGNED_PAYLOAD, true);
  const query = [target.rawQuery, extraQuery, `X-Amz-Signature=${signed.signature}`].filter((part) => part !== "");
  return `${target.prefix}${target.rawPath}?${query.join("&")}`;
}

export interface EncodeAwsChunkedInput {
  data: Uint8Array;
  chunkSizeBytes: number;
  /** Present: chunk-signed (STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER]); absent: unsigned. */
  signing?: SigningContext;
  /** A trailing checksum of the data; with `signing`, a signed trailer. */
  trailer?: ChecksumAlgorithm;
}

/** An aws-chunked body, exactly as the AWS SDKs frame it (no empty line before the trailer). */
export function encodeAwsChunked(input: EncodeAwsChunkedInput): Buffer {
  const parts: Buffer[] = [];
  let previousSignature = input.signing?.seedSignature ?? "";
  const chunkHeader = (sizeBytes: number, data: Uint8Array): string => {
    if (input.signing === undefined) return sizeBytes.toString(16);
    const { amzDate, scope, signingKey } = input.signing;
    previousSignature = hmacHex(signingKey, chunkStringToSign(amzDate, scope, previousSignature, sha256Hex(data)));
    return `${sizeBytes.toString(16)};chunk-signature=${previousSignature}`;
  };
  for (let offset = 0; offset < input.data.length; offset += input.chunkSizeBytes) {
    const chunk = input.data.subarray(offset, Math.min(offset + input.chunkSizeBytes, input.data.length));
    parts.push(Buffer.from(chunkHeader(chunk.length, chunk) + "\r\n"), Buffer.from(chunk), Buffer.from("\r\n"));
  }
  parts.push(Buffer.from(chunkHeader(0, new Uint8Array(0)) + "\r\n"));
  if (input.trailer === undefined) {
    parts.push(Buffer.from("\r\n")); // the empty final chunk's data CRLF
    return Buffer.concat(parts);
  }
  const checksummer = newChecksummer(input.trailer);
  checksummer.update(input.data);
  const trailerLine = `${trailerHeaderName(input.trailer)}:${checksummer.digest().toString("base64")}`;
  parts.push(Buffer.from(trailerLine + "\r\n"));
  if (input.signing !== undefined) {
    const { amzDate, scope, signingKey } = input.signing;
    const stringToSign = trailerStringToSign(amzDate, scope, previousSignature, sha256Hex(trailerLine + "\n"));
    parts.push(Buffer.from(`x-amz-trailer-signature:${hmacHex(signingKey, stringToSign)}\r\n`));
  }
  parts.push(Buffer.from("\r\n"));
  return Buffer.concat(parts);
}
