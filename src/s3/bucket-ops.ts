/** CreateBucket, HeadBucket, DeleteBucket, ListBuckets, GetBucketLocation. */
import { pipeline, type Readable } from "node:stream";
import { readWholeBody, XML_BODY_SIZE_BYTES_MAX } from "../base/index.js";
import { createPayloadDecoder } from "../auth/index.js";
import { BucketAlreadyExists, type CannedAcl } from "../meta/index.js";
import { requireAuthenticated, requireBucket } from "./access.js";
import { header, principalId, type GatewayServices, type RequestContext } from "./context.js";
import { sendEmpty, sendXml } from "./responses.js";
import { s3Errors, s3ErrorWithMessage } from "./s3-errors.js";
import { validateBucketName } from "./validation.js";
import { isoTimestamp, parseXml, renderXml } from "./xml.js";

/**
 * Read a small request body whole (bounded by XML_BODY_SIZE_BYTES_MAX, else MalformedXML),
 * through the payload decoder: a signed body's SHA-256 is verified and aws-chunked framing
 * removed, as for object bodies.
 */
export function readSmallBody(ctx: RequestContext): Promise<Buffer> {
  const body = pipeline(ctx.req, createPayloadDecoder(ctx.auth, ctx.headers), () => undefined) as Readable;
  return readWholeBody(body, { sizeBytesMax: XML_BODY_SIZE_BYTES_MAX, tooLarge: () => s3Errors.malformedXml() });
}

/** Read a small XML request body, or MalformedXML; undefined when the body is empty. */
export async function readXmlBody(ctx: RequestContext): Promise<Record<string, unknown> | undefined> {
  const body = await readSmallBody(ctx);
  if (body.length === 0) return undefined;
  const parsed = parseXml(body.toString("utf8"));
  if (parsed === undefined) throw s3Errors.malformedXml();
  return parsed;
}

export function readCannedAcl(ctx: RequestContext): CannedAcl {
  const value = header(ctx, "x-amz-acl") ?? "private";
  if (value === "private" || value === "public-read") return value;
  throw s3ErrorWithMessage(s3Errors.notImplemented, `The canned ACL ${value} is not implemented; use private or public-read.`);
}

export async function createBucket(ctx: RequestContext, services: GatewayServices): Promise<void> {
  requireAuthenticated(ctx);
  const name = ctx.target.bucket!;
  validateBucketName(name);
  const acl = readCannedAcl(ctx);
  const body = await readXmlBody(ctx);
  let region = services.region;
  if (body !== undefined) {
    const configuration = body.CreateBucketConfiguration as Record<string, unknown> | undefined;
    if (configuration === undefined || typeof configuration !== "object") throw s3Errors.malformedXml();
    const constraint = configuration.LocationConstraint;
    if (typeof constraint === "string" && constraint !== "") region = constraint;
  }
  const ownerId = principalId(ctx.principal);
  try {
    await services.meta.createBucket({
      name,
      ownerId,
      createdAtMs: services.clock.nowMs(),
      region,
      versioning: "Unversioned",
      acl,
      tags: {},
    });
  } catch (error) {
    if (error instanceof BucketAlreadyExists) {
      if (error.ownerId === ownerId) throw s3Errors.bucketAlreadyOwnedByYou({ BucketName: name });
      throw s3Errors.bucketAlreadyExists({ BucketName: name });
    }
    throw error;
  }
  sendEmpty(ctx, 200, { Location: `/${name}` });
}

export async function headBucket(ctx: RequestContext, services: GatewayServices): Promise<void> {
  const bucket = await requireBucket(ctx, services, "read-object");
  sendEmpty(ctx, 200, { "x-amz-bucket-region": bucket.region });
}

export async function deleteBucket(ctx: RequestContext, services: GatewayServices): Promise<void> {
  requireAuthenticated(ctx);
  const bucket = await requireBucket(ctx, services, "owner");
  await services.meta.deleteBucket(bucket.name);
  sendEmpty(ctx, 204);
}

export async function listBuckets(ctx: RequestContext, services: GatewayServices): Promise<void> {
  requireAuthenticated(ctx);
  const ownerId = principalId(ctx.principal);
  const buckets = (await services.meta.listBuckets()).filter((bucket) => bucket.ownerId === ownerId);
  sendXml(
    ctx,
    200,
    renderXml("ListAllMyBucketsResult", {
      Owner: { ID: ownerId, DisplayName: ownerId },
      Buckets: { Bucket: buckets.map((bucket) => ({ Name: bucket.name, CreationDate: isoTimestamp(bucket.createdAtMs), BucketRegion: bucket.region })) },
    }),
  );
}

export async function getBucketLocation(ctx: RequestContext, services: GatewayServices): Promise<void> {
  const bucket = await requireBucket(ctx, services, "owner");
  // us-east-1 is reported as an empty LocationConstraint, as AWS does.
  const location = bucket.region === "us-east-1" ? "" : bucket.region;
  sendXml(ctx, 200, `<?xml version="1.0" encoding="UTF-8"?>\n<LocationConstraint xmlns="http://s3.amazonaws.com/doc/2006-03-01/">${location}</LocationConstraint>`);
}
