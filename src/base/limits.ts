/**
 * Every limit of Cairn, each with its unit in its name and the reason it has the value it has.
 * Derived values are computed here, and relationships between limits are asserted at load.
 */
import { assert } from "./assert.js";
import { GIBIBYTE, KIBIBYTE, MEBIBYTE, MINUTE_MS, SECOND_MS, TEBIBYTE, DAY_MS } from "./units.js";

// ---- S3 surface (values AWS documents; clients size their requests from them) ----
/** AWS refuses keys longer than this many UTF-8 bytes with KeyTooLongError. */
export const OBJECT_KEY_SIZE_BYTES_MAX = 1024;
/** AWS's single PUT limit; larger bodies must go multipart (EntityTooLarge). */
export const PUT_OBJECT_SIZE_BYTES_MAX = 5 * GIBIBYTE;
/** AWS's object size limit (multipart). */
export const OBJECT_SIZE_BYTES_MAX = 5 * TEBIBYTE;
/** AWS caps a multipart upload at this many parts; SDKs size their parts from it. */
export const UPLOAD_PART_COUNT_MAX = 10_000;
/** Parts other than the last must be at least this big (EntityTooSmall). */
export const PART_SIZE_BYTES_MIN = 5 * MEBIBYTE;
/** AWS's part size limit. */
export const PART_SIZE_BYTES_MAX = 5 * GIBIBYTE;
/** Bucket names are 3..63 characters (InvalidBucketName). */
export const BUCKET_NAME_LENGTH_MIN = 3;
export const BUCKET_NAME_LENGTH_MAX = 63;
/** ListObjects pages hold at most this many entries, whatever max-keys asks. */
export const LIST_KEYS_COUNT_MAX = 1000;
/** User metadata (x-amz-meta-*) is limited to 2 KiB in AWS (MetadataTooLarge). */
export const USER_METADATA_SIZE_BYTES_MAX = 2 * KIBIBYTE;
/** Presigned URLs may live at most seven days (AuthorizationQueryParametersError). */
export const PRESIGNED_URL_EXPIRES_SECONDS_MAX = 7 * 24 * 3600;
/** A signed request's date may differ from our clock by this much (RequestTimeTooSkewed). */
export const REQUEST_TIME_SKEW_MS_MAX = 15 * MINUTE_MS;
/** XML request bodies (CreateBucket, DeleteObjects, ...) are small; refuse larger (MalformedXML). */
export const XML_BODY_SIZE_BYTES_MAX = 2 * MEBIBYTE;
/** aws-chunked chunk headers longer than this are malformed, not a reason to buffer. */
export const AWS_CHUNK_HEADER_SIZE_BYTES_MAX = 4 * KIBIBYTE;

// ---- Data path ----
/**
 * Objects are cut into chunks of this size; each chunk is one needle. A chunk is the unit a
 * gateway holds in memory per request, so it bounds memory per PUT, and the unit of a
 * checksum-verified read, so it bounds the read amplification of a small Range GET.
 */
export const CHUNK_SIZE_BYTES = 4 * MEBIBYTE;
/** Needle payloads are chunks; nothing else is bigger. */
export const NEEDLE_DATA_SIZE_BYTES_MAX = CHUNK_SIZE_BYTES;

// ---- Data node ----
/** A read-write volume is sealed when the next append would pass this size (configurable). */
export const VOLUME_SIZE_BYTES_DEFAULT = 1 * GIBIBYTE;
/** Tests shrink volumes to exercise sealing; nothing smaller than one full chunk fits. */
export const VOLUME_SIZE_BYTES_MIN = 2 * CHUNK_SIZE_BYTES;
/** Writes that arrive while an fsync runs wait for the next one; at most this many share it. */
export const GROUP_COMMIT_WRITES_COUNT_MAX = 256;
/** ...and at most this many bytes, so one group's latency stays bounded. */
export const GROUP_COMMIT_BYTES_MAX = 64 * MEBIBYTE;
/**
 * Needles up to this size are read with one synchronous pread on the event loop: from the page
 * cache that costs microseconds, while a hand-off to libuv's thread pool cost a small GET more
 * CPU than all its other work on a busy 2-core machine. Larger reads go to the thread pool, so
 * a cold read blocks the loop for at most one small disk read.
 */
export const NEEDLE_READ_SYNC_SIZE_BYTES_MAX = 64 * KIBIBYTE;

// ---- Metadata ----
/** Abandoned multipart uploads older than this are removed (configurable). */
export const MULTIPART_UPLOAD_AGE_MS_MAX = 7 * DAY_MS;

// ---- Network ----
/** Idle keep-alive sockets are closed after this long. */
export const HTTP_KEEP_ALIVE_TIMEOUT_MS = 65 * SECOND_MS;
/** A request whose body stops flowing for this long is aborted (RequestTimeout). */
export const HTTP_BODY_IDLE_TIMEOUT_MS = 60 * SECOND_MS;

assert(NEEDLE_DATA_SIZE_BYTES_MAX <= VOLUME_SIZE_BYTES_MIN, "a chunk must fit in the smallest volume");
assert(PART_SIZE_BYTES_MIN <= PART_SIZE_BYTES_MAX, "part size bounds are ordered");
assert(CHUNK_SIZE_BYTES <= GROUP_COMMIT_BYTES_MAX, "one chunk fits in one commit group");
