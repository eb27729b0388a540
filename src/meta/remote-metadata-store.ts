/**
 * The metadata store over internal RPC: `cairn placement` serves its SQLite store to the
 * gateways of a cluster, so several gateways share one metadata store without PostgreSQL.
 * Every method is one RPC; operating errors cross as the same typed errors.
 */
import { registerRpcError, type RpcClient, type RpcRoutes } from "../cluster/index.js";
import {
  AccessKeyAlreadyExists,
  BucketAlreadyExists,
  BucketNotEmpty,
  NoSuchAccessKey,
  NoSuchBucket,
  NoSuchKey,
  NoSuchUpload,
  NoSuchUser,
  NoSuchVersion,
  PreconditionFailed,
  UserAlreadyExists,
} from "./errors.js";
import type { MetadataStore } from "./metadata-store.js";

/** Every method of the interface; the type check below fails when one is missing. */
const METHODS = [
  "createBucket", "getBucket", "listBuckets", "deleteBucket", "updateBucket",
  "putObjectVersion", "getObjectVersion", "getBucketAndObjectVersion", "deleteObject", "setObjectTags", "setObjectSystemMetadata",
  "listObjects", "listObjectVersions",
  "createMultipartUpload", "getMultipartUpload", "putPart", "listParts", "getParts",
  "completeMultipartUpload", "abortMultipartUpload", "listMultipartUploads", "listMultipartUploadsInitiatedBefore",
  "takeGarbageChunks", "removeGarbageChunks",
  "createUser", "getUser", "listUsers", "deleteUser", "addAccessKey", "getAccessKey", "listAccessKeys", "removeAccessKey",
] as const satisfies ReadonlyArray<keyof MetadataStore>;
type RemoteMethod = (typeof METHODS)[number];
type Missing = Exclude<keyof MetadataStore, RemoteMethod | "close">;
const allMethodsCovered: Missing extends never ? true : Missing = true;
void allMethodsCovered;

const ROUTE_PREFIX = "meta.";

registerRpcError("BucketAlreadyExists", (_m, f) => new BucketAlreadyExists(f.bucket as string, f.ownerId as string));
registerRpcError("NoSuchBucket", (_m, f) => new NoSuchBucket(f.bucket as string));
registerRpcError("BucketNotEmpty", (_m, f) => new BucketNotEmpty(f.bucket as string));
registerRpcError("NoSuchKey", (_m, f) => new NoSuchKey(f.bucket as string, f.key as string));
registerRpcError("NoSuchVersion", (_m, f) => new NoSuchVersion(f.bucket as string, f.key as string, f.versionId as string));
registerRpcError("NoSuchUpload", (_m, f) => new NoSuchUpload(f.uploadId as string));
registerRpcError("PreconditionFailed", (_m, f) => new PreconditionFailed(f.bucket as string, f.key as string));
registerRpcError("UserAlreadyExists", (_m, f) => new UserAlreadyExists(f.userId as string));
registerRpcError("NoSuchUser", (_m, f) => new NoSuchUser(f.userId as string));
registerRpcError("AccessKeyAlreadyExists", (_m, f) => new AccessKeyAlreadyExists(f.accessKeyId as string));
registerRpcError("NoSuchAccessKey", (_m, f) => new NoSuchAccessKey(f.accessKeyId as string));

export function createMetadataRpcRoutes(store: MetadataStore): RpcRoutes {
  const json: NonNullable<RpcRoutes["json"]> = {};
  for (const method of METHODS) {
    json[ROUTE_PREFIX + method] = async (body) => {
      const args = Array.isArray(body) ? body : [];
      return (store[method] as (...parameters: unknown[]) => Promise<unknown>).apply(store, args);
    };
  }
  return { json };
}

export function remoteMetadataStore(client: RpcClient): MetadataStore {
  const store: Record<string, unknown> = {
    close: async () => client.close(),
  };
  for (const method of METHODS) {
    store[method] = async (...args: unknown[]) => client.call(ROUTE_PREFIX + method, args);
  }
  return store as unknown as MetadataStore;
}
