/**
 * How a request body is framed and protected, parsed once from x-amz-content-sha256,
 * Content-Encoding, x-amz-trailer and x-amz-decoded-content-length. Every value AWS defines is
 * either understood here or refused: since 2025 SDKs send aws-chunked bodies with a CRC trailer
 * by default, and a store that lets an unknown form through ends up saving the framing bytes
 * inside users' objects.
 */
import type { IncomingHttpHeaders } from "node:http";
import { parseChecksumAlgorithm, type ChecksumAlgorithm } from "../base/index.js";
import { AUTH_MESSAGES, AuthError } from "./auth-error.js";
import { UNSIGNED_PAYLOAD } from "./canonical.js";

export const STREAMING_SIGNED_PAYLOAD = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD";
export const STREAMING_SIGNED_PAYLOAD_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER";
export const STREAMING_UNSIGNED_PAYLOAD_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER";
const STREAMING_ECDSA_PAYLOAD = "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD";
const STREAMING_ECDSA_PAYLOAD_TRAILER = "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD-TRAILER";

export type PayloadMode =
  /** The body is the object, not covered by the signature (or anonymous). */
  | { kind: "unsigned" }
  /** The body is the object; its SHA-256 must equal the signed value. */
  | { kind: "signed"; sha256Hex: string }
  /**
   * aws-chunked with a signature per chunk. `trailer` is the checksum the signed trailer
   * carries (STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER), undefined for the no-trailer form.
   */
  | { kind: "streaming-signed"; trailer: ChecksumAlgorithm | undefined; decodedContentLengthBytes: number }
  /**
   * aws-chunked without chunk signatures (STREAMING-UNSIGNED-PAYLOAD-TRAILER, or UNSIGNED-PAYLOAD
   * sent with Content-Encoding: aws-chunked). AWS accepts it with no x-amz-trailer at all, in
   * which case `trailer` is undefined and the body ends "0\r\n\r\n".
   */
  | { kind: "streaming-unsigned-trailer"; trailer: ChecksumAlgorithm | undefined; decodedContentLengthBytes: number };

export function headerText(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  if (value === undefined) return undefined;
  return Array.isArray(value) ? value.join(",") : value;
}

function hasAwsChunkedEncoding(headers: IncomingHttpHeaders): boolean {
  const value = headerText(headers, "content-encoding");
  if (value === undefined) return false;
  return value.split(",").some((token) => token.trim().toLowerCase() === "aws-chunked");
}

/**
 * The Content-Encoding to store with the object: the header without the aws-chunked token,
 * which describes the transfer, not the object (AWS drops it too). Undefined when nothing is left.
 */
export function storedContentEncoding(headerValue: string | undefined): string | undefined {
  if (headerValue === undefined) return undefined;
  const kept = headerValue
    .split(",")
    .map((token) => token.trim())
    .filter((token) => token !== "" && token.toLowerCase() !== "aws-chunked");
  return kept.length === 0 ? undefined : kept.join(",");
}

function parseDecodedContentLength(headers: IncomingHttpHeaders): number {
  const value = headerText(headers, "x-amz-decoded-content-length")?.trim();
  if (value === undefined || !/^\d{1,16}$/.test(value) || !Number.isSafeInteger(Number(value))) {
    throw new AuthError("MissingContentLength", AUTH_MESSAGES.missingContentLength);
  }
  return Number(value);
}

/** The checksum x-amz-trailer declares; only one, and only one S3 knows. */
function parseTrailerDeclaration(headers: IncomingHttpHeaders): ChecksumAlgorithm | undefined {
  const value = headerText(headers, "x-amz-trailer");
  if (value === undefined) return undefined;
  const name = value.trim().toLowerCase();
  const algorithm = name.startsWith("x-amz-checksum-") ? parseChecksumAlgorithm(name.slice(15)) : undefined;
  if (algorithm === undefined) {
    throw new AuthError("InvalidRequest", AUTH_MESSAGES.unsupportedTrailer, { ArgumentName: "x-amz-trailer" });
  }
  // Only value headers count: x-amz-checksum-type and -algorithm name a kind, not a value.
  const checksumHeaders = Object.keys(headers).filter(
    (header) => header.startsWith("x-amz-checksum-") && parseChecksumAlgorithm(header.slice(15)) !== undefined,
  );
  if (checksumHeaders.length > 0) {
    // A checksum both up front and in the trailer: AWS refuses the pair rather than pick one.
    throw new AuthError("InvalidRequest", AUTH_MESSAGES.singleChecksumHeader);
  }
  return algorithm;
}

export function trailerHeaderName(algorithm: ChecksumAlgorithm): string {
  return "x-amz-checksum-" + algorithm.toLowerCase();
}

/**
 * Parses the payload mode. `contentSha256` is the x-amz-content-sha256 value (header or presigned
 * query), or undefined when the request carries none. `signed` says whether a seed signature
 * exists, which the chunk-signed forms need.
 */
export function parsePayloadMode(
  contentSha256: string | undefined,
  headers: IncomingHttpHeaders,
  options: { signed: boolean },
): PayloadMode {
  const chunked = hasAwsChunkedEncoding(headers);
  const value = contentSha256 ?? UNSIGNED_PAYLOAD;
  if (value === UNSIGNED_PAYLOAD) {
    if (headers["x-amz-trailer"] !== undefined && !chunked) {
      throw new AuthError("InvalidRequest", AUTH_MESSAGES.unsupportedTrailer, { ArgumentName: "x-amz-trailer" });
    }
    if (!chunked) return { kind: "unsigned" };
    // Some SDKs (Java v2 over HTTPS) frame the body as aws-chunked while declaring it unsigned;
    // storing that body as-is would save the framing, so it is decoded like the trailer form.
    return {
      kind: "streaming-unsigned-trailer",
      trailer: parseTrailerDeclaration(headers),
      decodedContentLengthBytes: parseDecodedContentLength(headers),
    };
  }
  if (/^[0-9a-fA-F]{64}$/.test(value)) {
    if (chunked) {
      throw new AuthError("InvalidRequest", "Content-Encoding aws-chunked requires a STREAMING-* x-amz-content-sha256.");
    }
    if (headers["x-amz-trailer"] !== undefined) {
      throw new AuthError("InvalidRequest", AUTH_MESSAGES.unsupportedTrailer, { ArgumentName: "x-amz-trailer" });
    }
    return { kind: "signed", sha256Hex: value.toLowerCase() };
  }
  switch (value) {
    case STREAMING_SIGNED_PAYLOAD:
    case STREAMING_SIGNED_PAYLOAD_TRAILER: {
      if (!options.signed) {
        throw new AuthError("InvalidRequest", `${value} requires a request signed with AWS4-HMAC-SHA256.`);
      }
      const withTrailer = value === STREAMING_SIGNED_PAYLOAD_TRAILER;
      if (!withTrailer && headers["x-amz-trailer"] !== undefined) {
        throw new AuthError("InvalidRequest", AUTH_MESSAGES.unsupportedTrailer, { ArgumentName: "x-amz-trailer" });
      }
      const trailer = withTrailer ? parseTrailerDeclaration(headers) : undefined;
      if (withTrailer && trailer === undefined) {
        throw new AuthError("MalformedTrailerError", AUTH_MESSAGES.malformedTrailer);
      }
      return { kind: "streaming-signed", trailer, decodedContentLengthBytes: parseDecodedContentLength(headers) };
    }
    case STREAMING_UNSIGNED_PAYLOAD_TRAILER:
      return {
        kind: "streaming-unsigned-trailer",
        trailer: parseTrailerDeclaration(headers),
        decodedContentLengthBytes: parseDecodedContentLength(headers),
      };
    case STREAMING_ECDSA_PAYLOAD:
    case STREAMING_ECDSA_PAYLOAD_TRAILER:
      // Valid for AWS, but only under SigV4a, which we do not implement.
      throw new AuthError("InvalidRequest", AUTH_MESSAGES.unsupportedMechanism);
    default:
      throw new AuthError("InvalidArgument", AUTH_MESSAGES.invalidContentSha256, {
        ArgumentName: "x-amz-content-sha256",
        ArgumentValue: value,
      });
  }
}
