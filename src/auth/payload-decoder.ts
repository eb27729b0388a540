/**
 * Turns a request body into exactly the object's bytes, checking on the way everything the
 * request promised about them: the signed SHA-256, each chunk signature, the decoded length,
 * the trailing checksum and its signature. Errors are AuthError values emitted by the stream;
 * a consumer must treat a body as valid only after 'end' (Cairn commits only then).
 *
 * aws-chunked wire format (all lines end CRLF; sizes are hex):
 *
 *   | element         | signed form                               | unsigned-trailer form  |
 *   | --------------- | ----------------------------------------- | ---------------------- |
 *   | data chunk      | `<size>;chunk-signature=<64 hex>` + data  | `<size>` + data        |
 *   |                 |   + CRLF                                  |   + CRLF               |
 *   | final chunk     | `0;chunk-signature=<64 hex>`              | `0`                    |
 *   | trailer (opt.)  | `x-amz-checksum-<alg>:<base64>`           | same                   |
 *   |                 | `x-amz-trailer-signature:<64 hex>`        | (none)                 |
 *   | end             | empty line                                | empty line             |
 *
 * Signed chunks are held until their signature verifies (at most one chunk, bounded by
 * AWS_CHUNK_SIZE_BYTES_MAX), so nothing unauthenticated ever leaves this stream. Unsigned chunks
 * stream through: nothing about them can be verified before the trailer anyway.
 *
 * Interoperability: some writers put an empty line between the final chunk and the trailer
 * (AWS's own documentation shows both). When a trailer is expected, one such empty line is
 * skipped; it is framing, never data.
 */
import { Transform, type TransformCallback } from "node:stream";
import { createHash, type Hash } from "node:crypto";
import type { IncomingHttpHeaders } from "node:http";
import {
  assert,
  AWS_CHUNK_HEADER_SIZE_BYTES_MAX,
  checksumDigestSizeBytes,
  MEBIBYTE,
  newChecksummer,
  type Checksummer,
  type ChecksumAlgorithm,
} from "../base/index.js";
import { AUTH_MESSAGES, AuthError } from "./auth-error.js";
import { chunkStringToSign, hmacHex, sha256Hex, trailerStringToSign } from "./canonical.js";
import { trailerHeaderName } from "./payload-mode.js";
import { signaturesEqual, type AuthResult, type SigningContext } from "./sigv4.js";

/**
 * A signed chunk is buffered whole until its signature verifies, so this bounds memory per
 * upload. SDKs use 64 KiB to 1 MiB; MinIO allows 16 MiB, and so do we.
 * (Belongs in base/limits.ts; kept here until the lead moves it.)
 */
export const AWS_CHUNK_SIZE_BYTES_MAX = 16 * MEBIBYTE;
/** AWS: every signed chunk but the last must carry at least this much (InvalidChunkSizeError). */
export const AWS_CHUNK_SIZE_BYTES_MIN = 8 * 1024;

export interface TrailerChecksum {
  algorithm: ChecksumAlgorithm;
  valueBase64: string;
}

type DecoderMode =
  | { kind: "passthrough" }
  | { kind: "sha256"; expectedHex: string }
  | {
      kind: "chunked";
      signing: SigningContext | undefined;
      trailer: ChecksumAlgorithm | undefined;
      decodedContentLengthBytes: number;
    };

type ChunkedState =
  | { kind: "chunk-header" }
  | { kind: "chunk-data"; remainingBytes: number }
  | { kind: "chunk-data-end"; crlfBytesSeen: number }
  | { kind: "final-empty-line" }
  | { kind: "trailer-lines" }
  | { kind: "done" };

const CR = 0x0d;
const LF = 0x0a;

export class PayloadDecoder extends Transform {
  /** The trailing checksum as received; set once the trailer is parsed, so read it after 'end'. */
  trailerChecksum: TrailerChecksum | undefined = undefined;
  /** Object bytes emitted so far. */
  decodedSizeBytes = 0;

  private readonly mode: DecoderMode;
  private readonly sha256: Hash | undefined;
  private readonly checksummer: Checksummer | undefined;
  private state: ChunkedState = { kind: "chunk-header" };
  private failed = false;

  // The line being read (a chunk header or a trailer line); bounded, so copying is cheap.
  private readonly line = Buffer.allocUnsafe(AWS_CHUNK_HEADER_SIZE_BYTES_MAX + 2);
  private lineSizeBytes = 0;

  // The signed chunk being received: its expected signature, its hash so far, its slices.
  private chunkSignature = "";
  private chunkHash: Hash | undefined = undefined;
  private chunkSlices: Buffer[] = [];
  private chunkIndex = 0;
  private previousChunkSizeBytes = -1;
  private previousSignature = "";

  // Trailer section.
  private trailerLinesSeen = 0;
  private trailerBlankSkipped = false;
  private trailerCanonical = "";
  private trailerSignatureSeen = false;

  constructor(mode: DecoderMode) {
    super();
    this.mode = mode;
    this.sha256 = mode.kind === "sha256" ? createHash("sha256") : undefined;
    if (mode.kind === "chunked") {
      this.checksummer = mode.trailer === undefined ? undefined : newChecksummer(mode.trailer);
      this.previousSignature = mode.signing?.seedSignature ?? "";
    }
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    if (this.failed) return callback();
    try {
      switch (this.mode.kind) {
        case "passthrough":
          this.decodedSizeBytes += chunk.length;
          this.push(chunk);
          break;
        case "sha256":
          this.sha256!.update(chunk);
          this.decodedSizeBytes += chunk.length;
          this.push(chunk);
          break;
        case "chunked":
          this.consumeChunked(chunk, this.mode);
          break;
      }
      callback();
    } catch (error) {
      this.failed = true;
      callback(error as Error);
    }
  }

  override _flush(callback: TransformCallback): void {
    if (this.failed) return callback();
    try {
      if (this.mode.kind === "sha256") {
        const computed = this.sha256!.digest("hex");
        if (computed !== this.mode.expectedHex) {
          throw new AuthError("XAmzContentSHA256Mismatch", AUTH_MESSAGES.contentSha256Mismatch, {
            ClientComputedContentSHA256: this.mode.expectedHex,
            S3ComputedContentSHA256: computed,
          });
        }
      } else if (this.mode.kind === "chunked" && this.state.kind !== "done") {
        throw this.state.kind === "trailer-lines"
          ? new AuthError("MalformedTrailerError", AUTH_MESSAGES.malformedTrailer)
          : new AuthError("IncompleteBody", AUTH_MESSAGES.bodyTerminated);
      }
      callback();
    } catch (error) {
      this.failed = true;
      callback(error as Error);
    }
  }

  private consumeChunked(input: Buffer, mode: Extract<DecoderMode, { kind: "chunked" }>): void {
    let offset = 0;
    while (offset < input.length) {
      const state = this.state;
      switch (state.kind) {
        case "chunk-header":
        case "final-empty-line":
        case "trailer-lines": {
          const newline = input.indexOf(LF, offset);
          const end = newline === -1 ? input.length : newline + 1;
          if (this.lineSizeBytes + (end - offset) > this.line.length) {
            throw state.kind === "trailer-lines"
              ? new AuthError("MalformedTrailerError", AUTH_MESSAGES.malformedTrailer)
              : new AuthError("IncompleteBody", AUTH_MESSAGES.bodyTerminated);
          }
          input.copy(this.line, this.lineSizeBytes, offset, end);
          this.lineSizeBytes += end - offset;
          offset = end;
          if (newline !== -1) this.completeLine(mode);
          break;
        }
        case "chunk-data": {
          const takeBytes = Math.min(state.remainingBytes, input.length - offset);
          const slice = input.subarray(offset, offset + takeBytes);
          offset += takeBytes;
          state.remainingBytes -= takeBytes;
          this.acceptData(slice, mode);
          if (state.remainingBytes === 0) {
            this.finishChunkData(mode);
            this.state = { kind: "chunk-data-end", crlfBytesSeen: 0 };
          }
          break;
        }
        case "chunk-data-end": {
          const expected = state.crlfBytesSeen === 0 ? CR : LF;
          if (input[offset] !== expected) throw new AuthError("IncompleteBody", AUTH_MESSAGES.bodyTerminated);
          offset += 1;
          state.crlfBytesSeen += 1;
          if (state.crlfBytesSeen === 2) this.state = { kind: "chunk-header" };
          break;
        }
        case "done":
          // Bytes after the end of the framing: a second body, or a client that miscounted.
          throw new AuthError("IncompleteBody", AUTH_MESSAGES.bodyTerminated);
      }
    }
  }

  /** Takes the complete line out of the buffer (it must end CRLF) and acts on it. */
  private completeLine(mode: Extract<DecoderMode, { kind: "chunked" }>): void {
    const size = this.lineSizeBytes;
    this.lineSizeBytes = 0;
    const malformed = (): AuthError =>
      this.state.kind === "trailer-lines"
        ? new AuthError("MalformedTrailerError", AUTH_MESSAGES.malformedTrailer)
        : new AuthError("IncompleteBody", AUTH_MESSAGES.bodyTerminated);
    if (size < 2 || this.line[size - 2] !== CR) throw malformed();
    const text = this.line.toString("latin1", 0, size - 2);
    switch (this.state.kind) {
      case "chunk-header":
        return this.startChunk(text, mode);
      case "final-empty-line":
        if (text !== "") throw malformed();
        return this.finish(mode);
      case "trailer-lines":
        return this.acceptTrailerLine(text, mode);
      default:
        throw new AuthError("IncompleteBody", AUTH_MESSAGES.bodyTerminated);
    }
  }

  private startChunk(header: string, mode: Extract<DecoderMode, { kind: "chunked" }>): void {
    const match = mode.signing
      ? /^([0-9a-fA-F]{1,16});chunk-signature=([0-9a-f]{64})$/.exec(header)
      : /^([0-9a-fA-F]{1,16})$/.exec(header);
    if (match === null) throw new AuthError("IncompleteBody", AUTH_MESSAGES.bodyTerminated);
    const sizeBytes = parseInt(match[1]!, 16);
    this.chunkIndex += 1;
    if (sizeBytes > mode.decodedContentLengthBytes - this.decodedSizeBytes) {
      throw new AuthError("IncompleteBody", AUTH_MESSAGES.bodyLengthMismatch, {
        NumberBytesExpected: String(mode.decodedContentLengthBytes),
        NumberBytesProvided: String(this.decodedSizeBytes + sizeBytes),
      });
    }
    if (mode.signing) {
      if (sizeBytes > AWS_CHUNK_SIZE_BYTES_MAX) {
        throw new AuthError("InvalidChunkSizeError", `Chunks may be at most ${AWS_CHUNK_SIZE_BYTES_MAX} bytes`, {
          Chunk: String(this.chunkIndex),
          BadChunkSize: String(sizeBytes),
        });
      }
      // Unsigned bodies are not held to this: they are never buffered, and SDKs that stream
      // a body as it is read may cut small chunks.
      if (sizeBytes > 0 && this.previousChunkSizeBytes >= 0 && this.previousChunkSizeBytes < AWS_CHUNK_SIZE_BYTES_MIN) {
        throw new AuthError("InvalidChunkSizeError", AUTH_MESSAGES.chunkTooSmall, {
          Chunk: String(this.chunkIndex - 1),
          BadChunkSize: String(this.previousChunkSizeBytes),
        });
      }
      this.chunkSignature = match[2]!;
      this.chunkHash = createHash("sha256");
      this.chunkSlices = [];
    }
    this.previousChunkSizeBytes = sizeBytes;
    if (sizeBytes > 0) {
      this.state = { kind: "chunk-data", remainingBytes: sizeBytes };
      return;
    }
    // The final chunk: its signature covers no data but chains the trailer to the body.
    if (mode.signing) this.verifyChunkSignature(mode.signing, sha256Hex(""));
    if (mode.decodedContentLengthBytes !== this.decodedSizeBytes) {
      throw new AuthError("IncompleteBody", AUTH_MESSAGES.bodyLengthMismatch, {
        NumberBytesExpected: String(mode.decodedContentLengthBytes),
        NumberBytesProvided: String(this.decodedSizeBytes),
      });
    }
    const hasTrailerSection = mode.signing ? mode.trailer !== undefined : true;
    this.state = hasTrailerSection ? { kind: "trailer-lines" } : { kind: "final-empty-line" };
  }

  private acceptData(slice: Buffer, mode: Extract<DecoderMode, { kind: "chunked" }>): void {
    if (slice.length === 0) return;
    if (mode.signing) {
      this.chunkHash!.update(slice);
      this.chunkSlices.push(slice);
    } else {
      this.emitData(slice);
    }
  }

  private finishChunkData(mode: Extract<DecoderMode, { kind: "chunked" }>): void {
    if (!mode.signing) return;
    this.verifyChunkSignature(mode.signing, this.chunkHash!.digest("hex"));
    for (const slice of this.chunkSlices) this.emitData(slice);
    this.chunkSlices = [];
  }

  private emitData(slice: Buffer): void {
    this.checksummer?.update(slice);
    this.decodedSizeBytes += slice.length;
    this.push(slice);
  }

  private verifyChunkSignature(signing: SigningContext, dataSha256Hex: string): void {
    const stringToSign = chunkStringToSign(signing.amzDate, signing.scope, this.previousSignature, dataSha256Hex);
    const expected = hmacHex(signing.signingKey, stringToSign);
    if (!signaturesEqual(expected, this.chunkSignature)) {
      throw new AuthError("SignatureDoesNotMatch", AUTH_MESSAGES.signatureDoesNotMatch, {
        StringToSign: stringToSign,
        SignatureProvided: this.chunkSignature,
      });
    }
    this.previousSignature = expected;
  }

  private acceptTrailerLine(line: string, mode: Extract<DecoderMode, { kind: "chunked" }>): void {
    const malformed = new AuthError("MalformedTrailerError", AUTH_MESSAGES.malformedTrailer);
    if (line === "") {
      if (this.trailerLinesSeen === 0 && mode.trailer !== undefined && !this.trailerBlankSkipped) {
        this.trailerBlankSkipped = true;
        return;
      }
      if (mode.trailer !== undefined && this.trailerChecksum === undefined) throw malformed;
      if (mode.signing && !this.trailerSignatureSeen) throw malformed;
      return this.finish(mode);
    }
    this.trailerLinesSeen += 1;
    if (this.trailerSignatureSeen) throw malformed; // the signature line must come last
    const colon = line.indexOf(":");
    if (colon <= 0) throw malformed;
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    if (name === "x-amz-trailer-signature" && mode.signing) {
      if (!/^[0-9a-f]{64}$/.test(value)) throw malformed;
      const signing = mode.signing;
      const stringToSign = trailerStringToSign(
        signing.amzDate,
        signing.scope,
        this.previousSignature,
        sha256Hex(this.trailerCanonical),
      );
      const expected = hmacHex(signing.signingKey, stringToSign);
      if (!signaturesEqual(expected, value)) {
        throw new AuthError("SignatureDoesNotMatch", AUTH_MESSAGES.signatureDoesNotMatch, {
          StringToSign: stringToSign,
          SignatureProvided: value,
        });
      }
      this.trailerSignatureSeen = true;
      return;
    }
    if (mode.trailer === undefined || name !== trailerHeaderName(mode.trailer) || this.trailerChecksum !== undefined) {
      throw malformed; // not the trailer x-amz-trailer declared, or declared twice
    }
    this.trailerChecksum = { algorithm: mode.trailer, valueBase64: value };
    this.trailerCanonical += `${name}:${value}\n`;
  }

  /** End of framing: the trailing checksum must match what was decoded. */
  private finish(mode: Extract<DecoderMode, { kind: "chunked" }>): void {
    this.state = { kind: "done" };
    if (mode.trailer === undefined || this.trailerChecksum === undefined) return;
    const received = Buffer.from(this.trailerChecksum.valueBase64, "base64");
    const header = trailerHeaderName(mode.trailer);
    if (
      received.length !== checksumDigestSizeBytes(mode.trailer) ||
      received.toString("base64") !== this.trailerChecksum.valueBase64
    ) {
      throw new AuthError("InvalidRequest", `Value for ${header} trailing header is invalid.`);
    }
    const computed = this.checksummer!.digest();
    if (!computed.equals(received)) {
      throw new AuthError("BadDigest", `The ${mode.trailer} you specified did not match the calculated checksum.`);
    }
  }
}

/**
 * The decoder for a verified request. Everything it needs was parsed into `auth.payload` by
 * verifyRequest; `headers` is accepted for callers written against the first draft of this API.
 */
export function createPayloadDecoder(auth: AuthResult, _headers?: IncomingHttpHeaders): PayloadDecoder {
  const payload = auth.payload;
  switch (payload.kind) {
    case "unsigned":
      return new PayloadDecoder({ kind: "passthrough" });
    case "signed":
      return new PayloadDecoder({ kind: "sha256", expectedHex: payload.sha256Hex });
    case "streaming-signed":
      assert(auth.kind === "authenticated", "parsePayloadMode refuses chunk-signed bodies without a signature");
      return new PayloadDecoder({
        kind: "chunked",
        signing: auth.signing,
        trailer: payload.trailer,
        decodedContentLengthBytes: payload.decodedContentLengthBytes,
      });
    case "streaming-unsigned-trailer":
      return new PayloadDecoder({
        kind: "chunked",
        signing: undefined,
        trailer: payload.trailer,
        decodedContentLengthBytes: payload.decodedContentLengthBytes,
      });
  }
}
