/**
 * Object headers in and out: user metadata, the system headers S3 keeps (Content-Type,
 * Content-Encoding, ...), checksum headers, Range, and conditional request headers.
 */
import { parseStorageClassEc } from "../ec/index.js";
import {
  checksumDigestSizeBytes,
  CHECKSUM_ALGORITHMS,
  USER_METADATA_SIZE_BYTES_MAX,
  type ChecksumAlgorithm,
} from "../base/index.js";
import { storedContentEncoding } from "../auth/index.js";
import type { ObjectVersion } from "../meta/index.js";
import { header, type RequestContext } from "./context.js";
import { s3Errors, s3ErrorWithMessage } from "./s3-errors.js";
import { httpDate } from "./xml.js";

/** AWS's Content-Type when the client sent none. */
export const CONTENT_TYPE_DEFAULT = "binary/octet-stream";

/** Headers S3 stores with an object and returns on GET/HEAD, by their lower-case names. */
const SYSTEM_METADATA_HEADERS = ["cache-control", "content-disposition", "content-language", "expires"] as const;

export const STORAGE_CLASSES = [
  "STANDARD", "REDUCED_REDUNDANCY", "STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING", "GLACIER",
  "DEEP_ARCHIVE", "GLACIER_IR", "OUTPOSTS", "SNOW", "EXPRESS_ONEZONE",
] as const;

export interface ObjectHeaders {
  contentType: string | undefined;
  systemMetadata: Record<string, string>;
  userMetadata: Record<string, string>;
  storageClass: string;
}

export function readObjectHeaders(ctx: RequestContext): ObjectHeaders {
  const systemMetadata: Record<string, string> = {};
  for (const name of SYSTEM_METADATA_HEADERS) {
    const value = header(ctx, name);
    if (value !== undefined) systemMetadata[name] = value;
  }
  const encoding = storedContentEncoding(header(ctx, "content-encoding"));
  if (encoding !== undefined) systemMetadata["content-encoding"] = encoding;
  const userMetadata: Record<string, string> = {};
  let userMetadataSizeBytes = 0;
  for (const [name, value] of Object.entries(ctx.headers)) {
    if (!name.startsWith("x-amz-meta-") || value === undefined) continue;
    const metaName = name.slice("x-amz-meta-".length);
    const metaValue = Array.isArray(value) ? value.join(",") : value;
    userMetadata[metaName] = metaValue;
    userMetadataSizeBytes += Buffer.byteLength(metaName) + Buffer.byteLength(metaValue);
  }
  if (userMetadataSizeBytes > USER_METADATA_SIZE_BYTES_MAX) {
    throw s3ErrorWithMessage(s3Errors.metadataTooLarge, "Your metadata headers exceed the maximum allowed metadata size.", {
      Size: String(userMetadataSizeBytes),
      MaxSizeAllowed: String(USER_METADATA_SIZE_BYTES_MAX),
    });
  }
  const storageClass = header(ctx, "x-amz-storage-class") ?? "STANDARD";
  if (!(STORAGE_CLASSES as readonly string[]).includes(storageClass) && parseStorageClassEc(storageClass) === undefined) {
    throw s3Errors.invalidStorageClass({ StorageClassRequested: storageClass });
  }
  return { contentType: header(ctx, "content-type"), systemMetadata, userMetadata, storageClass };
}

/** Headers describing a stored version on GET and HEAD (not Content-Length nor Range). */
export function versionResponseHeaders(
  version: ObjectVersion,
  options: { versioned: boolean },
  /** Headers to add these to (and return), instead of a new object. */
  headers: Record<string, string> = {},
): Record<string, string> {
  headers.ETag = `"${version.etag}"`;
  headers["Last-Modified"] = httpDate(version.lastModifiedMs);
  headers["Content-Type"] = version.contentType ?? CONTENT_TYPE_DEFAULT;
  headers["Accept-Ranges"] = "bytes";
  for (const [name, value] of Object.entries(version.systemMetadata)) {
    if (name !== "x-amz-acl") headers[name] = value;
  }
  for (const [name, value] of Object.entries(version.userMetadata)) headers[`x-amz-meta-${name}`] = value;
  if (version.storageClass !== "STANDARD") headers["x-amz-storage-class"] = version.storageClass;
  if (options.versioned) headers["x-amz-version-id"] = version.versionId;
  const tagCount = Object.keys(version.tags).length;
  if (tagCount > 0) headers["x-amz-tagging-count"] = String(tagCount);
  if (version.partSizesBytes !== undefined) headers["x-amz-mp-parts-count"] = String(version.partSizesBytes.length);
  return headers;
}

/** The response-* query parameters of GET override headers of the response (signed requests only). */
const RESPONSE_OVERRIDE_PARAMETERS: ReadonlyArray<readonly [string, string]> = [
  ["response-content-type", "Content-Type"],
  ["response-content-language", "Content-Language"],
  ["response-expires", "Expires"],
  ["response-cache-control", "Cache-Control"],
  ["response-content-disposition", "Content-Disposition"],
  ["response-content-encoding", "Content-Encoding"],
];

export function responseOverrideHeaders(ctx: RequestContext): Record<string, string> {
  const overrides: Record<string, string> = {};
  for (const [parameter, headerName] of RESPONSE_OVERRIDE_PARAMETERS) {
    const value = ctx.query.get(parameter);
    if (value !== null) overrides[headerName] = value;
  }
  return overrides;
}

// ---- checksums sent with a body ----

export interface ChecksumRequest {
  algorithm: ChecksumAlgorithm;
  /** base64 value from an x-amz-checksum-* header; undefined when it comes in a trailer or not at all. */
  expectedBase64: string | undefined;
}

/**
 * The checksum a PUT asks for: at most one x-amz-checksum-<algorithm> header (validated as
 * base64 of the right size), or an x-amz-sdk-checksum-algorithm / x-amz-trailer naming one.
 */
export function readChecksumRequest(ctx: RequestContext): ChecksumRequest | undefined {
  const present = CHECKSUM_ALGORITHMS.filter((algorithm) => header(ctx, `x-amz-checksum-${algorithm.toLowerCase()}`) !== undefined);
  if (present.length > 1) throw s3ErrorWithMessage(s3Errors.invalidRequest, "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.");
  const declared = header(ctx, "x-amz-sdk-checksum-algorithm")?.toUpperCase();
  if (declared !== undefined && !(CHECKSUM_ALGORITHMS as readonly string[]).includes(declared)) {
    throw s3ErrorWithMessage(s3Errors.invalidRequest, "Value for x-amz-sdk-checksum-algorithm header is invalid.");
  }
  const algorithm = present[0];
  if (algorithm !== undefined) {
    if (declared !== undefined && declared !== algorithm) {
      throw s3ErrorWithMessage(s3Errors.invalidRequest, "Value for x-amz-sdk-checksum-algorithm header is invalid.");
    }
    const name = `x-amz-checksum-${algorithm.toLowerCase()}`;
    const value = header(ctx, name)!;
    const decoded = Buffer.from(value, "base64");
    if (decoded.length !== checksumDigestSizeBytes(algorithm) || decoded.toString("base64") !== value) {
      throw s3ErrorWithMessage(s3Errors.invalidRequest, `Value for ${name} header is invalid.`);
    }
    return { algorithm, expectedBase64: value };
  }
  const trailer = header(ctx, "x-amz-trailer")?.toLowerCase();
  if (trailer !== undefined && trailer.startsWith("x-amz-checksum-")) {
    const fromTrailer = trailer.slice("x-amz-checksum-".length).toUpperCase();
    if ((CHECKSUM_ALGORITHMS as readonly string[]).includes(fromTrailer)) {
      return { algorithm: fromTrailer as ChecksumAlgorithm, expectedBase64: undefined };
    }
  }
  if (declared !== undefined) return { algorithm: declared as ChecksumAlgorithm, expectedBase64: undefined };
  return undefined;
}

/** Content-MD5 as 16 bytes, or InvalidDigest. */
export function readContentMd5(ctx: RequestContext): Buffer | undefined {
  const value = header(ctx, "content-md5");
  if (value === undefined) return undefined;
  const decoded = Buffer.from(value, "base64");
  if (decoded.length !== 16 || decoded.toString("base64") !== value.trim()) throw s3Errors.invalidDigest({ "Content-MD5": value });
  return decoded;
}

// ---- Range ----

export type RangeRequest = { kind: "none" } | { kind: "range"; startByte: number; endByteExclusive: number } | { kind: "unsatisfiable" };

/**
 * `bytes=a-b`, `bytes=a-`, `bytes=-n`. A header that is not one well-formed single range is
 * ignored (the whole object is sent), as AWS does; a range that starts past the end is 416.
 */
export function parseRange(value: string | undefined, sizeBytes: number): RangeRequest {
  if (value === undefined) return { kind: "none" };
  const match = /^bytes=(\d*)-(\d*)$/.exec(value.trim());
  if (match === null) return { kind: "none" };
  const [, first, last] = match as unknown as [string, string, string];
  if (first === "" && last === "") return { kind: "none" };
  if (first === "") {
    const suffixBytes = Number(last);
    if (suffixBytes === 0 || sizeBytes === 0) return { kind: "unsatisfiable" };
    return { kind: "range", startByte: Math.max(0, sizeBytes - suffixBytes), endByteExclusive: sizeBytes };
  }
  const startByte = Number(first);
  if (last !== "" && Number(last) < startByte) return { kind: "none" };
  if (startByte >= sizeBytes) return { kind: "unsatisfiable" };
  const endByteExclusive = last === "" ? sizeBytes : Math.min(sizeBytes, Number(last) + 1);
  return { kind: "range", startByte, endByteExclusive };
}

// ---- conditional GET/HEAD ----

export type ConditionOutcome = "proceed" | "not-modified" | "precondition-failed";

function etagMatches(list: string, etag: string): boolean {
  return list.split(",").some((candidate) => {
    const trimmed = candidate.trim();
    return trimmed === "*" || trimmed.replace(/^W\//, "").replace(/^"|"$/g, "") === etag;
  });
}

/**
 * RFC 9110 evaluation as S3 does it: If-Match, then If-Unmodified-Since (skipped when
 * If-Match is present), then If-None-Match, then If-Modified-Since (skipped when
 * If-None-Match is present).
 */
export function evaluateConditions(ctx: RequestContext, version: ObjectVersion): ConditionOutcome {
  const ifMatch = header(ctx, "if-match");
  const ifNoneMatch = header(ctx, "if-none-match");
  const ifModifiedSince = header(ctx, "if-modified-since");
  const ifUnmodifiedSince = header(ctx, "if-unmodified-since");
  const lastModifiedSeconds = Math.floor(version.lastModifiedMs / 1000);
  if (ifMatch !== undefined) {
    if (!etagMatches(ifMatch, version.etag)) return "precondition-failed";
  } else if (ifUnmodifiedSince !== undefined) {
    const sinceMs = Date.parse(ifUnmodifiedSince);
    if (!Number.isNaN(sinceMs) && lastModifiedSeconds > Math.floor(sinceMs / 1000)) return "precondition-failed";
  }
  if (ifNoneMatch !== undefined) {
    if (etagMatches(ifNoneMatch, version.etag)) return "not-modified";
  } else if (ifModifiedSince !== undefined) {
    const sinceMs = Date.parse(ifModifiedSince);
    if (!Number.isNaN(sinceMs) && lastModifiedSeconds <= Math.floor(sinceMs / 1000)) return "not-modified";
  }
  return "proceed";
}
