/**
 * CopyObject and the copy source shared with UploadPartCopy. The bytes are streamed from the
 * source's needles into new needles (no sharing), so deleting either object never affects
 * the other.
 */
import { createHash } from "node:crypto";
import { newChecksummer, parseChecksumAlgorithm, PUT_OBJECT_SIZE_BYTES_MAX, type ChecksumAlgorithm } from "../base/index.js";
import type { EcScheme } from "../ec/index.js";
import { ecSchemeFor } from "./storage-class.js";
import { NULL_VERSION_ID, type Bucket, type ObjectVersion } from "../meta/index.js";
import { mayAccess, requireBucket } from "./access.js";
import { header, principalId, type GatewayServices, type RequestContext } from "./context.js";
import { inlineFields, keptInline, newVersionId, readWriteCondition, verifiedInlineData, versionIdHeader } from "./object-ops.js";
import { readObjectHeaders } from "./object-headers.js";
import { sendXml } from "./responses.js";
import { s3Errors, s3ErrorWithMessage } from "./s3-errors.js";
import { parseTaggingHeader, validateBucketName, validateObjectKey } from "./validation.js";
import { isoTimestamp, renderXml } from "./xml.js";

export interface CopySource {
  bucket: Bucket;
  version: ObjectVersion;
}

/** x-amz-copy-source: "[/]bucket/key[?versionId=id]", URL-encoded. */
export async function resolveCopySource(ctx: RequestContext, services: GatewayServices): Promise<CopySource> {
  const raw = header(ctx, "x-amz-copy-source")!;
  const questionMark = raw.indexOf("?");
  const pathPart = questionMark < 0 ? raw : raw.slice(0, questionMark);
  const queryPart = questionMark < 0 ? "" : raw.slice(questionMark + 1);
  let decoded: string;
  try {
    decoded = decodeURIComponent(pathPart.replace(/^\//, ""));
  } catch {
    throw s3ErrorWithMessage(s3Errors.invalidArgument, "Invalid copy source encoding", { ArgumentName: "x-amz-copy-source" });
  }
  const slash = decoded.indexOf("/");
  if (slash <= 0 || slash === decoded.length - 1) {
    throw s3ErrorWithMessage(s3Errors.invalidArgument, "Copy Source must mention the source bucket and key: sourcebucket/sourcekey", {
      ArgumentName: "x-amz-copy-source",
      ArgumentValue: raw,
    });
  }
  const bucketName = decoded.slice(0, slash);
  const key = decoded.slice(slash + 1);
  validateBucketName(bucketName);
  validateObjectKey(key);
  const versionId = new URLSearchParams(queryPart).get("versionId") ?? undefined;
  const bucket = await services.meta.getBucket(bucketName);
  if (bucket === undefined) throw s3Errors.noSuchBucket({ BucketName: bucketName });
  const version = await services.meta.getObjectVersion(bucketName, key, versionId);
  const readable = mayAccess(ctx, bucket, "owner") || (version !== undefined && mayAccess(ctx, bucket, "read-object"));
  if (!readable) throw s3Errors.accessDenied();
  if (version === undefined || (version.isDeleteMarker && versionId === undefined)) {
    if (versionId !== undefined) throw s3Errors.noSuchVersion({ Key: key, VersionId: versionId });
    throw s3Errors.noSuchKey({ Key: key });
  }
  if (version.isDeleteMarker) {
    throw s3ErrorWithMessage(s3Errors.invalidRequest, "The source of a copy request may not specifically refer to a delete marker by version id.");
  }
  checkCopySourceConditions(ctx, version);
  return { bucket, version };
}

function etagListMatches(list: string, etag: string): boolean {
  return list.split(",").some((candidate) => {
    const trimmed = candidate.trim();
    return trimmed === "*" || trimmed.replace(/^"|"$/g, "") === etag;
  });
}

/** x-amz-copy-source-if-*: every failed condition is 412 PreconditionFailed, as AWS answers. */
function checkCopySourceConditions(ctx: RequestContext, version: ObjectVersion): void {
  const ifMatch = header(ctx, "x-amz-copy-source-if-match");
  const ifNoneMatch = header(ctx, "x-amz-copy-source-if-none-match");
  const ifModifiedSince = header(ctx, "x-amz-copy-source-if-modified-since");
  const ifUnmodifiedSince = header(ctx, "x-amz-copy-source-if-unmodified-since");
  const lastModifiedSeconds = Math.floor(version.lastModifiedMs / 1000);
  const failed = () => s3Errors.preconditionFailed({ Condition: "x-amz-copy-source-If" });
  if (ifMatch !== undefined) {
    if (!etagListMatches(ifMatch, version.etag)) throw failed();
  } else if (ifUnmodifiedSince !== undefined) {
    const sinceMs = Date.parse(ifUnmodifiedSince);
    if (!Number.isNaN(sinceMs) && lastModifiedSeconds > Math.floor(sinceMs / 1000)) throw failed();
  }
  if (ifNoneMatch !== undefined) {
    if (etagListMatches(ifNoneMatch, version.etag)) throw failed();
  } else if (ifModifiedSince !== undefined) {
    const sinceMs = Date.parse(ifModifiedSince);
    if (!Number.isNaN(sinceMs) && lastModifiedSeconds <= Math.floor(sinceMs / 1000)) throw failed();
  }
}

/** Stream a byte range of a stored version into new needles, hashing MD5 (and a checksum) on the way. */
export async function copyBytes(
  services: GatewayServices,
  source: ObjectVersion,
  range: { startByte: number; endByteExclusive: number },
  checksumAlgorithm: ChecksumAlgorithm | undefined,
  ec: EcScheme | null,
  /** Keep a copy this small in the metadata row (GatewayServices.inlineObjectBytesMax); default 0. */
  inlineBytesMax = 0,
): Promise<{ chunks: ObjectVersion["chunks"]; inlineData: Buffer | undefined; sizeBytes: number; md5Hex: string; checksumBase64: string | undefined }> {
  const md5 = createHash("md5");
  const checksummer = checksumAlgorithm ? newChecksummer(checksumAlgorithm) : undefined;
  const pieces =
    source.inlineData !== undefined
      ? [verifiedInlineData(source).subarray(range.startByte, range.endByteExclusive)]
      : services.dataRouter.readRange(source.chunks, range.startByte, range.endByteExclusive);
  async function* hashed(): AsyncGenerator<Buffer> {
    for await (const piece of pieces) {
      md5.update(piece);
      checksummer?.update(piece);
      yield piece;
    }
  }
  const sizeBytes = range.endByteExclusive - range.startByte;
  let inlineData: Buffer | undefined;
  if (keptInline(sizeBytes, ec, inlineBytesMax)) {
    const read: Buffer[] = [];
    for await (const piece of hashed()) read.push(piece);
    inlineData = Buffer.concat(read);
  }
  const written =
    inlineData !== undefined
      ? { chunks: [], sizeBytes: inlineData.length }
      : await services.dataRouter.writeBody(hashed(), { sizeBytesMax: PUT_OBJECT_SIZE_BYTES_MAX, ec });
  return {
    chunks: written.chunks,
    inlineData,
    sizeBytes: written.sizeBytes,
    md5Hex: md5.digest("hex"),
    checksumBase64: checksummer?.digest().toString("base64"),
  };
}

export async function copyObject(ctx: RequestContext, services: GatewayServices): Promise<void> {
  const bucket = await requireBucket(ctx, services, "owner");
  const key = ctx.target.key!;
  validateObjectKey(key);
  const source = await resolveCopySource(ctx, services);
  if (source.version.sizeBytes > PUT_OBJECT_SIZE_BYTES_MAX) {
    throw s3ErrorWithMessage(s3Errors.invalidRequest, "The specified copy source is larger than the maximum allowable size for a copy source: 5368709120");
  }
  const metadataDirective = (header(ctx, "x-amz-metadata-directive") ?? "COPY").toUpperCase();
  const taggingDirective = (header(ctx, "x-amz-tagging-directive") ?? "COPY").toUpperCase();
  if (metadataDirective !== "COPY" && metadataDirective !== "REPLACE") {
    throw s3ErrorWithMessage(s3Errors.invalidArgument, "Unknown metadata directive.", { ArgumentName: "x-amz-metadata-directive" });
  }
  if (taggingDirective !== "COPY" && taggingDirective !== "REPLACE") {
    throw s3ErrorWithMessage(s3Errors.invalidArgument, "Unknown tagging directive.", { ArgumentName: "x-amz-tagging-directive" });
  }
  const replacing = readObjectHeaders(ctx);
  const sameObject = source.bucket.name === bucket.name && source.version.key === key && header(ctx, "x-amz-copy-source")?.includes("versionId=") !== true;
  if (sameObject && metadataDirective === "COPY" && header(ctx, "x-amz-storage-class") === undefined) {
    throw s3ErrorWithMessage(
      s3Errors.invalidRequest,
      "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes.",
    );
  }
  const condition = readWriteCondition(ctx);
  const requestedAlgorithm = header(ctx, "x-amz-checksum-algorithm");
  const checksumAlgorithm = requestedAlgorithm !== undefined ? parseChecksumAlgorithm(requestedAlgorithm) : source.version.checksum?.algorithm;
  if (requestedAlgorithm !== undefined && checksumAlgorithm === undefined) {
    throw s3ErrorWithMessage(s3Errors.invalidRequest, "Checksum algorithm provided is unsupported.");
  }
  const storageClass = header(ctx, "x-amz-storage-class") !== undefined ? replacing.storageClass : source.version.storageClass;
  const ec = ecSchemeFor(storageClass, bucket, services.defaultEc);
  const copied = await copyBytes(
    services,
    source.version,
    { startByte: 0, endByteExclusive: source.version.sizeBytes },
    checksumAlgorithm,
    ec,
    services.inlineObjectBytesMax,
  );
  const tags =
    taggingDirective === "REPLACE" ? parseTaggingHeader(header(ctx, "x-amz-tagging") ?? "") : { ...source.version.tags };
  const versionId = bucket.versioning === "Enabled" ? newVersionId() : NULL_VERSION_ID;
  const useSource = metadataDirective === "COPY";
  const version: ObjectVersion = {
    bucket: bucket.name,
    key,
    versionId,
    isDeleteMarker: false,
    sizeBytes: copied.sizeBytes,
    etag: copied.md5Hex,
    lastModifiedMs: services.clock.nowMs(),
    ownerId: principalId(ctx.principal),
    storageClass,
    contentType: useSource ? source.version.contentType : replacing.contentType,
    systemMetadata: useSource ? { ...source.version.systemMetadata } : replacing.systemMetadata,
    userMetadata: useSource ? { ...source.version.userMetadata } : replacing.userMetadata,
    tags,
    checksum:
      checksumAlgorithm !== undefined && copied.checksumBase64 !== undefined
        ? { algorithm: checksumAlgorithm, value: copied.checksumBase64, type: "FULL_OBJECT" }
        : undefined,
    partSizesBytes: undefined,
    chunks: copied.chunks,
    ...inlineFields(copied.inlineData),
  };
  try {
    await services.meta.putObjectVersion(version, condition);
  } catch (error) {
    await services.dataRouter.deleteChunks(copied.chunks);
    throw error;
  }
  services.garbageCollector?.runOnce().catch(() => undefined);
  const checksumElement = version.checksum ? { [`Checksum${version.checksum.algorithm}`]: version.checksum.value } : {};
  sendXml(
    ctx,
    200,
    renderXml("CopyObjectResult", { ETag: `"${version.etag}"`, LastModified: isoTimestamp(version.lastModifiedMs), ...checksumElement }),
    {
      ...versionIdHeader(bucket, versionId),
      ...(source.bucket.versioning !== "Unversioned" ? { "x-amz-copy-source-version-id": source.version.versionId } : {}),
    },
  );
}
