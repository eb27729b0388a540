/**
 * Seeds listing buckets straight into a `cairn server`'s metadata database before the server
 * starts: 100,000 keys through PUT would take minutes on a 2-core machine and measure PUT, not
 * listing. The rows are what PutObject commits for an empty object (no chunks), written through
 * the SQLite engine's own API, so the listing reads exactly what a PUT-populated bucket holds.
 */
import * as path from "node:path";
import { SqliteMetadataStore, type ObjectVersion } from "../src/meta/index.js";

/** The owner a bucket created by the root user gets (src/cli/credentials.ts ROOT_USER_ID). */
const ROOT_USER_ID = "root";
const EMPTY_MD5_HEX = "d41d8cd98f00b204e9800998ecf8427e";
/** Writes handed to the store at once; it commits them in batches of its own. */
const SEED_WRITES_IN_FLIGHT_MAX = 4_096;

export async function seedListingBucket(dataDirectory: string, bucket: string, keys: readonly string[]): Promise<void> {
  const store = SqliteMetadataStore.open(path.join(dataDirectory, "metadata.sqlite"));
  try {
    const nowMs = Date.now();
    await store.createBucket({ name: bucket, ownerId: ROOT_USER_ID, createdAtMs: nowMs, region: "us-east-1", versioning: "Unversioned", acl: "private", tags: {} });
    for (let start = 0; start < keys.length; start += SEED_WRITES_IN_FLIGHT_MAX) {
      await Promise.all(
        keys.slice(start, start + SEED_WRITES_IN_FLIGHT_MAX).map((key) => {
          const version: ObjectVersion = {
            bucket,
            key,
            versionId: "null",
            isDeleteMarker: false,
            sizeBytes: 0,
            etag: EMPTY_MD5_HEX,
            lastModifiedMs: nowMs,
            ownerId: ROOT_USER_ID,
            storageClass: "STANDARD",
            contentType: "application/octet-stream",
            systemMetadata: {},
            userMetadata: {},
            tags: {},
            checksum: undefined,
            partSizesBytes: undefined,
            chunks: [],
          };
          return store.putObjectVersion(version);
        }),
      );
    }
  } finally {
    await store.close();
  }
}
