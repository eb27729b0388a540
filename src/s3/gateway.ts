/**
 * The S3 gateway's HTTP handler: parse the request, authenticate it, route it to one
 * S3Operation, dispatch with one exhaustive switch, and turn any error into AWS's XML.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { log, newRequestId, unreachable } from "../base/index.js";
import { verifyRequest } from "../auth/index.js";
import { createBucket, deleteBucket, getBucketLocation, headBucket, listBuckets } from "./bucket-ops.js";
import type { GatewayServices, Principal, RequestContext } from "./context.js";
import { toS3Error } from "./error-edge.js";
import {
  deleteBucketTagging,
  deleteObjectTagging,
  getBucketAcl,
  getBucketTagging,
  getBucketVersioning,
  getObjectAcl,
  getObjectTagging,
  putBucketAcl,
  putBucketTagging,
  putBucketVersioning,
  putObjectAcl,
  putObjectTagging,
} from "./bucket-config-ops.js";
import { copyObject } from "./copy-object.js";
import { deleteObjects } from "./delete-objects.js";
import { listObjectsV1, listObjectsV2, listObjectVersions } from "./list-ops.js";
import {
  abortMultipartUpload,
  completeMultipartUpload,
  createMultipartUpload,
  listMultipartUploads,
  listParts,
  uploadPart,
  uploadPartCopy,
} from "./multipart.js";
import { deleteObject, getOrHeadObject, putObject } from "./object-ops.js";
import { parseTarget, routeRequest, type S3OperationName } from "./router.js";
import type { S3Error } from "./s3-errors.js";
import { commonHeaders, HOST_ID } from "./responses.js";
import { escapeXml } from "./xml.js";


/** The query of every request without one; never changed (no handler sets query parameters). */
const NO_QUERY = new URLSearchParams();

export function createS3Handler(services: GatewayServices): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    void handle(services, req, res);
  };
}

async function handle(services: GatewayServices, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const requestId = newRequestId();
  const method = (req.method ?? "GET").toUpperCase();
  const rawUrl = req.url ?? "/";
  const questionMark = rawUrl.indexOf("?");
  const rawPath = questionMark < 0 ? rawUrl : rawUrl.slice(0, questionMark);
  const query = questionMark < 0 ? NO_QUERY : new URLSearchParams(rawUrl.slice(questionMark + 1));
  let resource = rawPath;
  let operation: S3OperationName | undefined;
  try {
    const target = parseTarget({ rawPath, host: req.headers.host, domains: services.domains });
    resource = target.resource;
    const route = routeRequest({ method, target, query, hasCopySource: req.headers["x-amz-copy-source"] !== undefined });
    operation = route.operation;
    const nowMs = services.clock.nowMs();
    const auth = await verifyRequest({ method, rawUrl, headers: req.headers, rawHeaders: req.rawHeaders, nowMs }, (accessKeyId) =>
      services.lookupCredentials(accessKeyId),
    );
    const principal: Principal =
      auth.kind === "anonymous" ? { kind: "anonymous" } : { kind: "user", userId: auth.userId, isRoot: auth.userId === services.rootUserId };
    const ctx: RequestContext = { req, res, requestId, method, target, query, headers: req.headers, auth, principal, nowMs };
    // Expect: 100-continue is answered by node's http server itself, before this handler runs.
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
      return listObjectVersions(ctx, services);
    case "GetBucketVersioning":
      return getBucketVersioning(ctx, services);
    case "PutBucketVersioning":
      return putBucketVersioning(ctx, services);
    case "GetBucketTagging":
      return getBucketTagging(ctx, services);
    case "PutBucketTagging":
      return putBucketTagging(ctx, services);
    case "DeleteBucketTagging":
      return deleteBucketTagging(ctx, services);
    case "GetBucketAcl":
      return getBucketAcl(ctx, services);
    case "PutBucketAcl":
      return putBucketAcl(ctx, services);
    case "ListMultipartUploads":
      return listMultipartUploads(ctx, services);
    case "DeleteObjects":
      return deleteObjects(ctx, services);
    case "CopyObject":
      return copyObject(ctx, services);
    case "GetObjectTagging":
      return getObjectTagging(ctx, services);
    case "PutObjectTagging":
      return putObjectTagging(ctx, services);
    case "DeleteObjectTagging":
      return deleteObjectTagging(ctx, services);
    case "GetObjectAcl":
      return getObjectAcl(ctx, services);
    case "PutObjectAcl":
      return putObjectAcl(ctx, services);
    case "CreateMultipartUpload":
      return createMultipartUpload(ctx, services);
    case "UploadPart":
      return uploadPart(ctx, services);
    case "UploadPartCopy":
      return uploadPartCopy(ctx, services);
    case "CompleteMultipartUpload":
      return completeMultipartUpload(ctx, services);
    case "AbortMultipartUpload":
      return abortMultipartUpload(ctx, services);
    case "ListParts":
      return listParts(ctx, services);
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
    ...commonHeaders(requestId),
    ...error.headers,
    ...(method === "HEAD" ? {} : { "Content-Type": "application/xml" }),
    "Content-Length": String(body.length),
    // A body we did not read would be taken for the next request; close instead of reusing.
    ...(req.complete ? {} : { Connection: "close" }),
  });
  res.end(body);
}

/**
 * Errors of the HTTP layer itself (a body cut short, a malformed request line). When a
 * request is in flight its handler answers; otherwise we answer here in S3's format rather
 * than with node's bare 400, then close.
 */
export function handleClientError(error: NodeJS.ErrnoException, socket: import("node:stream").Duplex): void {
  if ((socket as { _httpMessage?: unknown })._httpMessage) return;
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const requestId = newRequestId();
  const incomplete = error.code === "HPE_INVALID_EOF_STATE" || error.code === "ECONNRESET";
  const code = incomplete ? "IncompleteBody" : "InvalidRequest";
  const message = incomplete
    ? "You did not provide the number of bytes specified by the Content-Length HTTP header"
    : "The request could not be parsed.";
  const body = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message><RequestId>${requestId}</RequestId><HostId>${HOST_ID}</HostId></Error>`;
  socket.end(
    `HTTP/1.1 400 Bad Request\r\nContent-Type: application/xml\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
      `x-amz-request-id: ${requestId}\r\nConnection: close\r\n\r\n${body}`,
  );
}
