/** ListObjectsV2 and ListObjects (v1): one ordered index scan per page in the metadata store. */
import { LIST_KEYS_COUNT_MAX } from "../base/index.js";
import type { ListedObject, ListObjectsResult } from "../meta/index.js";
import { requireBucket } from "./access.js";
import type { GatewayServices, RequestContext } from "./context.js";
import { sendXml } from "./responses.js";
import { s3Errors, s3ErrorWithMessage } from "./s3-errors.js";
import { parseIntegerArgument } from "./validation.js";
import { isoTimestamp, MappedList, ORDERED, renderXmlInTurns, type XmlValue } from "./xml.js";

/** encoding-type=url: keys and prefixes in the response are URL-encoded (the aws CLI asks for it). */
function readEncoder(ctx: RequestContext): (value: string) => string {
  const encodingType = ctx.query.get("encoding-type");
  if (encodingType === null) return (value) => value;
  if (encodingType.toLowerCase() !== "url") {
    throw s3ErrorWithMessage(s3Errors.invalidArgument, "Invalid Encoding Method specified in Request", {
      ArgumentName: "encoding-type",
      ArgumentValue: encodingType,
    });
  }
  // S3 encodes like form values but keeps '/' readable; clients decode with unquote().
  return (value) => encodeURIComponent(value).replace(/%2F/g, "/");
}

/** The Contents elements, each node made as it is rendered. */
function contentsOf(result: ListObjectsResult, encode: (value: string) => string, fetchOwner: boolean): MappedList {
  return MappedList.of(result.objects, (object: ListedObject) => ({
    Key: encode(object.key),
    LastModified: isoTimestamp(object.lastModifiedMs),
    ETag: `"${object.etag}"`,
    ...(object.checksum ? { ChecksumAlgorithm: object.checksum.algorithm, ChecksumType: object.checksum.type } : {}),
    Size: object.sizeBytes,
    ...(fetchOwner ? { Owner: { ID: object.ownerId, DisplayName: object.ownerId } } : {}),
    StorageClass: object.storageClass,
  }));
}

function continuationToken(startAfter: string): string {
  return Buffer.from(startAfter, "utf8").toString("base64url");
}

function parseContinuationToken(token: string): string {
  const decoded = Buffer.from(token, "base64url").toString("utf8");
  if (token === "" || continuationToken(decoded) !== token) {
    throw s3ErrorWithMessage(s3Errors.invalidArgument, "The continuation token provided is incorrect", {
      ArgumentName: "continuation-token",
    });
  }
  return decoded;
}

async function listPage(
  services: GatewayServices,
  input: { bucket: string; prefix: string; delimiter: string | undefined; startAfter: string | undefined; maxKeys: number },
): Promise<ListObjectsResult> {
  if (input.maxKeys === 0) return { objects: [], commonPrefixes: [], isTruncated: false, nextStartAfter: undefined };
  return services.meta.listObjects({ ...input, maxKeys: Math.min(input.maxKeys, LIST_KEYS_COUNT_MAX) });
}

export async function listObjectsV2(ctx: RequestContext, services: GatewayServices): Promise<void> {
  const bucket = await requireBucket(ctx, services, "owner");
  const encode = readEncoder(ctx);
  const prefix = ctx.query.get("prefix") ?? "";
  const delimiter = ctx.query.get("delimiter") || undefined;
  const maxKeys = parseIntegerArgument("max-keys", ctx.query.get("max-keys"), LIST_KEYS_COUNT_MAX);
  const token = ctx.query.get("continuation-token");
  const startAfterArgument = ctx.query.get("start-after") ?? undefined;
  const fetchOwner = ctx.query.get("fetch-owner") === "true";
  const startAfter = token !== null ? parseContinuationToken(token) : startAfterArgument;
  const result = await listPage(services, { bucket: bucket.name, prefix, delimiter, startAfter, maxKeys });
  sendXml(
    ctx,
    200,
    await renderXmlInTurns("ListBucketResult", {
      Name: bucket.name,
      Prefix: encode(prefix),
      ...(delimiter !== undefined ? { Delimiter: encode(delimiter) } : {}),
      MaxKeys: maxKeys,
      ...(ctx.query.has("encoding-type") ? { EncodingType: "url" } : {}),
      KeyCount: result.objects.length + result.commonPrefixes.length,
      IsTruncated: result.isTruncated,
      ...(token !== null ? { ContinuationToken: token } : {}),
      ...(result.isTruncated && result.nextStartAfter !== undefined ? { NextContinuationToken: continuationToken(result.nextStartAfter) } : {}),
      ...(startAfterArgument !== undefined ? { StartAfter: encode(startAfterArgument) } : {}),
      Contents: contentsOf(result, encode, fetchOwner),
      CommonPrefixes: result.commonPrefixes.map((commonPrefix) => ({ Prefix: encode(commonPrefix) })),
    }),
  );
}

export async function listObjectsV1(ctx: RequestContext, services: GatewayServices): Promise<void> {
  const bucket = await requireBucket(ctx, services, "owner");
  const encode = readEncoder(ctx);
  const prefix = ctx.query.get("prefix") ?? "";
  const delimiter = ctx.query.get("delimiter") || undefined;
  const maxKeys = parseIntegerArgument("max-keys", ctx.query.get("max-keys"), LIST_KEYS_COUNT_MAX);
  const marker = ctx.query.get("marker") ?? "";
  const result = await listPage(services, { bucket: bucket.name, prefix, delimiter, startAfter: marker || undefined, maxKeys });
  sendXml(
    ctx,
    200,
    await renderXmlInTurns("ListBucketResult", {
      Name: bucket.name,
      Prefix: encode(prefix),
      Marker: encode(marker),
      ...(result.isTruncated && delimiter !== undefined && result.nextStartAfter !== undefined ? { NextMarker: encode(result.nextStartAfter) } : {}),
      MaxKeys: maxKeys,
      ...(delimiter !== undefined ? { Delimiter: encode(delimiter) } : {}),
      ...(ctx.query.has("encoding-type") ? { EncodingType: "url" } : {}),
      IsTruncated: result.isTruncated,
      Contents: contentsOf(result, encode, true),
      CommonPrefixes: result.commonPrefixes.map((commonPrefix) => ({ Prefix: encode(commonPrefix) })),
    }),
  );
}

export async function listObjectVersions(ctx: RequestContext, services: GatewayServices): Promise<void> {
  const bucket = await requireBucket(ctx, services, "owner");
  const encode = readEncoder(ctx);
  const prefix = ctx.query.get("prefix") ?? "";
  const delimiter = ctx.query.get("delimiter") || undefined;
  const maxKeys = parseIntegerArgument("max-keys", ctx.query.get("max-keys"), LIST_KEYS_COUNT_MAX);
  const keyMarker = ctx.query.get("key-marker") || undefined;
  const versionIdMarker = ctx.query.get("version-id-marker") || undefined;
  if (versionIdMarker !== undefined && keyMarker === undefined) {
    throw s3ErrorWithMessage(s3Errors.invalidArgument, "A version-id marker cannot be specified without a key marker.", {
      ArgumentName: "version-id-marker",
      ArgumentValue: versionIdMarker,
    });
  }
  const result =
    maxKeys === 0
      ? { versions: [], commonPrefixes: [], isTruncated: false, nextKeyMarker: undefined, nextVersionIdMarker: undefined }
      : await services.meta.listObjectVersions({
          bucket: bucket.name,
          prefix,
          delimiter,
          keyMarker,
          versionIdMarker,
          maxKeys: Math.min(maxKeys, LIST_KEYS_COUNT_MAX),
        });
  const entries: Array<[string, XmlValue]> = result.versions.map((version) => {
    const owner = { ID: version.ownerId, DisplayName: version.ownerId };
    if (version.isDeleteMarker) {
      return ["DeleteMarker", { Key: encode(version.key), VersionId: version.versionId, IsLatest: version.isLatest, LastModified: isoTimestamp(version.lastModifiedMs), Owner: owner }];
    }
    return [
      "Version",
      {
        Key: encode(version.key),
        VersionId: version.versionId,
        IsLatest: version.isLatest,
        LastModified: isoTimestamp(version.lastModifiedMs),
        ETag: `"${version.etag}"`,
        Size: version.sizeBytes,
        StorageClass: version.storageClass,
        Owner: owner,
        ...(version.checksum ? { ChecksumAlgorithm: version.checksum.algorithm, ChecksumType: version.checksum.type } : {}),
      },
    ];
  });
  sendXml(
    ctx,
    200,
    await renderXmlInTurns("ListVersionsResult", {
      Name: bucket.name,
      Prefix: encode(prefix),
      KeyMarker: encode(keyMarker ?? ""),
      VersionIdMarker: versionIdMarker ?? "",
      ...(result.isTruncated && result.nextKeyMarker !== undefined ? { NextKeyMarker: encode(result.nextKeyMarker) } : {}),
      ...(result.isTruncated && result.nextVersionIdMarker !== undefined ? { NextVersionIdMarker: result.nextVersionIdMarker } : {}),
      MaxKeys: maxKeys,
      ...(delimiter !== undefined ? { Delimiter: encode(delimiter) } : {}),
      ...(ctx.query.has("encoding-type") ? { EncodingType: "url" } : {}),
      IsTruncated: result.isTruncated,
      [ORDERED]: entries,
      CommonPrefixes: result.commonPrefixes.map((commonPrefix) => ({ Prefix: encode(commonPrefix) })),
    }),
  );
}
