/**
 * Bucket and object sub-resources: versioning, tagging and canned ACLs.
 * ACLs: only the canned `private` and `public-read` exist here; `public-read` lets anyone GET
 * and HEAD objects (of the bucket, or of the one object). Grant-style ACL bodies are 501.
 */
import { BUCKET_STORAGE_CLASS_TAG, parseLayoutName } from "./storage-class.js";
import type { Bucket, ObjectVersion } from "../meta/index.js";
import { requireBucket } from "./access.js";
import { readCannedAcl, readXmlBody } from "./bucket-ops.js";
import { header, type GatewayServices, type RequestContext } from "./context.js";
import { sendEmpty, sendXml } from "./responses.js";
import { s3Errors, s3ErrorWithMessage } from "./s3-errors.js";
import { validateObjectKey, validateTags } from "./validation.js";
import { asArray, renderXml } from "./xml.js";

/** The object ACL lives with the version, under this system metadata name. */
export const OBJECT_ACL_METADATA = "x-amz-acl";

export async function putBucketVersioning(ctx: RequestContext, services: GatewayServices): Promise<void> {
  const bucket = await requireBucket(ctx, services, "owner");
  const body = await readXmlBody(ctx);
  const configuration = body?.VersioningConfiguration as Record<string, unknown> | undefined;
  if (configuration === undefined || typeof configuration !== "object") throw s3Errors.malformedXml();
  const status = configuration.Status;
  if (status !== "Enabled" && status !== "Suspended") throw s3Errors.malformedXml();
  await services.meta.updateBucket(bucket.name, { versioning: status });
  sendEmpty(ctx, 200);
}

export async function getBucketVersioning(ctx: RequestContext, services: GatewayServices): Promise<void> {
  const bucket = await requireBucket(ctx, services, "owner");
  sendXml(ctx, 200, renderXml("VersioningConfiguration", bucket.versioning === "Unversioned" ? {} : { Status: bucket.versioning }));
}

/** Tagging/TagSet/Tag[Key, Value] from a request body, validated as AWS does. */
async function readTagSet(ctx: RequestContext): Promise<Record<string, string>> {
  const body = await readXmlBody(ctx);
  const tagging = body?.Tagging as Record<string, unknown> | undefined;
  if (tagging === undefined || typeof tagging !== "object") throw s3Errors.malformedXml();
  const tagSet = tagging.TagSet as Record<string, unknown> | "" | undefined;
  const tags: Record<string, string> = {};
  const entries = tagSet === undefined || tagSet === "" ? [] : asArray(tagSet.Tag as Record<string, unknown> | Array<Record<string, unknown>>);
  for (const entry of entries) {
    const key = entry.Key;
    const value = entry.Value ?? "";
    if (typeof key !== "string" || typeof value !== "string") throw s3Errors.malformedXml();
    if (key in tags) throw s3ErrorWithMessage(s3Errors.invalidTag, "Cannot provide multiple Tags with the same key");
    tags[key] = value;
  }
  validateTags(tags);
  return tags;
}

function renderTagging(tags: Record<string, string>): string {
  return renderXml("Tagging", { TagSet: { Tag: Object.entries(tags).map(([Key, Value]) => ({ Key, Value })) } });
}

export async function putBucketTagging(ctx: RequestContext, services: GatewayServices): Promise<void> {
  const bucket = await requireBucket(ctx, services, "owner");
  const tags = await readTagSet(ctx);
  const storageClass = tags[BUCKET_STORAGE_CLASS_TAG];
  if (storageClass !== undefined && parseLayoutName(storageClass) === undefined) {
    throw s3ErrorWithMessage(s3Errors.invalidTag, `The ${BUCKET_STORAGE_CLASS_TAG} tag must be STANDARD or EC:<k>+<m> with k + m <= 20`);
  }
  await services.meta.updateBucket(bucket.name, { tags });
  sendEmpty(ctx, 204);
}

export async function getBucketTagging(ctx: RequestContext, services: GatewayServices): Promise<void> {
  const bucket = await requireBucket(ctx, services, "owner");
  if (Object.keys(bucket.tags).length === 0) {
    throw s3ErrorWithMessage(s3Errors.noSuchTagSet, "The TagSet does not exist", { BucketName: bucket.name });
  }
  sendXml(ctx, 200, renderTagging(bucket.tags));
}

export async function deleteBucketTagging(ctx: RequestContext, services: GatewayServices): Promise<void> {
  const bucket = await requireBucket(ctx, services, "owner");
  await services.meta.updateBucket(bucket.name, { tags: {} });
  sendEmpty(ctx, 204);
}

async function existingVersion(ctx: RequestContext, services: GatewayServices, bucket: Bucket): Promise<ObjectVersion> {
  const key = ctx.target.key!;
  validateObjectKey(key);
  const versionId = ctx.query.get("versionId") ?? undefined;
  const version = await services.meta.getObjectVersion(bucket.name, key, versionId);
  if (version === undefined || (version.isDeleteMarker && versionId === undefined)) {
    if (versionId !== undefined) throw s3Errors.noSuchVersion({ Key: key, VersionId: versionId });
    throw s3Errors.noSuchKey({ Key: key });
  }
  if (version.isDeleteMarker) throw s3Errors.methodNotAllowed();
  return version;
}

function versionHeader(bucket: Bucket, versionId: string): Record<string, string> {
  return bucket.versioning === "Unversioned" ? {} : { "x-amz-version-id": versionId };
}

export async function putObjectTagging(ctx: RequestContext, services: GatewayServices): Promise<void> {
  const bucket = await requireBucket(ctx, services, "owner");
  const version = await existingVersion(ctx, services, bucket);
  const tags = await readTagSet(ctx);
  const taggedVersionId = await services.meta.setObjectTags(bucket.name, version.key, version.versionId, tags);
  sendEmpty(ctx, 200, versionHeader(bucket, taggedVersionId));
}

export async function getObjectTagging(ctx: RequestContext, services: GatewayServices): Promise<void> {
  const bucket = await requireBucket(ctx, services, "owner");
  const version = await existingVersion(ctx, services, bucket);
  sendXml(ctx, 200, renderTagging(version.tags), versionHeader(bucket, version.versionId));
}

export async function deleteObjectTagging(ctx: RequestContext, services: GatewayServices): Promise<void> {
  const bucket = await requireBucket(ctx, services, "owner");
  const version = await existingVersion(ctx, services, bucket);
  await services.meta.setObjectTags(bucket.name, version.key, version.versionId, {});
  sendEmpty(ctx, 204, versionHeader(bucket, version.versionId));
}

function renderAcl(ownerId: string, acl: string): string {
  const grants = [
    { Grantee: { ID: ownerId, DisplayName: ownerId }, Permission: "FULL_CONTROL" },
    ...(acl === "public-read" ? [{ Grantee: { URI: "http://acs.amazonaws.com/groups/global/AllUsers" }, Permission: "READ" }] : []),
  ];
  return renderXml("AccessControlPolicy", { Owner: { ID: ownerId, DisplayName: ownerId }, AccessControlList: { Grant: grants } }).replace(
    /<Grantee>/g,
    '<Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="CanonicalUser">',
  ).replace(
    /<Grantee xmlns:xsi="http:\/\/www.w3.org\/2001\/XMLSchema-instance" xsi:type="CanonicalUser"><URI>/g,
    '<Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="Group"><URI>',
  );
}

/** Only canned ACLs: an ACL body or grant headers are not implemented. */
async function readPutAcl(ctx: RequestContext): Promise<"private" | "public-read"> {
  const grantHeaders = Object.keys(ctx.headers).filter((name) => name.startsWith("x-amz-grant-"));
  const body = await readXmlBody(ctx);
  if (grantHeaders.length > 0 || (body !== undefined && header(ctx, "x-amz-acl") === undefined)) {
    // An AccessControlPolicy that only restates the owner's FULL_CONTROL is "private".
    const text = JSON.stringify(body ?? {});
    if (grantHeaders.length === 0 && !text.includes("AllUsers") && !text.includes("AuthenticatedUsers") && !text.includes("EmailAddress")) {
      return "private";
    }
    throw s3ErrorWithMessage(s3Errors.notImplemented, "Only the canned ACLs private and public-read are implemented.");
  }
  return readCannedAcl(ctx);
}

export async function putBucketAcl(ctx: RequestContext, services: GatewayServices): Promise<void> {
  const bucket = await requireBucket(ctx, services, "owner");
  const acl = await readPutAcl(ctx);
  await services.meta.updateBucket(bucket.name, { acl });
  sendEmpty(ctx, 200);
}

export async function getBucketAcl(ctx: RequestContext, services: GatewayServices): Promise<void> {
  const bucket = await requireBucket(ctx, services, "owner");
  sendXml(ctx, 200, renderAcl(bucket.ownerId, bucket.acl));
}

export async function getObjectAcl(ctx: RequestContext, services: GatewayServices): Promise<void> {
  const bucket = await requireBucket(ctx, services, "owner");
  const version = await existingVersion(ctx, services, bucket);
  sendXml(ctx, 200, renderAcl(version.ownerId, version.systemMetadata[OBJECT_ACL_METADATA] ?? "private"), versionHeader(bucket, version.versionId));
}

export async function putObjectAcl(ctx: RequestContext, services: GatewayServices): Promise<void> {
  const bucket = await requireBucket(ctx, services, "owner");
  const version = await existingVersion(ctx, services, bucket);
  const acl = await readPutAcl(ctx);
  const systemMetadata = { ...version.systemMetadata };
  if (acl === "public-read") systemMetadata[OBJECT_ACL_METADATA] = acl;
  else delete systemMetadata[OBJECT_ACL_METADATA];
  // Rewriting the version's row keeps its id and data; only its ACL changes.
  await services.meta.setObjectSystemMetadata(bucket.name, version.key, version.versionId, systemMetadata);
  sendEmpty(ctx, 200, versionHeader(bucket, version.versionId));
}
