/**
 * SigV4 building blocks shared by the verifier and the test signer: URI encoding, canonical
 * URI / query / headers, the signing key and the strings to sign.
 *
 * Canonical URI: S3 signs the path with single encoding and no normalization. Clients disagree
 * on which characters they leave unencoded on the wire (boto3 sends '~' and '@' raw, the JS SDK
 * encodes '!*'()' that encodeURIComponent keeps, some send '$' or ':' raw), but they all sign the
 * RFC 3986 form of the decoded key. So, like MinIO (s3utils.EncodePath over the decoded path) and
 * Garage (uri_encode over the percent-decoded path), we decode the raw path to bytes and re-encode
 * every byte that is not unreserved, keeping '/'. `//` and `.` segments stay: they are key bytes.
 *
 * Canonical query: like MinIO (Go's form parsing), '+' in the raw query is a space; names and
 * values are decoded and re-encoded the same way, then sorted by encoded name, then value.
 */
import { createHmac, hash } from "node:crypto";
import { rememberLast, setInBoundedCache } from "../base/index.js";

export const SIGV4_ALGORITHM = "AWS4-HMAC-SHA256";
export const SIGV4_TERMINATOR = "aws4_request";
export const SIGV4_SERVICE = "s3";
export const EMPTY_SHA256_HEX = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
export const UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD";

const HEX_UPPER = "0123456789ABCDEF";

function isUnreserved(byte: number): boolean {
  return (
    (byte >= 0x41 && byte <= 0x5a) || // A-Z
    (byte >= 0x61 && byte <= 0x7a) || // a-z
    (byte >= 0x30 && byte <= 0x39) || // 0-9
    byte === 0x2d || // -
    byte === 0x2e || // .
    byte === 0x5f || // _
    byte === 0x7e // ~
  );
}

/** SigV4 URI encoding of raw bytes: unreserved kept, everything else %XX upper case. */
export function uriEncodeBytes(bytes: Uint8Array, keepSlash: boolean): string {
  let out = "";
  for (const byte of bytes) {
    if (isUnreserved(byte) || (keepSlash && byte === 0x2f)) {
      out += String.fromCharCode(byte);
    } else {
      out += "%" + HEX_UPPER[byte >> 4]! + HEX_UPPER[byte & 0x0f]!;
    }
  }
  return out;
}

/** SigV4 URI encoding of a string (UTF-8), as a client signs a key or query value. */
export function uriEncode(text: string, keepSlash: boolean): string {
  return uriEncodeBytes(Buffer.from(text, "utf8"), keepSlash);
}

function hexValue(code: number): number {
  if (code >= 0x30 && code <= 0x39) return code - 0x30;
  if (code >= 0x41 && code <= 0x46) return code - 0x41 + 10;
  if (code >= 0x61 && code <= 0x66) return code - 0x61 + 10;
  return -1;
}

/**
 * Percent-decodes raw request text to bytes. Returns undefined for a malformed escape ("%zz",
 * a trailing "%"), which no signer produces. Non-ASCII characters that arrived unencoded are
 * taken as UTF-8, as every client means them.
 */
export function percentDecode(raw: string, plusIsSpace: boolean): Buffer | undefined {
  if (!raw.includes("%") && !(plusIsSpace && raw.includes("+"))) return Buffer.from(raw, "utf8");
  const source = Buffer.from(raw, "utf8");
  const out = Buffer.allocUnsafe(source.length);
  let length = 0;
  for (let index = 0; index < source.length; index++) {
    const byte = source[index]!;
    if (byte === 0x25) {
      const high = index + 2 < source.length ? hexValue(source[index + 1]!) : -1;
      const low = index + 2 < source.length ? hexValue(source[index + 2]!) : -1;
      if (high < 0 || low < 0) return undefined;
      out[length++] = (high << 4) | low;
      index += 2;
    } else if (byte === 0x2b && plusIsSpace) {
      out[length++] = 0x20;
    } else {
      out[length++] = byte;
    }
  }
  return out.subarray(0, length);
}

const PLAIN_PATH = /^[A-Za-z0-9\-._~/]*$/;

/** The canonical URI of a raw request path, or undefined when the path is not decodable. */
export function canonicalUri(rawPath: string): string | undefined {
  if (rawPath === "") return "/";
  // Most paths hold only unreserved characters and '/': they are their own canonical form.
  if (PLAIN_PATH.test(rawPath)) return rawPath;
  const decoded = percentDecode(rawPath, false);
  if (decoded === undefined) return undefined;
  return uriEncodeBytes(decoded, true);
}

export interface QueryParameter {
  /** Decoded name as text (UTF-8), for looking parameters up. */
  readonly name: string;
  /** Decoded value as text (UTF-8). */
  readonly value: string;
  /** SigV4-encoded name and value, for the canonical query string. */
  readonly encodedName: string;
  readonly encodedValue: string;
}

/** Parses a raw query string (without '?'); undefined when an escape is malformed. */
export function parseQuery(rawQuery: string): QueryParameter[] | undefined {
  const parameters: QueryParameter[] = [];
  if (rawQuery === "") return parameters;
  for (const part of rawQuery.split("&")) {
    if (part === "") continue; // "a&&b": an empty pair carries nothing and no client signs one
    const equals = part.indexOf("=");
    const rawName = equals === -1 ? part : part.slice(0, equals);
    const rawValue = equals === -1 ? "" : part.slice(equals + 1);
    const name = percentDecode(rawName, true);
    const value = percentDecode(rawValue, true);
    if (name === undefined || value === undefined) return undefined;
    parameters.push({
      name: name.toString("utf8"),
      value: value.toString("utf8"),
      encodedName: uriEncodeBytes(name, false),
      encodedValue: uriEncodeBytes(value, false),
    });
  }
  return parameters;
}

function compareAscii(left: string, right: string): number {
  return left < right ? -1 : left > right ? 1 : 0;
}

/** Canonical query string; `excludeName` drops X-Amz-Signature for presigned requests. */
export function canonicalQueryString(parameters: readonly QueryParameter[], excludeName?: string): string {
  return parameters
    .filter((parameter) => parameter.name !== excludeName)
    .map((parameter) => [parameter.encodedName, parameter.encodedValue] as const)
    .sort((left, right) => compareAscii(left[0], right[0]) || compareAscii(left[1], right[1]))
    .map(([name, value]) => `${name}=${value}`)
    .join("&");
}

/** Trim, collapse inner whitespace runs to one space, join multiple values with ','. */
export function canonicalHeaderValue(values: readonly string[]): string {
  if (values.length === 1 && !NON_CANONICAL_SPACE.test(values[0]!)) return values[0]!;
  return values.map((value) => value.trim().replace(/\s+/g, " ")).join(",");
}

/** Whitespace that canonicalization changes: at either end, a run, or any but a plain space. */
const NON_CANONICAL_SPACE = /^\s|\s$|\s\s|[\t\n\v\f\r\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]/;

export function sha256Hex(data: string | Uint8Array): string {
  // The one-shot form: no Hash object per call (a canonical request is hashed per request).
  return hash("sha256", data, "hex");
}

export function hmac(key: string | Uint8Array, data: string): Buffer {
  return createHmac("sha256", key).update(data, "utf8").digest();
}

/** hmac as lower-case hex, as signatures are compared and sent: a third cheaper than hmac(...).toString("hex"). */
export function hmacHex(key: string | Uint8Array, data: string): string {
  return createHmac("sha256", key).update(data, "utf8").digest("hex");
}

/**
 * Signing keys derived lately, by secret, date, region and service. A key is valid for a whole
 * day, and deriving it is four HMACs: the costliest part of verifying a small request. The bound
 * keeps a flood of distinct (key, date) pairs from growing memory; past it the map starts over.
 */
const SIGNING_KEY_CACHE_ENTRIES_MAX = 1_024;
const signingKeyCache = new Map<string, Buffer>();

export function deriveSigningKey(secretAccessKey: string, date: string, region: string, service: string): Buffer {
  const cacheKey = `${secretAccessKey}\n${date}\n${region}\n${service}`;
  const cached = signingKeyCache.get(cacheKey);
  if (cached !== undefined) return cached;
  const dateKey = hmac("AWS4" + secretAccessKey, date);
  const regionKey = hmac(dateKey, region);
  const serviceKey = hmac(regionKey, service);
  const signingKey = hmac(serviceKey, SIGV4_TERMINATOR);
  setInBoundedCache(signingKeyCache, cacheKey, signingKey, SIGNING_KEY_CACHE_ENTRIES_MAX);
  return signingKey;
}

export function credentialScope(date: string, region: string, service: string): string {
  return `${date}/${region}/${service}/${SIGV4_TERMINATOR}`;
}

export interface CanonicalRequestParts {
  method: string;
  canonicalUri: string;
  canonicalQuery: string;
  /** Lower-case names in signing order, each with its canonical value. */
  headers: ReadonlyArray<readonly [string, string]>;
  payloadHash: string;
}

export function canonicalRequest(parts: CanonicalRequestParts): string {
  const headerLines = parts.headers.map(([name, value]) => `${name}:${value}\n`).join("");
  const signedHeaders = parts.headers.map(([name]) => name).join(";");
  return [parts.method, parts.canonicalUri, parts.canonicalQuery, headerLines, signedHeaders, parts.payloadHash].join(
    "\n",
  );
}

export function requestStringToSign(amzDate: string, scope: string, canonical: string): string {
  return [SIGV4_ALGORITHM, amzDate, scope, sha256Hex(canonical)].join("\n");
}

export function chunkStringToSign(amzDate: string, scope: string, previousSignature: string, chunkSha256Hex: string): string {
  return ["AWS4-HMAC-SHA256-PAYLOAD", amzDate, scope, previousSignature, EMPTY_SHA256_HEX, chunkSha256Hex].join("\n");
}

/** The trailer is hashed as its header lines, each "name:value\n" (verified against AWS's example). */
export function trailerStringToSign(amzDate: string, scope: string, previousSignature: string, trailerSha256Hex: string): string {
  return ["AWS4-HMAC-SHA256-TRAILER", amzDate, scope, previousSignature, trailerSha256Hex].join("\n");
}

/** YYYYMMDD'T'HHMMSS'Z' of a time in ms. */
export function formatAmzDate(timeMs: number): string {
  return formatAmzDateOfSecond(Math.floor(timeMs / 1000) * 1000);
}

// Every request of the same second carries the same X-Amz-Date: the last date formatted and the
// last parsed are remembered, so most parse as a string comparison.
const formatAmzDateOfSecond = rememberLast((secondMs: number): string => {
  // From "YYYY-MM-DDTHH:MM:SS.sssZ" by slicing: two regex replaces cost more per request.
  const iso = new Date(secondMs).toISOString();
  return iso.slice(0, 4) + iso.slice(5, 7) + iso.slice(8, 13) + iso.slice(14, 16) + iso.slice(17, 19) + "Z";
});

/** Parses YYYYMMDD'T'HHMMSS'Z'; undefined unless it is a real instant in exactly that form. */
export const parseAmzDate: (value: string) => number | undefined = rememberLast((value: string): number | undefined => {
  const match = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(value);
  if (match === null) return undefined;
  const [, year, month, day, hour, minute, second] = match.map(Number) as [number, ...number[]];
  const timeMs = Date.UTC(year!, month! - 1, day!, hour!, minute!, second!);
  return formatAmzDate(timeMs) === value ? timeMs : undefined;
});
