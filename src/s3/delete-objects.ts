/** DeleteObjects: up to 1000 keys in one request, each deleted as DeleteObject would. */
import { createHash } from "node:crypto";
import { LIST_KEYS_COUNT_MAX, newChecksummer, parseChecksumAlgorithm } from "../base/index.js";
import { requireBucket } from "./access.js";
import { readSmallBody } from "./bucket-ops.js";
import { header, type GatewayServices, type RequestContext } from "./context.js";
import { deleteOneObject } from "./object-ops.js";
import { sendXml } from "./responses.js";
import { s3Errors, s3ErrorWithMessage } from "./s3-errors.js";
import { toS3Error } from "./error-edge.js";
import { validateObjectKey } from "./validation.js";
import { asArray, parseXml, renderXml, type XmlNode } from "./xml.js";

/** AWS requires an integrity check on this call: Content-MD5 or an x-amz-checksum-* header. */
function verifyIntegrity(ctx: RequestContext, body: Buffer): void {
  const contentMd5 = header(ctx, "content-md5");
  if (contentMd5 !== undefined) {
    if (createHash("md5").update(body).digest("base64") !== contentMd5) throw s3Errors.badDigest();
    return;
  }
  for (const [name, value] of Object.entries(ctx.headers)) {
    if (!name.startsWith("x-amz-checksum-") || name === "x-amz-checksum-mode" || name === "x-amz-checksum-type" || typeof value !== "string") continue;
    const algorithm = parseChecksumAlgorithm(name.slice("x-amz-checksum-".length));
    if (algorithm === undefined) continue;
    const checksummer = newChecksummer(algorithm);
    checksummer.update(body);
    if (checksummer.digest().toString("base64") !== value) {
      throw s3ErrorWithMessage(s3Errors.badDigest, `The ${algorithm} you specified did not match the calculated checksum.`);
    }
    return;
  }
  throw s3ErrorWithMessage(s3Errors.invalidRequest, "Missing required header for this request: Content-MD5 OR x-amz-checksum-*");
}

export async function deleteObjects(ctx: RequestContext, services: GatewayServices): Promise<void> {
  const bucket = await requireBucket(ctx, services, "owner");
  const body = await readSmallBody(ctx);
  verifyIntegrity(ctx, body);
  const parsed = parseXml(body.toString("utf8"));
  const request = parsed?.Delete as Record<string, unknown> | undefined;
  if (request === undefined || typeof request !== "object") throw s3Errors.malformedXml();
  const objects = asArray(request.Object as Record<string, unknown> | Array<Record<string, unknown>>);
  if (objects.length === 0 || objects.length > LIST_KEYS_COUNT_MAX) throw s3Errors.malformedXml();
  const quiet = String(request.Quiet ?? "false").toLowerCase() === "true";
  const results: Array<[string, XmlNode]> = [];
  for (const object of objects) {
    const key = object.Key;
    const versionId = typeof object.VersionId === "string" && object.VersionId !== "" ? object.VersionId : undefined;
    if (typeof key !== "string") throw s3Errors.malformedXml();
    try {
      validateObjectKey(key);
      const result = await deleteOneObject(ctx, services, { bucket, key, versionId });
      if (quiet) continue;
      const deleted: XmlNode = { Key: key };
      if (versionId !== undefined) deleted.VersionId = versionId;
      if (result.deleteMarker !== undefined) {
        deleted.DeleteMarker = true;
        deleted.DeleteMarkerVersionId = result.deleteMarker.versionId;
      } else if (versionId !== undefined && result.removed?.isDeleteMarker) {
        deleted.DeleteMarker = true;
        deleted.DeleteMarkerVersionId = versionId;
      }
      results.push(["Deleted", deleted]);
    } catch (error) {
      const s3Error = toS3Error(error, ctx.requestId);
      results.push(["Error", { Key: key, ...(versionId !== undefined ? { VersionId: versionId } : {}), Code: s3Error.code, Message: s3Error.message }]);
    }
  }
  services.garbageCollector?.runOnce().catch(() => undefined);
  sendXml(ctx, 200, renderXml("DeleteResult", { "#ordered": results }));
}
