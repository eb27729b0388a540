/**
 * The S3 gateway's HTTP handler: parse the request, authenticate it, route it to one
 * S3Operation, dispatch with one exhaustive switch, and turn any error into AWS's XML.
 */
import { randomBytes } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { log, newRequestId, unreachable } from "../base/index.js";
import { verifyRequest } from "../auth/index.js";
import { createBucket, deleteBucket, getBucketLocation, headBucket, listBuckets } from "./bucket-ops.js";
import type { GatewayServices, Principal, RequestContext } from "./context.js";
import { toS3Error } from "./error-edge.js";
import { listObjectsV1, listObjectsV2 } from "./list-ops.js";
import { deleteObject, getOrHeadObject, putObject } from "./object-ops.js";
import { parseTarget, routeRequest, type S3OperationName } from "./router.js";
import { S3Error, s3Errors, s3ErrorWithMessage } from "./s3-errors.js";
import { escapeXml } from "./xml.js";

const HOST_ID = randomBytes(24).toString("base64");

export function createS3Handler(services: GatewayServices): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    void handle(services, req, res);
  };
}

async function handle(services: GatewayServices, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const requestId = newRequestId();
  res.setHeader("x-amz-request-id", requestId);
  res.setHeader("x-amz-id-2", HOST_ID);
  res.setHeader("Server", "Cairn");
  const method = (req.method ?? "GET").toUpperCase();
  const rawUrl = req.url ?? "/";
  const questionMark = rawUrl.indexOf("?");
  const rawPath = questionMark < 0 ? rawUrl : rawUrl.slice(0, questionMark);
  const query = new URLSearchParams(questionMark < 0 ? "" : rawUrl.slice(questionMark + 1));
  let resource = rawPath;
  let operation: S3OperationName | undefined;
  try {
    const target = parseTarget({ rawPath, host: req.headers.host, domains: services.domains });
    resource = target.resource;
    const route = routeRequest({ method, target, query, hasCopySource: req.headers["x-amz-copy-source"] !== undefined });
    operation = route.operation;
    const nowMs = services.clock.nowMs();
    const auth = await verifyRequest({ method, rawUrl, headers: req.headers, nowMs }, (accessKeyId) =>
      services.lookupCredentials(accessKeyId),
    );
    const principal: Principal =
      auth.kind === "anonymous" ? { kind: "anonymous" } : { kind: "user", userId: auth.userId, isRoot: auth.userId === services.rootUserId };
    const ctx: RequestContext = { req, res, requestId, method, target, query, headers: req.headers, auth, principal, nowMs };
    if (req.headers.expect?.toLowerCase() === "100-continue") res.writeContinue();
    await dispatch(ctx, services, route.operation);
  } catch (error) {
    sendError(req, res, method, toS3Error(error, requestId), requestId, resource);
  } finally {
    log.debug({ requestId, method, url: rawUrl, operation, status: res.statusCode }, "request");
  }
}

async function dispatch(ctx: RequestContext, services: GatewayServices, operation: S3OperationName): Promise<void> {
  switch (operation) {
    case "ListBuckets":
      return listBuckets(ctx, services);
    case "CreateBucket":
      return createBucket(ctx, services);
    case "HeadBucket":
      return headBucket(ctx, services);
    case "DeleteBucket":
      return deleteBucket(ctx, services);
    case "GetBucketLocation":
      return getBucketLocation(ctx, services);
    case "ListObjectsV2":
      return listObjectsV2(ctx, services);
    case "ListObjects":
      return listObjectsV1(ctx, services);
    case "PutObject":
      return putObject(ctx, services);
    case "GetObject":
    case "HeadObject":
      return getOrHeadObject(ctx, services);
    case "DeleteObject":
      return deleteObject(ctx, services);
    case "ListObjectVersions":
    case "GetBucketVersioning":
    case "PutBucketVersioning":
    case "GetBucketTagging":
    case "PutBucketTagging":
    case "DeleteBucketTagging":
    case "GetBucketAcl":
    case "PutBucketAcl":
    case "ListMultipartUploads":
    case "DeleteObjects":
    case "CopyObject":
    case "GetObjectTagging":
    case "PutObjectTagging":
    case "DeleteObjectTagging":
    case "GetObjectAcl":
    case "PutObjectAcl":
    case "CreateMultipartUpload":
    case "UploadPart":
    case "UploadPartCopy":
    case "CompleteMultipartUpload":
    case "AbortMultipartUpload":
    case "ListParts":
      throw s3ErrorWithMessage(s3Errors.notImplemented, `${operation} is not implemented yet.`);
    default:
      unreachable(operation, "unrouted S3 operation");
  }
}

function sendError(req: IncomingMessage, res: ServerResponse, method: string, error: S3Error, requestId: string, resource: string): void {
  if (res.headersSent) {
    // The status line is gone; all we can do is cut the body short so the client notices.
    res.destroy();
    return;
  }
  const details = Object.entries(error.details)
    .map(([name, value]) => `<${name}>${escapeXml(value)}</${name}>`)
    .join("");
  const body =
    method === "HEAD"
      ? Buffer.alloc(0)
      : Buffer.from(
          `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${error.code}</Code><Message>${escapeXml(error.message)}</Message>` +
            `${details}<Resource>${escapeXml(resource)}</Resource><RequestId>${requestId}</RequestId><HostId>${HOST_ID}</HostId></Error>`,
        );
  res.writeHead(error.statusCode, {
    ...error.headers,
    ...(method === "HEAD" ? {} : { "Content-Type": "application/xml" }),
    "Content-Length": String(body.length),
    // A body we did not read would be taken for the next request; close instead of reusing.
    ...(req.complete ? {} : { Connection: "close" }),
  });
  res.end(body);
}
