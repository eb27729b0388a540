/**
 * Verification of AWS Signature Version 4 for S3: the Authorization header form and the
 * presigned query form. The result says who signed and how the body is framed; the body itself
 * is checked as it streams by payload-decoder.ts, using the signing context returned here.
 *
 * Canonicalization rules and the reasons for them are in canonical.ts.
 */
import { timingSafeEqual } from "node:crypto";
import type { IncomingHttpHeaders } from "node:http";
import { PRESIGNED_URL_EXPIRES_SECONDS_MAX, REQUEST_TIME_SKEW_MS_MAX, setInBoundedCache } from "../base/index.js";
import { AUTH_MESSAGES, AuthError } from "./auth-error.js";
import {
  canonicalHeaderValue,
  canonicalQueryString,
  canonicalRequest,
  canonicalUri,
  credentialScope,
  deriveSigningKey,
  formatAmzDate,
  hmacHex,
  parseAmzDate,
  parseQuery,
  requestStringToSign,
  SIGV4_ALGORITHM,
  SIGV4_SERVICE,
  SIGV4_TERMINATOR,
  type QueryParameter,
} from "./canonical.js";
import { headerText, parsePayloadMode, type PayloadMode } from "./payload-mode.js";

export interface AuthRequest {
  method: string;
  /** The request-target exactly as received: path + '?' + query, not decoded. */
  rawUrl: string;
  /** Node's lower-cased headers. */
  headers: IncomingHttpHeaders;
  /**
   * Node's rawHeaders, when available. Node joins repeated headers with ", ", which SigV4
   * joins with ","; with rawHeaders a header sent twice is canonicalized exactly.
   */
  rawHeaders?: readonly string[];
  nowMs: number;
}

export interface Credential {
  secretAccessKey: string;
  userId: string;
}

export type CredentialLookup = (accessKeyId: string) => Promise<Credential | undefined>;

/** What payload-decoder.ts needs to verify chunk and trailer signatures. */
export interface SigningContext {
  signingKey: Buffer;
  /** The request's own signature: the "previous signature" of the first chunk. */
  seedSignature: string;
  amzDate: string;
  scope: string;
}

export type AuthResult =
  | { kind: "anonymous"; payload: PayloadMode }
  | {
      kind: "authenticated";
      accessKeyId: string;
      userId: string;
      payload: PayloadMode;
      signing: SigningContext;
    };

interface ParsedCredential {
  accessKeyId: string;
  date: string;
  region: string;
  service: string;
}

/** Parameters the two forms share once their own syntax is parsed. */
interface SignatureClaim {
  credential: ParsedCredential;
  signedHeaders: string[];
  signature: string;
  amzDate: string;
  payloadHash: string;
  presigned: boolean;
}

export async function verifyRequest(request: AuthRequest, lookup: CredentialLookup): Promise<AuthResult> {
  const { rawPath, rawQuery } = splitRequestTarget(request.rawUrl);
  const query = parseQuery(rawQuery);
  if (query === undefined) {
    throw new AuthError("InvalidArgument", "The query string contains an invalid percent-encoding.");
  }
  const authorization = headerText(request.headers, "authorization");
  const hasQueryAlgorithm = query.some((parameter) => parameter.name === "X-Amz-Algorithm");
  const hasQueryV2 = query.some((parameter) => parameter.name === "Signature");
  if (authorization !== undefined && (hasQueryAlgorithm || hasQueryV2)) {
    throw new AuthError("InvalidArgument", AUTH_MESSAGES.twoMechanisms);
  }
  if (authorization === undefined && !hasQueryAlgorithm) {
    if (hasQueryV2 && query.some((parameter) => parameter.name === "AWSAccessKeyId")) {
      throw new AuthError("InvalidRequest", AUTH_MESSAGES.unsupportedMechanism);
    }
    const contentSha256 = headerText(request.headers, "x-amz-content-sha256");
    return { kind: "anonymous", payload: parsePayloadMode(contentSha256, request.headers, { signed: false }) };
  }

  const claim =
    authorization !== undefined
      ? claimFromAuthorizationHeader(authorization, request)
      : claimFromQuery(query, request);

  const found = await lookup(claim.credential.accessKeyId);
  if (found === undefined) {
    throw new AuthError("InvalidAccessKeyId", AUTH_MESSAGES.invalidAccessKeyId, {
      AWSAccessKeyId: claim.credential.accessKeyId,
    });
  }

  const uri = canonicalUri(rawPath);
  if (uri === undefined) {
    throw new AuthError("InvalidArgument", "The request path contains an invalid percent-encoding.");
  }
  const canonical = canonicalRequest({
    method: request.method.toUpperCase(),
    canonicalUri: uri,
    canonicalQuery: canonicalQueryString(query, claim.presigned ? "X-Amz-Signature" : undefined),
    headers: signedHeaderValues(request, claim.signedHeaders),
    payloadHash: claim.payloadHash,
  });
  const { date, region, service } = claim.credential;
  const scope = credentialScope(date, region, service);
  const stringToSign = requestStringToSign(claim.amzDate, scope, canonical);
  const signingKey = deriveSigningKey(found.secretAccessKey, date, region, service);
  const expected = hmacHex(signingKey, stringToSign);
  if (!signaturesEqual(expected, claim.signature)) {
    throw new AuthError("SignatureDoesNotMatch", AUTH_MESSAGES.signatureDoesNotMatch, {
      AWSAccessKeyId: claim.credential.accessKeyId,
      StringToSign: stringToSign,
      SignatureProvided: claim.signature,
      CanonicalRequest: canonical,
    });
  }

  // The body form is judged after the signature, so that an unknown x-amz-content-sha256 value
  // is only ever reported to someone who holds the key.
  const payload = parsePayloadMode(claim.payloadHash, request.headers, { signed: true });
  return {
    kind: "authenticated",
    accessKeyId: claim.credential.accessKeyId,
    userId: found.userId,
    payload,
    signing: { signingKey, seedSignature: expected, amzDate: claim.amzDate, scope },
  };
}

/** Constant-time comparison of two lower-case hex signatures. */
export function signaturesEqual(expectedHex: string, providedHex: string): boolean {
  const expected = Buffer.from(expectedHex, "latin1");
  const provided = Buffer.from(providedHex, "latin1");
  return expected.length === provided.length && timingSafeEqual(expected, provided);
}

function splitRequestTarget(rawUrl: string): { rawPath: string; rawQuery: string } {
  let target = rawUrl;
  // Absolute-form (sent through a forward proxy): the path starts after the authority.
  const absolute = target.startsWith("/") ? null : /^[a-zA-Z][a-zA-Z0-9+.-]*:\/\/[^/?#]*/.exec(target);
  if (absolute !== null) target = target.slice(absolute[0].length);
  const hash = target.indexOf("#");
  if (hash !== -1) target = target.slice(0, hash);
  const question = target.indexOf("?");
  return question === -1
    ? { rawPath: target, rawQuery: "" }
    : { rawPath: target.slice(0, question), rawQuery: target.slice(question + 1) };
}

// ---- Authorization header form ----

/**
 * The Authorization header without its signature, parsed: a client sends the same Credential
 * and SignedHeaders on every request of a day, so most requests skip parsing them. Only
 * headers that parsed are kept; past the bound the map starts over.
 */
const AUTHORIZATION_PARSE_CACHE_ENTRIES_MAX = 1_024;
const authorizationParseCache = new Map<string, { credential: ParsedCredential; signedHeaders: string[] }>();
const SIGNATURE_FIELD = ",Signature=";
const SIGNATURE_HEX = /^[0-9a-f]{64}$/;

function claimFromAuthorizationHeader(authorization: string, request: AuthRequest): SignatureClaim {
  // "AWS4-HMAC-SHA256 Credential=...,SignedHeaders=...,Signature=<64 hex>", as SDKs send it.
  const signatureAt = authorization.lastIndexOf(SIGNATURE_FIELD);
  const signatureText = signatureAt === -1 ? undefined : authorization.slice(signatureAt + SIGNATURE_FIELD.length);
  const parsedBefore =
    signatureText !== undefined && SIGNATURE_HEX.test(signatureText) ? authorizationParseCache.get(authorization.slice(0, signatureAt)) : undefined;
  if (parsedBefore !== undefined) return claimOfParsedHeader(parsedBefore.credential, parsedBefore.signedHeaders, signatureText!, request);
  const parsed = parseAuthorizationHeader(authorization);
  if (signatureText !== undefined && signatureText === parsed.signature && SIGNATURE_HEX.test(signatureText)) {
    const entry = { credential: parsed.credential, signedHeaders: parsed.signedHeaders };
    setInBoundedCache(authorizationParseCache, authorization.slice(0, signatureAt), entry, AUTHORIZATION_PARSE_CACHE_ENTRIES_MAX);
  }
  return claimOfParsedHeader(parsed.credential, parsed.signedHeaders, parsed.signature, request);
}

function parseAuthorizationHeader(authorization: string): { credential: ParsedCredential; signedHeaders: string[]; signature: string } {
  const trimmed = authorization.trim();
  const space = trimmed.search(/\s/);
  const algorithm = space === -1 ? trimmed : trimmed.slice(0, space);
  if (algorithm !== SIGV4_ALGORITHM) {
    if (algorithm === "AWS" || algorithm.startsWith("AWS4-")) {
      // SigV2 ("AWS key:signature") and SigV4a ("AWS4-ECDSA-P256-SHA256") are real AWS schemes.
      throw new AuthError("InvalidRequest", AUTH_MESSAGES.unsupportedMechanism);
    }
    throw new AuthError("InvalidArgument", "Unsupported Authorization Type", {
      ArgumentName: "Authorization",
      ArgumentValue: authorization,
    });
  }
  const fields = new Map<string, string>();
  for (const part of trimmed.slice(space === -1 ? trimmed.length : space).split(",")) {
    const field = part.trim();
    const equals = field.indexOf("=");
    const name = equals === -1 ? field : field.slice(0, equals);
    if (equals === -1 || fields.has(name) || !["Credential", "SignedHeaders", "Signature"].includes(name)) {
      throw headerMalformed(`the field '${field}' is not understood`);
    }
    fields.set(name, field.slice(equals + 1));
  }
  const credentialText = fields.get("Credential");
  const signedHeadersText = fields.get("SignedHeaders");
  const signature = fields.get("Signature");
  if (credentialText === undefined || signedHeadersText === undefined || signature === undefined) {
    throw headerMalformed("it needs Credential, SignedHeaders and Signature");
  }
  const credential = parseCredential(credentialText, headerMalformed);
  const signedHeaders = parseSignedHeaders(signedHeadersText, headerMalformed);
  return { credential, signedHeaders, signature };
}

function claimOfParsedHeader(
  credential: ParsedCredential,
  signedHeaders: string[],
  signature: string,
  request: AuthRequest,
): SignatureClaim {
  const { amzDate, timeMs } = requestDate(request.headers);
  if (Math.abs(request.nowMs - timeMs) > REQUEST_TIME_SKEW_MS_MAX) {
    throw new AuthError("RequestTimeTooSkewed", AUTH_MESSAGES.requestTimeTooSkewed, {
      RequestTime: amzDate,
      ServerTime: new Date(request.nowMs).toISOString(),
      MaxAllowedSkewMilliseconds: String(REQUEST_TIME_SKEW_MS_MAX),
    });
  }
  if (credential.date !== amzDate.slice(0, 8)) {
    throw headerMalformed("Invalid credential date. Date is not the same as X-Amz-Date.");
  }
  const payloadHash = headerText(request.headers, "x-amz-content-sha256");
  if (payloadHash === undefined) {
    throw new AuthError("InvalidRequest", AUTH_MESSAGES.missingContentSha256);
  }
  requireSignedHeaders(request.headers, signedHeaders);
  return { credential, signedHeaders, signature, amzDate, payloadHash, presigned: false };
}

function headerMalformed(detail: string): AuthError {
  return new AuthError("AuthorizationHeaderMalformed", `The authorization header is malformed; ${detail}`);
}

/** x-amz-date, else Date (RFC 1123 or the ISO 8601 basic form), as the string-to-sign uses it. */
function requestDate(headers: IncomingHttpHeaders): { amzDate: string; timeMs: number } {
  const amzDateHeader = headerText(headers, "x-amz-date");
  if (amzDateHeader !== undefined) {
    const timeMs = parseAmzDate(amzDateHeader.trim());
    if (timeMs === undefined) throw new AuthError("AccessDenied", AUTH_MESSAGES.missingDate);
    return { amzDate: amzDateHeader.trim(), timeMs };
  }
  const dateHeader = headerText(headers, "date")?.trim();
  if (dateHeader !== undefined) {
    const timeMs = parseAmzDate(dateHeader) ?? (/GMT$/.test(dateHeader) ? Date.parse(dateHeader) : Number.NaN);
    if (Number.isFinite(timeMs)) return { amzDate: formatAmzDate(timeMs), timeMs };
  }
  throw new AuthError("AccessDenied", AUTH_MESSAGES.missingDate);
}

// ---- Presigned query form ----

const PRESIGNED_PARAMETERS = [
  "X-Amz-Algorithm",
  "X-Amz-Credential",
  "X-Amz-Date",
  "X-Amz-Expires",
  "X-Amz-SignedHeaders",
  "X-Amz-Signature",
] as const;

function claimFromQuery(query: readonly QueryParameter[], request: AuthRequest): SignatureClaim {
  const values = new Map<string, string>();
  for (const parameter of query) {
    if (!(PRESIGNED_PARAMETERS as readonly string[]).includes(parameter.name) && parameter.name !== "X-Amz-Content-Sha256") {
      continue;
    }
    if (values.has(parameter.name)) throw queryError(`${parameter.name} is given more than once.`);
    values.set(parameter.name, parameter.value);
  }
  const get = (name: (typeof PRESIGNED_PARAMETERS)[number]): string => {
    const value = values.get(name);
    if (value === undefined) throw queryError(AUTH_MESSAGES.queryParametersMissing);
    return value;
  };
  if (get("X-Amz-Algorithm") !== SIGV4_ALGORITHM) {
    throw queryError('X-Amz-Algorithm only supports "AWS4-HMAC-SHA256"');
  }
  const credential = parseCredential(get("X-Amz-Credential"), (detail) =>
    queryError(`Error parsing the X-Amz-Credential parameter; ${detail}`),
  );
  const amzDate = get("X-Amz-Date");
  const timeMs = parseAmzDate(amzDate);
  if (timeMs === undefined) {
    throw queryError("X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\"");
  }
  const expiresText = get("X-Amz-Expires");
  if (!/^-?\d{1,12}$/.test(expiresText)) throw queryError("X-Amz-Expires should be a number");
  const expiresSeconds = Number(expiresText);
  if (expiresSeconds < 0) throw queryError("X-Amz-Expires must be non-negative");
  if (expiresSeconds > PRESIGNED_URL_EXPIRES_SECONDS_MAX) {
    throw queryError(
      `X-Amz-Expires must be less than a week (in seconds) that is ${PRESIGNED_URL_EXPIRES_SECONDS_MAX}`,
    );
  }
  if (credential.date !== amzDate.slice(0, 8)) {
    throw queryError("Invalid credential date. Date is not the same as X-Amz-Date.");
  }
  const signedHeaders = parseSignedHeaders(get("X-Amz-SignedHeaders"), (detail) =>
    queryError(`Error parsing the X-Amz-SignedHeaders parameter; ${detail}`),
  );
  const signature = get("X-Amz-Signature");
  // A URL dated in the future is refused only past the skew a header-signed request gets,
  // so a client whose clock runs a little fast can still use its own links.
  if (timeMs - request.nowMs > REQUEST_TIME_SKEW_MS_MAX) {
    throw new AuthError("AccessDenied", AUTH_MESSAGES.requestNotYetValid);
  }
  if (request.nowMs > timeMs + expiresSeconds * 1000) {
    throw new AuthError("AccessDenied", AUTH_MESSAGES.requestExpired, {
      "X-Amz-Expires": expiresText,
      Expires: new Date(timeMs + expiresSeconds * 1000).toISOString(),
      ServerTime: new Date(request.nowMs).toISOString(),
    });
  }
  // As MinIO does: the query value, else a header, else UNSIGNED-PAYLOAD (what presigners sign).
  const payloadHash =
    values.get("X-Amz-Content-Sha256") ?? headerText(request.headers, "x-amz-content-sha256") ?? "UNSIGNED-PAYLOAD";
  requireSignedHeaders(request.headers, signedHeaders);
  return { credential, signedHeaders, signature, amzDate, payloadHash, presigned: true };
}

function queryError(message: string): AuthError {
  return new AuthError("AuthorizationQueryParametersError", message);
}

// ---- Shared parsing ----

function parseCredential(text: string, malformed: (detail: string) => AuthError): ParsedCredential {
  const parts = text.split("/");
  if (parts.length !== 5) {
    throw malformed(`the Credential is mal-formed; expecting "<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request".`);
  }
  const [accessKeyId, date, region, service, terminator] = parts as [string, string, string, string, string];
  if (accessKeyId === "") throw malformed("the Credential has no access key id.");
  if (!/^\d{8}$/.test(date)) throw malformed(`incorrect date format "${date}". This date in the credential must be in the format "yyyyMMdd".`);
  if (region === "") throw malformed("the region is empty.");
  if (service !== SIGV4_SERVICE) throw malformed(`incorrect service "${service}". This endpoint belongs to "s3".`);
  if (terminator !== SIGV4_TERMINATOR) {
    throw malformed(`incorrect terminal "${terminator}". This endpoint uses "aws4_request".`);
  }
  return { accessKeyId, date, region, service };
}

function parseSignedHeaders(text: string, malformed: (detail: string) => AuthError): string[] {
  const names = text.split(";");
  for (const name of names) {
    if (!/^[a-z0-9!#$%&'*+.^_`|~-]+$/.test(name)) throw malformed(`the signed header '${name}' is invalid.`);
  }
  return names;
}

/**
 * Host must be signed (else a signature is replayable against any virtual host), and so must
 * every x-amz-* header present: unsigned, one of them could turn a presigned PUT into a copy
 * (x-amz-copy-source) or change what is stored. AWS refuses both the same way.
 */
function requireSignedHeaders(headers: IncomingHttpHeaders, signedHeaders: readonly string[]): void {
  const signed = new Set(signedHeaders);
  const unsigned = Object.keys(headers).filter(
    (name) => (name === "host" || name.startsWith("x-amz-")) && !signed.has(name),
  );
  if (!signed.has("host") && !unsigned.includes("host")) unsigned.unshift("host");
  if (unsigned.length > 0) {
    throw new AuthError("AccessDenied", AUTH_MESSAGES.headersNotSigned, { HeadersNotSigned: unsigned.join(", ") });
  }
}

/**
 * The canonical value of each signed header, from Node's rawHeaders when available (a header sent
 * twice is joined with "," as SigV4 wants, not Node's ", "), read in one pass over them.
 */
function signedHeaderValues(request: AuthRequest, names: readonly string[]): Array<readonly [string, string]> {
  const valuesByName = new Map<string, string[]>();
  for (const name of names) valuesByName.set(name, []);
  if (request.rawHeaders !== undefined) {
    const raw = request.rawHeaders;
    for (let index = 0; index + 1 < raw.length; index += 2) {
      valuesByName.get(raw[index]!.toLowerCase())?.push(raw[index + 1]!);
    }
  } else {
    for (const name of names) {
      const value = request.headers[name];
      if (Array.isArray(value)) valuesByName.get(name)!.push(...value);
      else if (value !== undefined) valuesByName.get(name)!.push(value);
    }
  }
  return names.map((name) => {
    const values = valuesByName.get(name)!;
    // Proxies may drop "Expect: 100-continue" after handling it; what the client signed was that.
    if (values.length === 0 && name === "expect") values.push("100-continue");
    return [name, canonicalHeaderValue(values)] as const;
  });
}
