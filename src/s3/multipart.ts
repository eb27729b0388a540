/**
 * Multipart upload: CreateMultipartUpload, UploadPart, UploadPartCopy, CompleteMultipartUpload,
 * AbortMultipartUpload, ListParts, ListMultipartUploads.
 *
 * Parts are stored as chunks like any object body; Complete stitches the parts' chunk lists
 * into one version in a single metadata transaction, so no byte is copied and a crash either
 * leaves the upload open or the object complete. Checksums: COMPOSITE (checksum of the parts'
 * checksums, "-N") for CRC32, CRC32C, SHA1 and SHA256; FULL_OBJECT multipart checksums are
 * answered NotImplemented (they need CRC combination, not built yet).
 */
import { ecSchemeFor } from "./storage-class.js";
import { createHash } from "node:crypto";
import {
  LIST_KEYS_COUNT_MAX,
  newChecksummer,
  parseChecksumAlgorithm,
  PART_SIZE_BYTES_MAX,
  PART_SIZE_BYTES_MIN,
  UPLOAD_PART_COUNT_MAX,
  uuidV7Bytes,
  type ChecksumAlgorithm,
} from "../base/index.js";
import { NULL_VERSION_ID, type MultipartUpload, type ObjectVersion, type Part } from "../meta/index.js";
import { requireBucket } from "./access.js";
import { readXmlBody } from "./bucket-ops.js";
import { header, principalId, type GatewayServices, type RequestContext } from "./context.js";
import { copyBytes, resolveCopySource } from "./copy-object.js";
import { readObjectHeaders } from "./object-headers.js";
import { checksumResponseHeaders, newVersionId, readWriteCondition, receiveBody, versionIdHeader } from "./object-ops.js";
import { sendEmpty, sendXml } from "./responses.js";
import { s3Errors, s3ErrorWithMessage } from "./s3-errors.js";
import { parseIntegerArgument, parseTaggingHeader, validateObjectKey } from "./validation.js";
import { asArray, isoTimestamp, renderXml, type XmlNode } from "./xml.js";

function newUploadId(): string {
  return uuidV7Bytes().toString("base64url");
}

async function requireUpload(ctx: RequestContext, services: GatewayServices, bucketName: string): Promise<MultipartUpload> {
  const uploadId = ctx.query.get("uploadId") ?? "";
  const upload = await services.meta.getMultipartUpload(bucketName, ctx.target.key!, uploadId);
  if (upload === undefined) throw s3Errors.noSuchUpload({ UploadId: uploadId });
  return upload;
}

function readPartNumber(ctx: RequestContext): number {
  const raw = ctx.query.get("partNumber");
  const partNumber = raw !== null && /^\d+$/.test(raw) ? Number(raw) : NaN;
  if (!(partNumber >= 1 && partNumber <= UPLOAD_PART_COUNT_MAX)) {
    throw s3ErrorWithMessage(s3Errors.invalidArgument, `Part number must be an integer between 1 and ${UPLOAD_PART_COUNT_MAX}, inclusive`, {
      ArgumentName: "partNumber",
      ArgumentValue: raw ?? "",
    });
  }
  return partNumber;
}

function owner(id: string): XmlNode {
  return { ID: id, DisplayName: id };
}

export async function createMultipartUpload(ctx: RequestContext, services: GatewayServices): Promise<void> {
  const bucket = await requireBucket(ctx, services, "owner");
  const key = ctx.target.key!;
  validateObjectKey(key);
  const objectHeaders = readObjectHeaders(ctx);
  const taggingHeader = header(ctx, "x-amz-tagging");
  const tags = taggingHeader === undefined ? {} : parseTaggingHeader(taggingHeader);
  const algorithmHeader = header(ctx, "x-amz-checksum-algorithm");
  const checksumAlgorithm = algorithmHeader === undefined ? undefined : parseChecksumAlgorithm(algorithmHeader);
  if (algorithmHeader !== undefined && checksumAlgorithm === undefined) {
    throw s3ErrorWithMessage(s3Errors.invalidRequest, "Checksum algorithm provided is unsupported.");
  }
  const checksumType = header(ctx, "x-amz-checksum-type")?.toUpperCase();
  if (checksumType === "FULL_OBJECT" || checksumAlgorithm === "CRC64NVME") {
    throw s3ErrorWithMessage(s3Errors.notImplemented, "FULL_OBJECT checksums for multipart uploads are not implemented; use a COMPOSITE checksum.");
  }
  const upload: MultipartUpload = {
    bucket: bucket.name,
    key,
    uploadId: newUploadId(),
    initiatedAtMs: services.clock.nowMs(),
    ownerId: principalId(ctx.principal),
    storageClass: objectHeaders.storageClass,
    contentType: objectHeaders.contentType,
    systemMetadata: objectHeaders.systemMetadata,
    userMetadata: objectHeaders.userMetadata,
    tags,
    checksumAlgorithm,
  };
  await services.meta.createMultipartUpload(upload);
  sendXml(
    ctx,
    200,
    renderXml("InitiateMultipartUploadResult", { Bucket: bucket.name, Key: key, UploadId: upload.uploadId }),
    checksumAlgorithm ? { "x-amz-checksum-algorithm": checksumAlgorithm, "x-amz-checksum-type": "COMPOSITE" } : {},
  );
}

export async function uploadPart(ctx: RequestContext, services: GatewayServices): Promise<void> {
  const bucket = await requireBucket(ctx, services, "owner");
  const partNumber = readPartNumber(ctx);
  const upload = await requireUpload(ctx, services, bucket.name);
  const ec = ecSchemeFor(upload.storageClass, bucket, services.defaultEc);
  const received = await receiveBody(ctx, services, PART_SIZE_BYTES_MAX, ec, { defaultChecksumAlgorithm: upload.checksumAlgorithm });
  if (upload.checksumAlgorithm !== undefined && received.checksum?.algorithm !== upload.checksumAlgorithm) {
    await services.dataRouter.deleteChunks(received.chunks);
    throw s3ErrorWithMessage(
      s3Errors.invalidRequest,
      `Checksum Type mismatch occurred, expected checksum Type: ${upload.checksumAlgorithm.toLowerCase()}, actual checksum Type: ${received.checksum?.algorithm.toLowerCase() ?? "none"}`,
    );
  }
  const part: Part = {
    uploadId: upload.uploadId,
    partNumber,
    sizeBytes: received.sizeBytes,
    etag: received.md5Hex,
    lastModifiedMs: services.clock.nowMs(),
    checksum: received.checksum,
    chunks: received.chunks,
  };
  try {
    await services.meta.putPart(bucket.name, upload.key, part);
  } catch (error) {
    await services.dataRouter.deleteChunks(received.chunks);
    throw error;
  }
  services.garbageCollector?.runOnce().catch(() => undefined);
  sendEmpty(ctx, 200, { ETag: `"${part.etag}"`, ...checksumResponseHeaders(received.checksum) });
}

export async function uploadPartCopy(ctx: RequestContext, services: GatewayServices): Promise<void> {
  const bucket = await requireBucket(ctx, services, "owner");
  const partNumber = readPartNumber(ctx);
  const upload = await requireUpload(ctx, services, bucket.name);
  const source = await resolveCopySource(ctx, services);
  let startByte = 0;
  let endByteExclusive = source.version.sizeBytes;
  const rangeHeader = header(ctx, "x-amz-copy-source-range");
  if (rangeHeader !== undefined) {
    const match = /^bytes=(\d+)-(\d+)$/.exec(rangeHeader.trim());
    if (match === null) {
      throw s3ErrorWithMessage(s3Errors.invalidArgument, "The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy", {
        ArgumentName: "x-amz-copy-source-range",
        ArgumentValue: rangeHeader,
      });
    }
    startByte = Number(match[1]);
    endByteExclusive = Number(match[2]) + 1;
    if (endByteExclusive <= startByte || endByteExclusive > source.version.sizeBytes) {
      throw s3ErrorWithMessage(s3Errors.invalidRange, "The requested range is not satisfiable", {
        RangeRequested: rangeHeader,
        ActualObjectSize: String(source.version.sizeBytes),
      });
    }
  }
  if (endByteExclusive - startByte > PART_SIZE_BYTES_MAX) throw s3Errors.entityTooLarge();
  const ec = ecSchemeFor(upload.storageClass, bucket, services.defaultEc);
  const copied = await copyBytes(services, source.version, { startByte, endByteExclusive }, upload.checksumAlgorithm, ec);
  const part: Part = {
    uploadId: upload.uploadId,
    partNumber,
    sizeBytes: copied.sizeBytes,
    etag: copied.md5Hex,
    lastModifiedMs: services.clock.nowMs(),
    checksum:
      upload.checksumAlgorithm !== undefined && copied.checksumBase64 !== undefined
        ? { algorithm: upload.checksumAlgorithm, value: copied.checksumBase64, type: "FULL_OBJECT" }
        : undefined,
    chunks: copied.chunks,
  };
  try {
    await services.meta.putPart(bucket.name, upload.key, part);
  } catch (error) {
    await services.dataRouter.deleteChunks(copied.chunks);
    throw error;
  }
  sendXml(
    ctx,
    200,
    renderXml("CopyPartResult", {
      ETag: `"${part.etag}"`,
      LastModified: isoTimestamp(part.lastModifiedMs),
      ...(part.checksum ? { [`Checksum${part.checksum.algorithm}`]: part.checksum.value } : {}),
    }),
    source.bucket.versioning !== "Unversioned" ? { "x-amz-copy-source-version-id": source.version.versionId } : {},
  );
}

interface RequestedPart {
  partNumber: number;
  etag: string;
  checksums: Partial<Record<ChecksumAlgorithm, string>>;
}

async function readCompleteRequest(ctx: RequestContext): Promise<RequestedPart[]> {
  const body = await readXmlBody(ctx);
  const complete = body?.CompleteMultipartUpload as Record<string, unknown> | undefined;
  if (complete === undefined || typeof complete !== "object") throw s3Errors.malformedXml();
  const parts = asArray(complete.Part as Record<string, unknown> | Array<Record<string, unknown>>);
  if (parts.length === 0 || parts.length > UPLOAD_PART_COUNT_MAX) throw s3Errors.malformedXml();
  return parts.map((part) => {
    const partNumber = Number(part.PartNumber);
    if (typeof part.PartNumber !== "string" || !Number.isInteger(partNumber) || typeof part.ETag !== "string") throw s3Errors.malformedXml();
    const checksums: Partial<Record<ChecksumAlgorithm, string>> = {};
    for (const algorithm of ["CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256"] as const) {
      const value = part[`Checksum${algorithm}`];
      if (typeof value === "string") checksums[algorithm] = value;
    }
    return { partNumber, etag: part.ETag.trim().replace(/^"|"$/g, "").replace(/^&quot;|&quot;$/g, ""), checksums };
  });
}

export async function completeMultipartUpload(ctx: RequestContext, services: GatewayServices): Promise<void> {
  const bucket = await requireBucket(ctx, services, "owner");
  const upload = await requireUpload(ctx, services, bucket.name);
  const requested = await readCompleteRequest(ctx);
  const condition = readWriteCondition(ctx);
  const stored = new Map((await services.meta.getParts(upload.uploadId)).map((part) => [part.partNumber, part]));
  for (let index = 1; index < requested.length; index++) {
    if (requested[index]!.partNumber <= requested[index - 1]!.partNumber) throw s3Errors.invalidPartOrder({ UploadId: upload.uploadId });
  }
  const chosen: Part[] = [];
  for (const [index, request] of requested.entries()) {
    const part = stored.get(request.partNumber);
    if (part === undefined || part.etag !== request.etag) {
      throw s3Errors.invalidPart({ UploadId: upload.uploadId, PartNumber: String(request.partNumber), ETag: request.etag });
    }
    for (const [algorithm, value] of Object.entries(request.checksums)) {
      if (part.checksum === undefined || part.checksum.algorithm !== algorithm || part.checksum.value !== value) {
        throw s3ErrorWithMessage(s3Errors.invalidPart, `The ${algorithm} checksum of part ${request.partNumber} does not match the uploaded part.`, {
          UploadId: upload.uploadId,
          PartNumber: String(request.partNumber),
        });
      }
    }
    const isLast = index === requested.length - 1;
    if (!isLast && part.sizeBytes < PART_SIZE_BYTES_MIN) {
      throw s3Errors.entityTooSmall({
        ProposedSize: String(part.sizeBytes),
        MinSizeAllowed: String(PART_SIZE_BYTES_MIN),
        PartNumber: String(part.partNumber),
        ETag: part.etag,
      });
    }
    chosen.push(part);
  }
  const etagHash = createHash("md5");
  for (const part of chosen) etagHash.update(Buffer.from(part.etag, "hex"));
  const etag = `${etagHash.digest("hex")}-${chosen.length}`;
  let checksum: ObjectVersion["checksum"];
  if (upload.checksumAlgorithm !== undefined) {
    const composite = newChecksummer(upload.checksumAlgorithm);
    for (const part of chosen) composite.update(Buffer.from(part.checksum!.value, "base64"));
    checksum = { algorithm: upload.checksumAlgorithm, value: `${composite.digest().toString("base64")}-${chosen.length}`, type: "COMPOSITE" };
  }
  const versionId = bucket.versioning === "Enabled" ? newVersionId() : NULL_VERSION_ID;
  const version: ObjectVersion = {
    bucket: bucket.name,
    key: upload.key,
    versionId,
    isDeleteMarker: false,
    sizeBytes: chosen.reduce((sum, part) => sum + part.sizeBytes, 0),
    etag,
    lastModifiedMs: services.clock.nowMs(),
    ownerId: upload.ownerId,
    storageClass: upload.storageClass,
    contentType: upload.contentType,
    systemMetadata: upload.systemMetadata,
    userMetadata: upload.userMetadata,
    tags: upload.tags,
    checksum,
    partSizesBytes: chosen.map((part) => part.sizeBytes),
    chunks: chosen.flatMap((part) => part.chunks),
  };
  await services.meta.completeMultipartUpload(upload.uploadId, version, condition);
  services.garbageCollector?.runOnce().catch(() => undefined);
  const host = header(ctx, "host") ?? "localhost";
  sendXml(
    ctx,
    200,
    renderXml("CompleteMultipartUploadResult", {
      Location: `http://${host}/${encodeURIComponent(bucket.name)}/${upload.key.split("/").map(encodeURIComponent).join("/")}`,
      Bucket: bucket.name,
      Key: upload.key,
      ETag: `"${etag}"`,
      ...(checksum ? { [`Checksum${checksum.algorithm}`]: checksum.value, ChecksumType: checksum.type } : {}),
    }),
    versionIdHeader(bucket, versionId),
  );
}

export async function abortMultipartUpload(ctx: RequestContext, services: GatewayServices): Promise<void> {
  const bucket = await requireBucket(ctx, services, "owner");
  const upload = await requireUpload(ctx, services, bucket.name);
  await services.meta.abortMultipartUpload(bucket.name, upload.key, upload.uploadId);
  services.garbageCollector?.runOnce().catch(() => undefined);
  sendEmpty(ctx, 204);
}

export async function listParts(ctx: RequestContext, services: GatewayServices): Promise<void> {
  const bucket = await requireBucket(ctx, services, "owner");
  const upload = await requireUpload(ctx, services, bucket.name);
  const marker = parseIntegerArgument("part-number-marker", ctx.query.get("part-number-marker"), 0);
  const maxParts = Math.min(parseIntegerArgument("max-parts", ctx.query.get("max-parts"), LIST_KEYS_COUNT_MAX), LIST_KEYS_COUNT_MAX);
  const { parts, isTruncated } = maxParts === 0 ? { parts: [], isTruncated: false } : await services.meta.listParts(upload.uploadId, marker, maxParts);
  const last = parts[parts.length - 1];
  sendXml(
    ctx,
    200,
    renderXml("ListPartsResult", {
      Bucket: bucket.name,
      Key: upload.key,
      UploadId: upload.uploadId,
      Initiator: owner(upload.ownerId),
      Owner: owner(upload.ownerId),
      StorageClass: upload.storageClass,
      PartNumberMarker: marker,
      ...(last !== undefined ? { NextPartNumberMarker: last.partNumber } : {}),
      MaxParts: maxParts,
      IsTruncated: isTruncated,
      ...(upload.checksumAlgorithm ? { ChecksumAlgorithm: upload.checksumAlgorithm, ChecksumType: "COMPOSITE" } : {}),
      Part: parts.map((part) => ({
        PartNumber: part.partNumber,
        LastModified: isoTimestamp(part.lastModifiedMs),
        ETag: `"${part.etag}"`,
        Size: part.sizeBytes,
        ...(part.checksum ? { [`Checksum${part.checksum.algorithm}`]: part.checksum.value } : {}),
      })),
    }),
  );
}

export async function listMultipartUploads(ctx: RequestContext, services: GatewayServices): Promise<void> {
  const bucket = await requireBucket(ctx, services, "owner");
  const prefix = ctx.query.get("prefix") ?? "";
  const delimiter = ctx.query.get("delimiter") || undefined;
  const keyMarker = ctx.query.get("key-marker") || undefined;
  const uploadIdMarker = ctx.query.get("upload-id-marker") || undefined;
  const maxUploads = parseIntegerArgument("max-uploads", ctx.query.get("max-uploads"), LIST_KEYS_COUNT_MAX);
  const encodeUrl = ctx.query.get("encoding-type")?.toLowerCase() === "url";
  const encode = (value: string) => (encodeUrl ? encodeURIComponent(value).replace(/%2F/g, "/") : value);
  const result =
    maxUploads === 0
      ? { uploads: [], commonPrefixes: [], isTruncated: false, nextKeyMarker: undefined, nextUploadIdMarker: undefined }
      : await services.meta.listMultipartUploads({
          bucket: bucket.name,
          prefix,
          delimiter,
          keyMarker,
          uploadIdMarker: keyMarker === undefined ? undefined : uploadIdMarker,
          maxUploads: Math.min(maxUploads, LIST_KEYS_COUNT_MAX),
        });
  sendXml(
    ctx,
    200,
    renderXml("ListMultipartUploadsResult", {
      Bucket: bucket.name,
      KeyMarker: encode(keyMarker ?? ""),
      UploadIdMarker: uploadIdMarker ?? "",
      ...(result.isTruncated ? { NextKeyMarker: encode(result.nextKeyMarker ?? ""), NextUploadIdMarker: result.nextUploadIdMarker ?? "" } : {}),
      ...(delimiter !== undefined ? { Delimiter: encode(delimiter) } : {}),
      Prefix: encode(prefix),
      MaxUploads: maxUploads,
      ...(encodeUrl ? { EncodingType: "url" } : {}),
      IsTruncated: result.isTruncated,
      Upload: result.uploads.map((upload) => ({
        Key: encode(upload.key),
        UploadId: upload.uploadId,
        Initiator: owner(upload.ownerId),
        Owner: owner(upload.ownerId),
        StorageClass: upload.storageClass,
        Initiated: isoTimestamp(upload.initiatedAtMs),
        ...(upload.checksumAlgorithm ? { ChecksumAlgorithm: upload.checksumAlgorithm } : {}),
      })),
      CommonPrefixes: result.commonPrefixes.map((commonPrefix) => ({ Prefix: encode(commonPrefix) })),
    }),
  );
}
