/**
 * Which layout an object's bytes get: replicated, or erasure-coded with k data and m parity
 * shards. In order, the first that applies:
 *   1. the request's `x-amz-storage-class: EC:<k>+<m>` (on PutObject, CreateMultipartUpload,
 *      CopyObject);
 *   2. the bucket's tag `cairn:storage-class` (`EC:<k>+<m>`, or `STANDARD` for replicated), set
 *      with PutBucketTagging from any S3 tool;
 *   3. the gateway's `--default-storage-class` (STANDARD, or EC:<k>+<m>).
 * AWS's own class names (STANDARD, STANDARD_IA, ...) are accepted and stored as given; they
 * all mean "the bucket's or cluster's default".
 */
import { parseStorageClassEc, type EcScheme } from "../ec/index.js";
import type { Bucket } from "../meta/index.js";

export const BUCKET_STORAGE_CLASS_TAG = "cairn:storage-class";

/** The storage class value that names the replicated layout in the tag and the flag. */
export const STORAGE_CLASS_REPLICATED = "STANDARD";

/** Parse a bucket tag or flag value: null for STANDARD, the scheme for EC:k+m, undefined when invalid. */
export function parseLayoutName(value: string): EcScheme | null | undefined {
  if (value === STORAGE_CLASS_REPLICATED) return null;
  return parseStorageClassEc(value);
}

export function ecSchemeFor(storageClass: string, bucket: Bucket, defaultEc: EcScheme | null): EcScheme | null {
  const requested = parseStorageClassEc(storageClass);
  if (requested !== undefined) return requested;
  const tagged = bucket.tags[BUCKET_STORAGE_CLASS_TAG];
  if (tagged !== undefined) {
    const layout = parseLayoutName(tagged);
    // PutBucketTagging refuses an invalid value; one stored before that check means the default.
    if (layout !== undefined) return layout;
  }
  return defaultEc;
}
