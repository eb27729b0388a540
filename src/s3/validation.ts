/** Validation of names and arguments at the edge: bucket names, keys, integers, tags. */
import { BUCKET_NAME_LENGTH_MAX, BUCKET_NAME_LENGTH_MIN, OBJECT_KEY_SIZE_BYTES_MAX } from "../base/index.js";
import { s3Errors, s3ErrorWithMessage } from "./s3-errors.js";

/** Bucket naming rules for general purpose buckets, as AWS documents them. */
export function validateBucketName(name: string): void {
  const invalid = (why: string) => s3ErrorWithMessage(s3Errors.invalidBucketName, `The specified bucket is not valid: ${why}`, { BucketName: name });
  if (name.length < BUCKET_NAME_LENGTH_MIN || name.length > BUCKET_NAME_LENGTH_MAX) throw invalid("length must be 3 to 63");
  if (!/^[a-z0-9][a-z0-9.-]*[a-z0-9]$/.test(name)) throw invalid("lowercase letters, digits, dots and hyphens; start and end with a letter or digit");
  if (name.includes("..")) throw invalid("two adjacent periods");
  if (name.includes(".-") || name.includes("-.")) throw invalid("a period next to a hyphen");
  if (/^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(name)) throw invalid("formatted as an IP address");
  for (const prefix of ["xn--", "sthree-", "amzn-s3-demo-"]) if (name.startsWith(prefix)) throw invalid(`reserved prefix ${prefix}`);
  for (const suffix of ["-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"]) if (name.endsWith(suffix)) throw invalid(`reserved suffix ${suffix}`);
}

export function validateObjectKey(key: string): void {
  // NUL cannot be listed in XML 1.0 nor stored in PostgreSQL text; no client can use such a key.
  if (key.includes("\u0000")) throw s3ErrorWithMessage(s3Errors.invalidArgument, "Object key contains a character that is not allowed (U+0000)");
  if (Buffer.byteLength(key, "utf8") > OBJECT_KEY_SIZE_BYTES_MAX) {
    throw s3ErrorWithMessage(s3Errors.keyTooLong, "Your key is too long", {
      Size: String(Buffer.byteLength(key, "utf8")),
      MaxSizeAllowed: String(OBJECT_KEY_SIZE_BYTES_MAX),
    });
  }
}

/** A non-negative integer query argument; InvalidArgument for anything else. */
export function parseIntegerArgument(name: string, value: string | null, fallback: number): number {
  if (value === null) return fallback;
  if (!/^-?\d+$/.test(value)) {
    throw s3ErrorWithMessage(s3Errors.invalidArgument, `Provided ${name} not an integer or within integer range`, {
      ArgumentName: name,
      ArgumentValue: value,
    });
  }
  const parsed = Number(value);
  if (parsed < 0 || !Number.isSafeInteger(parsed)) {
    throw s3ErrorWithMessage(s3Errors.invalidArgument, `Argument ${name} must be an integer between 0 and 2147483647`, {
      ArgumentName: name,
      ArgumentValue: value,
    });
  }
  return parsed;
}

/** Tags as x-amz-tagging sends them (URL query form); limits as AWS: 10 tags, 128/256 chars. */
export function parseTaggingHeader(value: string): Record<string, string> {
  const tags: Record<string, string> = {};
  for (const [key, tagValue] of new URLSearchParams(value)) {
    if (key in tags) throw s3ErrorWithMessage(s3Errors.invalidTag, "Cannot provide multiple Tags with the same key");
    tags[key] = tagValue;
  }
  validateTags(tags);
  return tags;
}

export function validateTags(tags: Record<string, string>): void {
  const entries = Object.entries(tags);
  if (entries.length > 10) throw s3ErrorWithMessage(s3Errors.invalidTag, "Object tags cannot be greater than 10");
  for (const [key, value] of entries) {
    if (key.length === 0 || [...key].length > 128) throw s3ErrorWithMessage(s3Errors.invalidTag, "The TagKey you have provided is invalid");
    if ([...value].length > 256) throw s3ErrorWithMessage(s3Errors.invalidTag, "The TagValue you have provided is invalid");
  }
}
