/**
 * The one place where operating errors of inner layers become S3 errors. Anything not mapped
 * on purpose becomes InternalError with no internals in the body; assertion failures are
 * rethrown (the process stops: its state is unknown).
 */
import { AssertionError, log } from "../base/index.js";
import { AuthError } from "../auth/index.js";
import { ChecksumMismatch, DiskFull, NeedleNotFound } from "../cluster/index.js";
import {
  BucketAlreadyExists,
  BucketNotEmpty,
  NoSuchBucket,
  NoSuchKey,
  NoSuchUpload,
  NoSuchVersion,
  PreconditionFailed,
} from "../meta/index.js";
import { S3Error, s3Errors } from "./s3-errors.js";

/** HTTP status of each AuthError reason; the reason is AWS's error code. */
const AUTH_ERROR_STATUS: Record<string, number> = {
  AccessDenied: 403,
  SignatureDoesNotMatch: 403,
  InvalidAccessKeyId: 403,
  RequestTimeTooSkewed: 403,
  AuthorizationHeaderMalformed: 400,
  AuthorizationQueryParametersError: 400,
  MissingSecurityHeader: 400,
  InvalidArgument: 400,
  InvalidRequest: 400,
  XAmzContentSHA256Mismatch: 400,
  IncompleteBody: 400,
  BadDigest: 400,
  InvalidDigest: 400,
  MalformedTrailerError: 400,
  MissingContentLength: 411,
  InvalidChunkSizeError: 400,
  SignatureDoesNotMatchChunk: 403,
};

export function toS3Error(error: unknown, requestId: string): S3Error {
  if (error instanceof S3Error) return error;
  if (error instanceof AssertionError) throw error;
  if (error instanceof AuthError) {
    const status = AUTH_ERROR_STATUS[error.reason] ?? 400;
    return new S3Error({ code: error.reason, statusCode: status, message: error.message, details: error.details });
  }
  if (error instanceof NoSuchBucket) return s3Errors.noSuchBucket({ BucketName: error.bucket });
  if (error instanceof BucketNotEmpty) return s3Errors.bucketNotEmpty({ BucketName: error.bucket });
  if (error instanceof BucketAlreadyExists) return s3Errors.bucketAlreadyExists({ BucketName: error.bucket });
  if (error instanceof NoSuchKey) return s3Errors.noSuchKey({ Key: error.key });
  if (error instanceof NoSuchVersion) return s3Errors.noSuchVersion({ Key: error.key, VersionId: error.versionId });
  if (error instanceof NoSuchUpload) return s3Errors.noSuchUpload({ UploadId: error.uploadId });
  if (error instanceof PreconditionFailed) return s3Errors.preconditionFailed({ Condition: "If-Match" });
  if (error instanceof DiskFull) return s3Errors.serviceUnavailable();
  if (error instanceof NeedleNotFound || error instanceof ChecksumMismatch) {
    // Every replica failed to give us the bytes of an object the metadata says exists.
    log.error({ error, requestId }, "object data unavailable on every replica");
    return s3Errors.internalError();
  }
  log.error({ error, requestId }, "unmapped error reached the S3 edge");
  return s3Errors.internalError();
}
