/**
 * The S3 error table: every error Cairn answers with, with AWS's code, HTTP status and message.
 * Only this folder knows S3 codes; inner layers raise typed operating errors that
 * error-edge.ts maps here.
 */
export class S3Error extends Error {
  override name = "S3Error";
  readonly code: string;
  readonly statusCode: number;
  /** Extra elements AWS puts in the XML body (BucketName, Key, ArgumentName, ...). */
  readonly details: Record<string, string>;
  /** Extra response headers (x-amz-delete-marker, Allow, ...). */
  readonly headers: Record<string, string>;

  constructor(input: {
    code: string;
    statusCode: number;
    message: string;
    details?: Record<string, string>;
    headers?: Record<string, string>;
  }) {
    super(input.message);
    this.code = input.code;
    this.statusCode = input.statusCode;
    this.details = input.details ?? {};
    this.headers = input.headers ?? {};
  }
}

function make(code: string, statusCode: number, message: string) {
  return (details?: Record<string, string>, headers?: Record<string, string>) =>
    new S3Error({ code, statusCode, message, ...(details ? { details } : {}), ...(headers ? { headers } : {}) });
}

export const s3Errors = {
  accessDenied: make("AccessDenied", 403, "Access Denied"),
  requestExpired: make("AccessDenied", 403, "Request has expired"),
  authorizationHeaderMalformed: make("AuthorizationHeaderMalformed", 400, "The authorization header is malformed."),
  authorizationQueryParametersError: make(
    "AuthorizationQueryParametersError",
    400,
    "Error parsing the X-Amz-Credential parameter; the query parameters are malformed.",
  ),
  badDigest: make("BadDigest", 400, "The Content-MD5 you specified did not match what we received."),
  badChecksum: make("BadDigest", 400, "The checksum you specified did not match the calculated checksum."),
  bucketAlreadyExists: make(
    "BucketAlreadyExists",
    409,
    "The requested bucket name is not available. The bucket namespace is shared by all users of the system. Please select a different name and try again.",
  ),
  bucketAlreadyOwnedByYou: make(
    "BucketAlreadyOwnedByYou",
    409,
    "Your previous request to create the named bucket succeeded and you already own it.",
  ),
  bucketNotEmpty: make("BucketNotEmpty", 409, "The bucket you tried to delete is not empty"),
  entityTooLarge: make("EntityTooLarge", 400, "Your proposed upload exceeds the maximum allowed size"),
  entityTooSmall: make("EntityTooSmall", 400, "Your proposed upload is smaller than the minimum allowed object size."),
  incompleteBody: make("IncompleteBody", 400, "You did not provide the number of bytes specified by the Content-Length HTTP header"),
  internalError: make("InternalError", 500, "We encountered an internal error. Please try again."),
  invalidAccessKeyId: make("InvalidAccessKeyId", 403, "The AWS Access Key Id you provided does not exist in our records."),
  invalidArgument: make("InvalidArgument", 400, "Invalid Argument"),
  invalidTag: make("InvalidTag", 400, "The tag provided was not a valid tag."),
  invalidStorageClass: make("InvalidStorageClass", 400, "The storage class you specified is not valid"),
  invalidBucketName: make("InvalidBucketName", 400, "The specified bucket is not valid."),
  invalidDigest: make("InvalidDigest", 400, "The Content-MD5 you specified is not valid."),
  invalidPart: make(
    "InvalidPart",
    400,
    "One or more of the specified parts could not be found.  The part may not have been uploaded, or the specified entity tag may not match the part's entity tag.",
  ),
  invalidPartNumber: make("InvalidPartNumber", 416, "The requested partnumber is not satisfiable"),
  invalidPartOrder: make("InvalidPartOrder", 400, "The list of parts was not in ascending order. Parts must be ordered by part number."),
  invalidRange: make("InvalidRange", 416, "The requested range is not satisfiable"),
  invalidRequest: make("InvalidRequest", 400, "Invalid Request"),
  keyTooLong: make("KeyTooLongError", 400, "Your key is too long"),
  malformedXml: make(
    "MalformedXML",
    400,
    "The XML you provided was not well-formed or did not validate against our published schema",
  ),
  metadataTooLarge: make("MetadataTooLarge", 400, "Your metadata headers exceed the maximum allowed metadata size."),
  methodNotAllowed: make("MethodNotAllowed", 405, "The specified method is not allowed against this resource."),
  missingContentLength: make("MissingContentLength", 411, "You must provide the Content-Length HTTP header."),
  missingSecurityHeader: make("MissingSecurityHeader", 400, "Your request was missing a required header"),
  noSuchBucket: make("NoSuchBucket", 404, "The specified bucket does not exist"),
  noSuchKey: make("NoSuchKey", 404, "The specified key does not exist."),
  noSuchUpload: make(
    "NoSuchUpload",
    404,
    "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.",
  ),
  noSuchTagSet: make("NoSuchTagSet", 404, "The TagSet does not exist"),
  noSuchVersion: make("NoSuchVersion", 404, "The specified version does not exist."),
  notImplemented: make("NotImplemented", 501, "A header you provided implies functionality that is not implemented"),
  preconditionFailed: make("PreconditionFailed", 412, "At least one of the pre-conditions you specified did not hold"),
  requestTimeout: make(
    "RequestTimeout",
    400,
    "Your socket connection to the server was not read from or written to within the timeout period.",
  ),
  requestTimeTooSkewed: make(
    "RequestTimeTooSkewed",
    403,
    "The difference between the request time and the current time is too large.",
  ),
  serviceUnavailable: make("ServiceUnavailable", 503, "Please reduce your request rate."),
  signatureDoesNotMatch: make(
    "SignatureDoesNotMatch",
    403,
    "The request signature we calculated does not match the signature you provided. Check your key and signing method.",
  ),
  xAmzContentSha256Mismatch: make(
    "XAmzContentSHA256Mismatch",
    400,
    "The provided 'x-amz-content-sha256' header does not match what was computed.",
  ),
} as const;

/** An S3Error with a specific message (for InvalidArgument and friends whose text varies). */
export function s3ErrorWithMessage(
  base: (details?: Record<string, string>) => S3Error,
  message: string,
  details?: Record<string, string>,
): S3Error {
  const template = base();
  return new S3Error({ code: template.code, statusCode: template.statusCode, message, ...(details ? { details } : {}) });
}
