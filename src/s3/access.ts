/**
 * Who may do what. A bucket belongs to its creator; the root user may act on every bucket
 * (it is the operator); anyone may read objects of a public-read bucket; everything else is
 * AccessDenied. Anonymous requests to buckets that do not exist get NoSuchBucket, as in AWS.
 */
import type { Bucket } from "../meta/index.js";
import type { GatewayServices, RequestContext } from "./context.js";
import { s3Errors } from "./s3-errors.js";

export type Access = "read-object" | "owner";

export async function requireBucket(ctx: RequestContext, services: GatewayServices, access: Access): Promise<Bucket> {
  const name = ctx.target.bucket!;
  const bucket = await services.meta.getBucket(name);
  if (bucket === undefined) throw s3Errors.noSuchBucket({ BucketName: name });
  if (mayAccess(ctx, bucket, access)) return bucket;
  throw s3Errors.accessDenied();
}

export function mayAccess(ctx: RequestContext, bucket: Bucket, access: Access): boolean {
  const principal = ctx.principal;
  if (principal.kind === "user" && (principal.isRoot || principal.userId === bucket.ownerId)) return true;
  return access === "read-object" && bucket.acl === "public-read";
}

/** Bucket-level calls need a signed request whatever the bucket's ACL. */
export function requireAuthenticated(ctx: RequestContext): void {
  if (ctx.principal.kind === "anonymous") throw s3Errors.accessDenied();
}
