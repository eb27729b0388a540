/** PutObject, GetObject, HeadObject, DeleteObject. */
import { createHash } from "node:crypto";
import { pipeline } from "node:stream";
import type { Readable } from "node:stream";
import type { ServerResponse } from "node:http";
import {
  chargeLoopTurn,
  crc32,
  isChunkBufferView,
  KIBIBYTE,
  PUT_OBJECT_SIZE_BYTES_MAX,
  readWholeBody,
  releaseChunkBufferOf,
  UPLOAD_PART_COUNT_MAX,
  uuidV7Bytes,
  log,
  type ChecksumAlgorithm,
} from "../base/index.js";
import type { EcScheme } from "../ec/index.js";
import { ecSchemeFor } from "./storage-class.js";
import { createPayloadDecoder } from "../auth/index.js";
import { BodyTooLarge } from "../datapath/index.js";
import { NULL_VERSION_ID, type Bucket, type DeleteObjectResult, type ObjectChecksum, type ObjectVersion, type WriteCondition } from "../meta/index.js";
import { mayAccess, requireBucket } from "./access.js";
import { readCannedAcl } from "./bucket-ops.js";
import { OBJECT_ACL_METADATA } from "./bucket-config-ops.js";
import { header, principalId, type GatewayServices, type RequestContext } from "./context.js";
import {
  evaluateConditions,
  parseRange,
  type RangeRequest,
  readChecksumRequest,
  readContentMd5,
  readObjectHeaders,
  responseOverrideHeaders,
  versionResponseHeaders,
} from "./object-headers.js";
import { newBodyHasher, type BodyDigests } from "./body-hasher.js";
import { commonHeaders, sendEmpty } from "./responses.js";
import { S3Error, s3Errors, s3ErrorWithMessage } from "./s3-errors.js";
import { parseTaggingHeader, validateObjectKey } from "./validation.js";
import { httpDate } from "./xml.js";

export function newVersionId(): string {
  return uuidV7Bytes().toString("hex");
}

/** The size the client says the object has; MissingContentLength when it says nothing. */
function declaredObjectSizeBytes(ctx: RequestContext): number | undefined {
  const decoded = header(ctx, "x-amz-decoded-content-length");
  const raw = decoded ?? header(ctx, "content-length");
  if (raw === undefined) {
    if (header(ctx, "transfer-encoding") !== undefined) return undefined;
    throw s3Errors.missingContentLength();
  }
  if (!/^\d+$/.test(raw)) throw s3ErrorWithMessage(s3Errors.invalidArgument, "Content-Length is not a valid integer.");
  return Number(raw);
}

export interface ReceivedBody {
  chunks: ObjectVersion["chunks"];
  /** The body itself when it is kept in the metadata row (`chunks` is then empty). */
  inlineData: Buffer | undefined;
  sizeBytes: number;
  md5Hex: string;
  checksum: ObjectChecksum | undefined;
}

/**
 * Stream the request body once into needles, hashing MD5 and the requested checksum on the
 * way, and check what the client declared: size, Content-MD5, x-amz-checksum-*. On any
 * mismatch the needles written are deleted and nothing is committed.
 */
export async function receiveBody(
  ctx: RequestContext,
  services: GatewayServices,
  sizeBytesMax: number,
  /** Erasure-code the body with this scheme (null: replicated); see storage-class.ts. */
  ec: EcScheme | null,
  options: {
    /** Compute this checksum when the client sends none (a multipart upload's algorithm). */
    defaultChecksumAlgorithm?: ChecksumAlgorithm | undefined;
    /** Keep a body this small in the metadata row (GatewayServices.inlineObjectBytesMax); default 0. */
    inlineBytesMax?: number;
  } = {},
): Promise<ReceivedBody> {
  const { defaultChecksumAlgorithm } = options;
  const declaredSizeBytes = declaredObjectSizeBytes(ctx);
  if (declaredSizeBytes !== undefined && declaredSizeBytes > sizeBytesMax) {
    throw s3ErrorWithMessage(s3Errors.entityTooLarge, "Your proposed upload exceeds the maximum allowed size", {
      ProposedSize: String(declaredSizeBytes),
      MaxSizeAllowed: String(sizeBytesMax),
    });
  }
  const contentMd5 = readContentMd5(ctx);
  const checksumRequest =
    readChecksumRequest(ctx) ?? (defaultChecksumAlgorithm ? { algorithm: defaultChecksumAlgorithm, expectedBase64: undefined } : undefined);
  // An unsigned plain body needs no decoding: read the request itself. pipeline() costs a
  // small PUT an AbortController and a DOMException (with its stack) every time it finishes.
  const decoder = ctx.auth.payload.kind === "unsigned" ? undefined : createPayloadDecoder(ctx.auth, ctx.headers);
  // pipeline() destroys the decoder when the request errors (client gone, body cut short),
  // so the loop below ends with that error rather than waiting forever. The request's own
  // iterator throws on such errors by itself.
  const body: Readable = decoder === undefined ? ctx.req : (pipeline(ctx.req, decoder, () => undefined) as Readable);
  const hasher = newBodyHasher({ checksumAlgorithm: checksumRequest?.algorithm, declaredSizeBytes });
  // A large body comes out of the hasher as the chunks it assembled (and hashed in place);
  // a small one as the pieces received.
  async function* hashed(): AsyncGenerator<Buffer> {
    for await (const piece of body as AsyncIterable<Buffer>) {
      const turn = chargeLoopTurn(piece.length);
      if (turn !== undefined) await turn;
      const waiting = hasher.update(piece);
      if (waiting !== undefined) await waiting;
      if (!hasher.assemblesChunks) yield piece;
      // One at a time: a chunk taken is yielded at once, so the data path owns (and releases) it.
      else for (let chunk = hasher.takeChunk(false); chunk !== undefined; chunk = hasher.takeChunk(false)) yield chunk;
    }
    for (let chunk = hasher.takeChunk(true); chunk !== undefined; chunk = hasher.takeChunk(true)) yield chunk;
  }
  // A small plain body is read whole by events and hashed inline: two async generators and a
  // stream iterator per request cost a small PUT more than hashing it.
  const small = decoder === undefined && declaredSizeBytes !== undefined && declaredSizeBytes <= SMALL_BODY_SIZE_BYTES_MAX;
  // (An inline body is read whole too, after its payload decoding, if any.)
  async function wholeHashed(): Promise<Buffer> {
    const data = await readWholeBody(body);
    hasher.update(data);
    return data;
  }
  // A client that half-closes its socket mid-body will send no more bytes; without this the
  // request would wait for the idle timeout before failing.
  const socket = ctx.req.socket;
  const onSocketEnd = () => {
    if (!ctx.req.complete) ctx.req.destroy(Object.assign(new Error("aborted"), { code: "ECONNRESET" }));
  };
  socket.once("end", onSocketEnd);
  const inline = declaredSizeBytes !== undefined && keptInline(declaredSizeBytes, ec, options.inlineBytesMax ?? 0);
  let inlineData: Buffer | undefined;
  let written;
  try {
    written = inline
      ? { chunks: [], sizeBytes: (inlineData = await wholeHashed()).length }
      : small
      ? await services.dataRouter.writeWhole(await wholeHashed(), { sizeBytesMax, ec })
      : await services.dataRouter.writeBody(hashed(), {
          sizeBytesMax,
          ec,
          pieceCrc32: (piece) => hasher.chunkCrc32(piece),
          releasePiece: (piece) => hasher.releaseChunk(piece),
        });
  } catch (error) {
    hasher.abandon();
    if (error instanceof BodyTooLarge) throw s3Errors.entityTooLarge({ MaxSizeAllowed: String(sizeBytesMax) });
    if (error instanceof S3Error) throw error;
    if (isClientBodyError(error)) throw s3Errors.incompleteBody();
    throw error;
  } finally {
    socket.off("end", onSocketEnd);
  }
  const reject = async (error: S3Error): Promise<never> => {
    await services.dataRouter.deleteChunks(written.chunks);
    throw error;
  };
  if (declaredSizeBytes !== undefined && written.sizeBytes !== declaredSizeBytes) await reject(s3Errors.incompleteBody());
  let digests: BodyDigests;
  try {
    digests = await hasher.digests();
  } catch (error) {
    await services.dataRouter.deleteChunks(written.chunks);
    throw error;
  }
  const md5Digest = digests.md5;
  if (contentMd5 !== undefined && !contentMd5.equals(md5Digest)) await reject(s3Errors.badDigest());
  let checksum: ObjectChecksum | undefined;
  if (checksumRequest !== undefined && digests.checksum !== undefined) {
    const actual = digests.checksum.toString("base64");
    const expected = checksumRequest.expectedBase64 ?? decoder?.trailerChecksum?.valueBase64;
    if (expected !== undefined && expected !== actual) {
      await reject(
        s3ErrorWithMessage(s3Errors.badDigest, `The ${checksumRequest.algorithm} you specified did not match the calculated checksum.`),
      );
    }
    checksum = { algorithm: checksumRequest.algorithm, value: actual, type: "FULL_OBJECT" };
  }
  return { chunks: written.chunks, inlineData, sizeBytes: written.sizeBytes, md5Hex: md5Digest.toString("hex"), checksum };
}

/**
 * Whether a body of `sizeBytes` is kept in its metadata row: not empty, not over the limit
 * (GatewayServices.inlineObjectBytesMax; 0 keeps every body in needles), and replicated, since an
 * EC layout asked for is kept as asked.
 */
export function keptInline(sizeBytes: number, ec: EcScheme | null, inlineBytesMax: number): boolean {
  return ec === null && sizeBytes > 0 && sizeBytes <= inlineBytesMax;
}

/** A new version's fields for bytes kept in its row: the bytes and their CRC32, which reads check. */
export function inlineFields(data: Buffer | undefined): Pick<ObjectVersion, "inlineData" | "inlineCrc32"> {
  return data === undefined ? {} : { inlineData: data, inlineCrc32: crc32(data) };
}

/** Inline bytes already checked; a cached version's are checked once. */
const inlineDataVerified = new WeakSet<Buffer>();

/**
 * An inline object's bytes (ObjectVersion.inlineData), checked against the CRC32 stored with
 * them or, in rows from before it was kept, against the ETag, the MD5 of the body of every object
 * kept inline: neither engine checksums a row, and a needle's bytes are checked on every read
 * (CRC32). Bytes that fail answer InternalError, as a needle that fails its checksum does, and
 * are logged.
 */
export function verifiedInlineData(version: ObjectVersion): Buffer {
  const data = version.inlineData;
  if (data === undefined) throw new Error("the version keeps its bytes in needles");
  if (inlineDataVerified.has(data)) return data;
  const intact =
    version.inlineCrc32 !== undefined ? crc32(data) === version.inlineCrc32 : createHash("md5").update(data).digest("hex") === version.etag;
  if (data.length !== version.sizeBytes || !intact) {
    log.error({ bucket: version.bucket, key: version.key, versionId: version.versionId }, "inline object failed verification on read");
    throw s3Errors.internalError();
  }
  inlineDataVerified.add(data);
  return data;
}

/**
 * Gives pooled chunk buffers handed to a response back to the pool, each exactly once: from the
 * callback of the socket write that sent it, or when the response closes before that callback.
 * Plain buffers (small objects) are not tracked.
 */
function chunkBufferReleaser(res: ServerResponse): { track(piece: Buffer): void; sent(piece: Buffer): void } {
  /** Pieces handed to the socket and not released yet. */
  const unsent = new Set<Buffer>();
  const sent = (piece: Buffer) => {
    if (unsent.delete(piece)) releaseChunkBufferOf(piece);
  };
  let closeWatched = false;
  return {
    track(piece) {
      if (!isChunkBufferView(piece)) return;
      if (!closeWatched) res.once("close", () => [...unsent].forEach(sent));
      closeWatched = true;
      unsent.add(piece);
    },
    sent,
  };
}

/** Bodies up to this size with no aws-chunked framing are read whole before they are stored. */
const SMALL_BODY_SIZE_BYTES_MAX = 64 * 1024;

/**
 * `cairn server`'s default GatewayServices.inlineObjectBytesMax. Up to two pages of the metadata
 * database: a small PUT is then acknowledged after one fsync, the metadata commit's, instead of a
 * needle's group commit and then the metadata commit's, in turn (4 KiB PUTs on this 2-core
 * machine: 2,443-2,554 vs 2,986-3,585 ops/s in alternated runs). A larger object pays for it:
 * its bytes are written twice (WAL, then checkpoint), and every cached latest version carries
 * them (the SQLite engine's cache counts them against its memory budget).
 */
export const INLINE_OBJECT_BYTES_MAX_DEFAULT = 8 * KIBIBYTE;
/** An inline body is read whole (after its payload decoding) and held in memory: as small bodies are. */
export const INLINE_OBJECT_BYTES_MAX_LIMIT = SMALL_BODY_SIZE_BYTES_MAX;

/** Errors that mean the client's body did not arrive whole (reset, aborted, malformed framing). */
function isClientBodyError(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const code = (error as NodeJS.ErrnoException).code;
  return code === "ECONNRESET" || code === "ERR_STREAM_PREMATURE_CLOSE" || error.message === "aborted";
}

export function readWriteCondition(ctx: RequestContext): WriteCondition | undefined {
  const ifNoneMatch = header(ctx, "if-none-match");
  const ifMatch = header(ctx, "if-match");
  if (ifNoneMatch === undefined && ifMatch === undefined) return undefined;
  if (ifNoneMatch !== undefined && ifNoneMatch.trim() !== "*") {
    throw s3ErrorWithMessage(s3Errors.notImplemented, "If-None-Match on PUT supports only '*'.");
  }
  const condition: WriteCondition = {};
  if (ifNoneMatch !== undefined) condition.ifNoneMatchAny = true;
  if (ifMatch !== undefined) condition.ifMatchEtag = ifMatch.trim().replace(/^"|"$/g, "");
  return condition;
}

export function checksumResponseHeaders(checksum: ObjectChecksum | undefined): Record<string, string> {
  if (checksum === undefined) return {};
  return {
    [`x-amz-checksum-${checksum.algorithm.toLowerCase()}`]: checksum.value,
    "x-amz-checksum-type": checksum.type,
  };
}

export function versionIdHeader(bucket: Bucket, versionId: string): Record<string, string> {
  return bucket.versioning === "Unversioned" ? {} : { "x-amz-version-id": versionId };
}

export async function putObject(ctx: RequestContext, services: GatewayServices): Promise<void> {
  const bucket = await requireBucket(ctx, services, "owner");
  const key = ctx.target.key!;
  validateObjectKey(key);
  const objectHeaders = readObjectHeaders(ctx);
  const taggingHeader = header(ctx, "x-amz-tagging");
  const tags = taggingHeader === undefined ? {} : parseTaggingHeader(taggingHeader);
  const condition = readWriteCondition(ctx);
  if (readCannedAcl(ctx) === "public-read") objectHeaders.systemMetadata[OBJECT_ACL_METADATA] = "public-read";
  const ec = ecSchemeFor(objectHeaders.storageClass, bucket, services.defaultEc);
  const received = await receiveBody(ctx, services, PUT_OBJECT_SIZE_BYTES_MAX, ec, { inlineBytesMax: services.inlineObjectBytesMax });
  const versionId = bucket.versioning === "Enabled" ? newVersionId() : NULL_VERSION_ID;
  const version: ObjectVersion = {
    bucket: bucket.name,
    key,
    versionId,
    isDeleteMarker: false,
    sizeBytes: received.sizeBytes,
    etag: received.md5Hex,
    lastModifiedMs: services.clock.nowMs(),
    ownerId: principalId(ctx.principal),
    storageClass: objectHeaders.storageClass,
    contentType: objectHeaders.contentType,
    systemMetadata: objectHeaders.systemMetadata,
    userMetadata: objectHeaders.userMetadata,
    tags,
    checksum: received.checksum,
    partSizesBytes: undefined,
    chunks: received.chunks,
    ...inlineFields(received.inlineData),
  };
  let result;
  try {
    result = await services.meta.putObjectVersion(version, condition);
  } catch (error) {
    await services.dataRouter.deleteChunks(received.chunks);
    throw error;
  }
  // Only a replaced version leaves garbage; a pass after every PUT cost a query each.
  if (result.removed.length > 0) services.garbageCollector?.runOnce().catch(() => undefined);
  sendEmpty(ctx, 200, {
    ETag: `"${version.etag}"`,
    ...versionIdHeader(bucket, versionId),
    ...checksumResponseHeaders(received.checksum),
  });
}

/** The version a GET/HEAD named (as the store found it), or the 404 S3 gives (with x-amz-delete-marker when it is one). */
function resolveVersion(ctx: RequestContext, version: ObjectVersion | undefined): ObjectVersion {
  const key = ctx.target.key!;
  const requestedVersionId = ctx.query.get("versionId") ?? undefined;
  if (version === undefined) {
    if (requestedVersionId !== undefined) {
      throw s3Errors.noSuchVersion({ Key: key, VersionId: requestedVersionId });
    }
    throw s3Errors.noSuchKey({ Key: key });
  }
  if (version.isDeleteMarker) {
    const headers: Record<string, string> = {
      "x-amz-delete-marker": "true",
      "x-amz-version-id": version.versionId,
      "Last-Modified": httpDate(version.lastModifiedMs),
    };
    // AWS answers 405 for a GET naming a delete marker's version, 404 for the latest.
    if (requestedVersionId !== undefined) throw new S3Error({ ...s3ErrorFields(s3Errors.methodNotAllowed()), headers });
    throw new S3Error({ ...s3ErrorFields(s3Errors.noSuchKey({ Key: key })), headers });
  }
  return version;
}

function s3ErrorFields(error: S3Error) {
  return { code: error.code, statusCode: error.statusCode, message: error.message, details: error.details };
}

/**
 * The bucket and version a GET/HEAD may read: the owner (or root) reads anything; others read
 * objects of a public-read bucket, or objects whose own ACL is public-read. A reader who may
 * not read learns nothing about existence: AccessDenied, not NoSuchKey.
 */
async function readableVersion(ctx: RequestContext, services: GatewayServices): Promise<{ bucket: Bucket; version: ObjectVersion }> {
  const name = ctx.target.bucket!;
  const key = ctx.target.key!;
  try {
    validateObjectKey(key);
  } catch (error) {
    // A missing bucket is reported before a bad key, and a bad key never reaches the store.
    if ((await services.meta.getBucket(name)) === undefined) throw s3Errors.noSuchBucket({ BucketName: name });
    throw error;
  }
  // One metadata round trip: the bucket and the version together.
  const found = await services.meta.getBucketAndObjectVersion(name, key, ctx.query.get("versionId") ?? undefined);
  const bucket = found.bucket;
  if (bucket === undefined) throw s3Errors.noSuchBucket({ BucketName: name });
  if (mayAccess(ctx, bucket, "read-object")) return { bucket, version: resolveVersion(ctx, found.version) };
  let version: ObjectVersion | undefined;
  try {
    version = resolveVersion(ctx, found.version);
  } catch (error) {
    if (error instanceof S3Error) throw s3Errors.accessDenied();
    throw error;
  }
  if (version.systemMetadata[OBJECT_ACL_METADATA] !== "public-read") throw s3Errors.accessDenied();
  return { bucket, version };
}

export async function getOrHeadObject(ctx: RequestContext, services: GatewayServices): Promise<void> {
  const { bucket, version } = await readableVersion(ctx, services);
  const headers = versionResponseHeaders(version, { versioned: bucket.versioning !== "Unversioned" }, commonHeaders(ctx.requestId));
  const outcome = evaluateConditions(ctx, version);
  if (outcome === "precondition-failed") throw s3Errors.preconditionFailed({ Condition: "If-Match" });
  if (outcome === "not-modified") {
    ctx.res.writeHead(304, { ...commonHeaders(ctx.requestId), ETag: headers.ETag!, "Last-Modified": headers["Last-Modified"]! });
    ctx.res.end();
    return;
  }
  const partNumberArgument = ctx.query.get("partNumber");
  const range = partNumberArgument !== null ? partRange(partNumberArgument, version) : parseRange(header(ctx, "range"), version.sizeBytes);
  if (range.kind === "unsatisfiable") {
    throw new S3Error({
      ...s3ErrorFields(s3Errors.invalidRange({ RangeRequested: header(ctx, "range")!, ActualObjectSize: String(version.sizeBytes) })),
      headers: { "Content-Range": `bytes */${version.sizeBytes}` },
    });
  }
  if (ctx.query.size > 0) Object.assign(headers, responseOverrideHeaders(ctx));
  let startByte = 0;
  let endByteExclusive = version.sizeBytes;
  let statusCode = 200;
  if (range.kind === "range") {
    ({ startByte, endByteExclusive } = range);
    statusCode = 206;
    headers["Content-Range"] = `bytes ${startByte}-${endByteExclusive - 1}/${version.sizeBytes}`;
  } else if (header(ctx, "x-amz-checksum-mode")?.toUpperCase() === "ENABLED") {
    Object.assign(headers, checksumResponseHeaders(version.checksum));
  }
  headers["Content-Length"] = String(endByteExclusive - startByte);
  if (ctx.method === "HEAD") {
    ctx.res.writeHead(statusCode, headers);
    ctx.res.end();
    return;
  }
  await streamObject(ctx, services, version, { startByte, endByteExclusive, statusCode, headers });
}

/** GET ?partNumber=N: the bytes of part N of a multipart object (part 1 is all of any other). */
function partRange(argument: string, version: ObjectVersion): RangeRequest {
  const partNumber = /^\d+$/.test(argument) ? Number(argument) : 0;
  if (partNumber < 1 || partNumber > UPLOAD_PART_COUNT_MAX) {
    throw s3ErrorWithMessage(s3Errors.invalidArgument, `Part number must be an integer between 1 and ${UPLOAD_PART_COUNT_MAX}, inclusive`, {
      ArgumentName: "partNumber",
      ArgumentValue: argument,
    });
  }
  const sizes = version.partSizesBytes ?? [version.sizeBytes];
  if (partNumber > sizes.length) throw s3ErrorWithMessage(s3Errors.invalidPartNumber, "The requested partnumber is not satisfiable", { PartNumberRequested: argument, ActualPartCount: String(sizes.length) });
  const startByte = sizes.slice(0, partNumber - 1).reduce((sum, size) => sum + size, 0);
  const endByteExclusive = startByte + sizes[partNumber - 1]!;
  if (startByte === endByteExclusive) return { kind: "none" };
  return { kind: "range", startByte, endByteExclusive };
}

/**
 * Send bytes of a version. The first chunk is read before the status line goes out, so a
 * missing or corrupt first chunk still gets a proper error; a failure after that can only cut
 * the connection, which the client sees as a short body (Content-Length tells it so).
 *
 * Large chunks arrive in pooled chunk buffers (readRange's intoChunkBuffers): each goes back to
 * the pool from the callback of the socket write that sent it, when the socket no longer reads
 * it, or when the response closes (a destroyed socket's handle is closed at once, and node drops
 * the callbacks of writes to it), so a GET allocates (and collects) no 4 MiB buffer per chunk.
 */
async function streamObject(
  ctx: RequestContext,
  services: GatewayServices,
  version: ObjectVersion,
  send: { startByte: number; endByteExclusive: number; statusCode: number; headers: Record<string, string> },
): Promise<void> {
  const res = ctx.res;
  if (version.inlineData !== undefined) {
    const data = verifiedInlineData(version).subarray(send.startByte, send.endByteExclusive);
    res.writeHead(send.statusCode, send.headers);
    res.end(data);
    return;
  }
  if (send.endByteExclusive > send.startByte) {
    const whole = services.dataRouter.readWithinOneChunk(version.chunks, send.startByte, send.endByteExclusive, { intoChunkBuffer: true });
    if (whole !== undefined) {
      const data = await whole;
      res.writeHead(send.statusCode, send.headers);
      const releaser = chunkBufferReleaser(res);
      releaser.track(data);
      // A small object: status line, headers and body leave in one write, as a plain node:http
      // server's would.
      if (data.length <= RESPONSE_WRITE_BYTES_MAX) res.end(data, () => releaser.sent(data));
      else await writeInTurns(res, data, { end: true, sent: () => releaser.sent(data) }).catch((error: Error) => res.destroy(error));
      return;
    }
  }
  const pieces = services.dataRouter.readRange(version.chunks, send.startByte, send.endByteExclusive, { intoChunkBuffers: true });
  const first = await pieces.next();
  res.writeHead(send.statusCode, send.headers);
  if (first.done) {
    res.end();
    return;
  }
  const releaser = chunkBufferReleaser(res);
  const write = async (piece: Buffer): Promise<void> => {
    releaser.track(piece);
    await writeInTurns(res, piece, { end: false, sent: () => releaser.sent(piece) });
  };
  try {
    await write(first.value);
    for await (const piece of pieces) {
      if (res.destroyed) {
        releaseChunkBufferOf(piece);
        break;
      }
      await write(piece);
    }
    res.end();
  } catch (error) {
    await pieces.return(undefined);
    res.destroy(error instanceof Error ? error : undefined);
  }
}

/**
 * A response body is handed to the socket in writes of at most this size, each charged to the
 * event loop turn's byte budget (base/loop-turn.ts), which request bodies share. One write of a
 * 1 MiB body copied it all into the socket at once, with the receiving end's TCP work on
 * loopback: in the bench's 1 MiB GETs a third of the loop's time was that writev, and a turn
 * answering several GETs ran for milliseconds (loop delay p99 14-16 ms; with 256 KiB writes in
 * budgeted turns 7-8 ms, the rest the loop's thread waiting for a core).
 */
const RESPONSE_WRITE_BYTES_MAX = 256 * KIBIBYTE;

/**
 * Writes `piece` in slices of RESPONSE_WRITE_BYTES_MAX, each when the turn's budget allows, and
 * waits for 'drain' when the socket's buffer is full. `sent` is called once the last slice has
 * been handed to the kernel, or when the response is found destroyed between slices, which
 * rejects.
 */
async function writeInTurns(res: ServerResponse, piece: Buffer, options: { end: boolean; sent: () => void }): Promise<void> {
  for (let offsetBytes = 0; offsetBytes < piece.length; offsetBytes += RESPONSE_WRITE_BYTES_MAX) {
    const slice = piece.subarray(offsetBytes, offsetBytes + RESPONSE_WRITE_BYTES_MAX);
    const turn = chargeLoopTurn(slice.length);
    if (turn !== undefined) await turn;
    if (res.destroyed) {
      // Nothing more goes out: the piece may go back to its pool (its 'close' may be past).
      options.sent();
      throw new Error("client closed the connection");
    }
    const isLast = offsetBytes + RESPONSE_WRITE_BYTES_MAX >= piece.length;
    if (isLast && options.end) {
      res.end(slice, options.sent);
      return;
    }
    if (!res.write(slice, isLast ? options.sent : undefined)) await drained(res);
  }
}

function drained(res: ServerResponse): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const onDrain = () => {
      res.off("close", onClose);
      resolve();
    };
    const onClose = () => {
      res.off("drain", onDrain);
      reject(new Error("client closed the connection"));
    };
    res.once("drain", onDrain);
    res.once("close", onClose);
  });
}

/** DeleteObject's semantics for one key, shared with DeleteObjects. */
export function deleteOneObject(
  ctx: RequestContext,
  services: GatewayServices,
  input: { bucket: Bucket; key: string; versionId: string | undefined },
): Promise<DeleteObjectResult> {
  return services.meta.deleteObject({
    bucket: input.bucket.name,
    key: input.key,
    ...(input.versionId !== undefined ? { versionId: input.versionId } : {}),
    newVersionId: input.bucket.versioning === "Enabled" ? newVersionId() : NULL_VERSION_ID,
    nowMs: services.clock.nowMs(),
    ownerId: principalId(ctx.principal),
  });
}

export async function deleteObject(ctx: RequestContext, services: GatewayServices): Promise<void> {
  const bucket = await requireBucket(ctx, services, "owner");
  const key = ctx.target.key!;
  validateObjectKey(key);
  const versionId = ctx.query.get("versionId") ?? undefined;
  const result = await deleteOneObject(ctx, services, { bucket, key, versionId });
  services.garbageCollector?.runOnce().catch(() => undefined);
  const headers: Record<string, string> = {};
  if (result.deleteMarker !== undefined) {
    headers["x-amz-delete-marker"] = "true";
    headers["x-amz-version-id"] = result.deleteMarker.versionId;
  } else if (versionId !== undefined) {
    headers["x-amz-version-id"] = versionId;
    if (result.removed?.isDeleteMarker) headers["x-amz-delete-marker"] = "true";
  }
  sendEmpty(ctx, 204, headers);
}
