/**
 * The one operating error of the auth layer. `reason` is named exactly after the S3 error code
 * AWS answers for the situation, so the S3 edge maps it 1:1 without a table of its own guesses.
 *
 * | reason                              | HTTP | when (AWS's behaviour, as observed and documented)                    |
 * | ----------------------------------- | ---- | --------------------------------------------------------------------- |
 * | AccessDenied                        | 403  | presigned URL expired / not yet valid; no valid date; unsigned x-amz-* |
 * | AuthorizationHeaderMalformed        | 400  | Authorization header unparsable, bad scope, credential date mismatch  |
 * | AuthorizationQueryParametersError   | 400  | presigned query parameters missing/invalid, X-Amz-Expires > 7 days    |
 * | BadDigest                           | 400  | trailing x-amz-checksum-* does not match the decoded body             |
 * | IncompleteBody                      | 400  | aws-chunked framing malformed or truncated; decoded length mismatch   |
 * | InvalidAccessKeyId                  | 403  | access key id unknown                                                 |
 * | InvalidArgument                     | 400  | unknown x-amz-content-sha256 value; two auth mechanisms; bad scheme   |
 * | InvalidChunkSizeError               | 400  | a signed chunk other than the last is below 8 KiB, or above our max  |
 * | InvalidRequest                      | 400  | missing x-amz-content-sha256; unsupported x-amz-trailer; SigV2/SigV4a |
 * | MalformedTrailerError               | 400  | trailer section not well formed or not the one x-amz-trailer declared |
 * | MissingContentLength                | 411  | streaming upload without a valid x-amz-decoded-content-length        |
 * | RequestTimeTooSkewed                | 403  | header-signed request dated more than 15 minutes from our clock       |
 * | SignatureDoesNotMatch               | 403  | request, chunk or trailer signature does not verify                   |
 * | XAmzContentSHA256Mismatch           | 400  | signed payload's SHA-256 differs from x-amz-content-sha256            |
 *
 * Not used on purpose: MissingSecurityHeader (AWS answers a missing x-amz-content-sha256 with
 * InvalidRequest "Missing required header for this request: x-amz-content-sha256") and
 * InvalidDigest (that is Content-MD5, which the S3 layer owns).
 */
export type AuthErrorReason =
  | "AccessDenied"
  | "AuthorizationHeaderMalformed"
  | "AuthorizationQueryParametersError"
  | "BadDigest"
  | "IncompleteBody"
  | "InvalidAccessKeyId"
  | "InvalidArgument"
  | "InvalidChunkSizeError"
  | "InvalidRequest"
  | "MalformedTrailerError"
  | "MissingContentLength"
  | "RequestTimeTooSkewed"
  | "SignatureDoesNotMatch"
  | "XAmzContentSHA256Mismatch";

export class AuthError extends Error {
  override name = "AuthError";
  /**
   * Extra elements AWS puts in the error body (e.g. StringToSign, CanonicalRequest,
   * NumberBytesExpected, ArgumentName). Never secrets: they are safe to send to the client.
   */
  readonly details: Readonly<Record<string, string>>;

  constructor(
    readonly reason: AuthErrorReason,
    message: string,
    details: Record<string, string> = {},
  ) {
    super(message);
    this.details = details;
  }
}

/** The messages AWS sends, kept in one place so every path uses the same words. */
export const AUTH_MESSAGES = {
  signatureDoesNotMatch:
    "The request signature we calculated does not match the signature you provided. Check your key and signing method.",
  invalidAccessKeyId: "The AWS Access Key Id you provided does not exist in our records.",
  requestTimeTooSkewed: "The difference between the request time and the current time is too large.",
  requestExpired: "Request has expired",
  requestNotYetValid: "Request is not valid yet",
  missingDate: "AWS authentication requires a valid Date or x-amz-date header",
  headersNotSigned: "There were headers present in the request which were not signed",
  missingContentSha256: "Missing required header for this request: x-amz-content-sha256",
  invalidContentSha256:
    "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-UNSIGNED-PAYLOAD-TRAILER, " +
    "STREAMING-AWS4-HMAC-SHA256-PAYLOAD, STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER, " +
    "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD, STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD-TRAILER " +
    "or a valid sha256 value.",
  contentSha256Mismatch: "The provided 'x-amz-content-sha256' header does not match what was computed.",
  unsupportedMechanism:
    "The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256.",
  twoMechanisms:
    "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query string " +
    "parameter or the Authorization header should be specified",
  queryParametersMissing:
    "Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, X-Amz-Signature, " +
    "X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters.",
  missingContentLength: "You must provide the Content-Length HTTP header.",
  bodyTerminated: "The request body terminated unexpectedly",
  bodyLengthMismatch: "You did not provide the number of bytes specified by the Content-Length HTTP header",
  malformedTrailer:
    "The request contained trailing data that was not well-formed or did not conform to our published schema.",
  unsupportedTrailer: "The value specified in the x-amz-trailer header is not supported",
  singleChecksumHeader: "Expecting a single x-amz-checksum- header",
  chunkTooSmall: "Only the last chunk is allowed to have a size less than 8192 bytes",
} as const;
