/**
 * Request -> S3Operation. The target (bucket, key) comes from the path (path-style) or the
 * Host header (virtual-host style); the operation from the method, the target and the
 * sub-resource query parameters, as in AWS's REST API. One exhaustive switch in gateway.ts
 * dispatches the result.
 */
import { s3Errors, s3ErrorWithMessage } from "./s3-errors.js";

export type S3OperationName =
  | "ListBuckets"
  | "CreateBucket"
  | "HeadBucket"
  | "DeleteBucket"
  | "ListObjectsV2"
  | "ListObjects"
  | "ListObjectVersions"
  | "GetBucketLocation"
  | "GetBucketVersioning"
  | "PutBucketVersioning"
  | "GetBucketTagging"
  | "PutBucketTagging"
  | "DeleteBucketTagging"
  | "GetBucketAcl"
  | "PutBucketAcl"
  | "ListMultipartUploads"
  | "DeleteObjects"
  | "PutObject"
  | "CopyObject"
  | "GetObject"
  | "HeadObject"
  | "DeleteObject"
  | "GetObjectTagging"
  | "PutObjectTagging"
  | "DeleteObjectTagging"
  | "GetObjectAcl"
  | "PutObjectAcl"
  | "CreateMultipartUpload"
  | "UploadPart"
  | "UploadPartCopy"
  | "CompleteMultipartUpload"
  | "AbortMultipartUpload"
  | "ListParts";

export interface S3Target {
  bucket: string | undefined;
  key: string | undefined;
  /** The path-style resource string for error bodies ("/bucket/key"). */
  resource: string;
}

export interface S3Route {
  operation: S3OperationName;
  target: S3Target;
}

/** Sub-resources we recognise but do not serve; they answer NotImplemented (501). */
const UNSUPPORTED_SUBRESOURCES = [
  "accelerate", "analytics", "cors", "encryption", "intelligent-tiering", "inventory", "lifecycle",
  "logging", "metrics", "notification", "object-lock", "ownershipControls", "policy", "policyStatus",
  "publicAccessBlock", "replication", "requestPayment", "website", "legal-hold", "retention",
  "torrent", "restore", "select", "attributes", "session", "metadataTable",
];

export function parseTarget(input: { rawPath: string; host: string | undefined; domains: readonly string[] }): S3Target {
  let hostBucket: string | undefined;
  if (input.host !== undefined) {
    const hostname = input.host.replace(/:\d+$/, "").toLowerCase();
    for (const domain of input.domains) {
      if (hostname.endsWith("." + domain)) {
        hostBucket = hostname.slice(0, -(domain.length + 1));
        break;
      }
    }
  }
  const path = decodePath(input.rawPath);
  if (hostBucket !== undefined) {
    const key = path.length > 1 ? path.slice(1) : undefined;
    return { bucket: hostBucket, key, resource: `/${hostBucket}${key === undefined ? "" : "/" + key}` };
  }
  if (path === "/" || path === "") return { bucket: undefined, key: undefined, resource: "/" };
  const slash = path.indexOf("/", 1);
  if (slash < 0) return { bucket: path.slice(1), key: undefined, resource: path };
  const bucket = path.slice(1, slash);
  const key = path.slice(slash + 1);
  return { bucket, key: key === "" ? undefined : key, resource: path };
}

/** Percent-decode a path; '+' stays '+' (only query strings use '+' for space). */
function decodePath(rawPath: string): string {
  try {
    return decodeURIComponent(rawPath);
  } catch {
    throw s3ErrorWithMessage(s3Errors.invalidArgument, "The request path is not valid percent-encoded UTF-8.");
  }
}

export function routeRequest(input: {
  method: string;
  target: S3Target;
  query: URLSearchParams;
  /** x-amz-copy-source is present: PUT copies instead of uploading. */
  hasCopySource: boolean;
}): S3Route {
  const { method, target, query } = input;
  const has = (name: string) => query.has(name);
  const route = (operation: S3OperationName): S3Route => ({ operation, target });
  for (const name of UNSUPPORTED_SUBRESOURCES) {
    if (has(name)) throw s3ErrorWithMessage(s3Errors.notImplemented, `The ${name} sub-resource is not implemented.`);
  }
  if (target.bucket === undefined) {
    if (method === "GET") return route("ListBuckets");
    throw s3Errors.methodNotAllowed();
  }
  if (target.key === undefined) {
    switch (method) {
      case "GET":
        if (has("location")) return route("GetBucketLocation");
        if (has("versioning")) return route("GetBucketVersioning");
        if (has("tagging")) return route("GetBucketTagging");
        if (has("acl")) return route("GetBucketAcl");
        if (has("uploads")) return route("ListMultipartUploads");
        if (has("versions")) return route("ListObjectVersions");
        if (query.get("list-type") === "2") return route("ListObjectsV2");
        return route("ListObjects");
      case "HEAD":
        return route("HeadBucket");
      case "PUT":
        if (has("versioning")) return route("PutBucketVersioning");
        if (has("tagging")) return route("PutBucketTagging");
        if (has("acl")) return route("PutBucketAcl");
        return route("CreateBucket");
      case "DELETE":
        if (has("tagging")) return route("DeleteBucketTagging");
        return route("DeleteBucket");
      case "POST":
        if (has("delete")) return route("DeleteObjects");
        break;
    }
    throw s3Errors.methodNotAllowed();
  }
  switch (method) {
    case "GET":
      if (has("uploadId")) return route("ListParts");
      if (has("tagging")) return route("GetObjectTagging");
      if (has("acl")) return route("GetObjectAcl");
      return route("GetObject");
    case "HEAD":
      return route("HeadObject");
    case "PUT":
      if (has("partNumber") && has("uploadId")) return route(input.hasCopySource ? "UploadPartCopy" : "UploadPart");
      if (has("tagging")) return route("PutObjectTagging");
      if (has("acl")) return route("PutObjectAcl");
      return route(input.hasCopySource ? "CopyObject" : "PutObject");
    case "DELETE":
      if (has("uploadId")) return route("AbortMultipartUpload");
      if (has("tagging")) return route("DeleteObjectTagging");
      return route("DeleteObject");
    case "POST":
      if (has("uploads")) return route("CreateMultipartUpload");
      if (has("uploadId")) return route("CompleteMultipartUpload");
      break;
  }
  throw s3Errors.methodNotAllowed();
}
