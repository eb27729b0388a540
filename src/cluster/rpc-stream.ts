/**
 * The internal RPC's fast lane: requests and answers as length-prefixed frames, many at once, over
 * one TCP connection per peer that starts as an HTTP upgrade of the RPC port (so it needs no port
 * of its own). An HTTP request costs each side about 60 us of CPU in node's HTTP machinery, URL and
 * header handling and an HMAC (measured here with a 4 KiB needle write and a small JSON call); a
 * 3-replica 4 KiB PUT makes five of them (two metadata calls to placement, three needle writes), and
 * a data node spent about a third of its CPU in HTTP parsing and answering. A frame costs a few
 * microseconds.
 *
 * Authentication is per connection, with a challenge: the upgrade request is signed like any RPC
 * (method, path, timestamp), and the server answers 101 with a random challenge that the client
 * must sign with the cluster secret in its first frame. A replayed upgrade gets a fresh challenge
 * it cannot sign, so a recorded connection cannot be replayed as a recorded request could be.
 *
 * Frame: u32 length of what follows, u32 request id, u8 type, u8 zero, u16 head length, head
 * (UTF-8: a method name, or "method?query"), payload (JSON or raw bytes). Answers carry the id of
 * their request and may come in any order.
 *
 * rpc.ts decides what goes this way: JSON calls, needle writes under 2 MiB (larger ones keep HTTP,
 * where the data node reads them straight into a pooled chunk buffer it can write with O_DIRECT),
 * and reads. Where the upgrade is refused (a server without it, or one still starting) the client uses
 * HTTP, trying the upgrade again later.
 */
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import * as http from "node:http";
import type { Duplex } from "node:stream";
import { chargeLoopTurn, copyBytes, KIBIBYTE } from "../base/index.js";

export const RPC_STREAM_PATH = "/rpc-stream";
export const RPC_STREAM_PROTOCOL = "cairn-rpc/1";
const CHALLENGE_HEADER = "x-cairn-challenge";
const FRAME_HEADER_BYTES = 12;
/** The first frame of a connection, the challenge's signature, is at most this long. */
export const AUTH_FRAME_BYTES_MAX = 1024;

export const enum FrameType {
  Auth = 0,
  Call = 1,
  BlobWrite = 2,
  BlobRead = 3,
  ResultJson = 10,
  ResultBlob = 11,
  Error = 12,
}

export interface Frame {
  id: number;
  type: FrameType;
  head: string;
  payload: Buffer;
}

export function encodeFrame(id: number, type: FrameType, head: string, payload: Buffer | undefined): Buffer[] {
  const headBytes = Buffer.from(head, "utf8");
  const payloadBytes = payload?.length ?? 0;
  const header = Buffer.allocUnsafe(FRAME_HEADER_BYTES);
  header.writeUInt32BE(FRAME_HEADER_BYTES - 4 + headBytes.length + payloadBytes, 0);
  header.writeUInt32BE(id, 4);
  header.writeUInt8(type, 8);
  header.writeUInt8(0, 9);
  header.writeUInt16BE(headBytes.length, 10);
  return payload === undefined || payload.length === 0 ? [header, headBytes] : [header, headBytes, payload];
}

/**
 * A payload from this size on is large: written as it is rather than copied into one buffer with
 * its frame's header, and charged to the loop turn's byte budget first (writeFrameInTurn).
 */
const FRAME_LARGE_PAYLOAD_BYTES_MIN = 64 * KIBIBYTE;

export function writeFrame(socket: Duplex, id: number, type: FrameType, head: string, payload: Buffer | undefined): void {
  const parts = encodeFrame(id, type, head, payload);
  if (payload === undefined || payload.length < FRAME_LARGE_PAYLOAD_BYTES_MIN) socket.write(Buffer.concat(parts));
  else for (const part of parts) socket.write(part);
}

/**
 * writeFrame, a large payload first charged to the event loop turn's byte budget
 * (base/loop-turn.ts), which S3 request and response bodies share: copying a 1 MiB needle into a
 * loopback socket (with the receiving end's TCP work) is most of a millisecond, a 3-replica PUT
 * writes three, and in the bench's 1 MiB 3-replica PUTs a fifth of the gateway loop's time was
 * these writes. The frame goes out whole, in a later turn when this one's budget is spent, and
 * not at all if `stillWanted` says no by then (the call timed out, the connection failed).
 *
 * Reads are not charged. Tried: pausing a socket whose piece finds the budget spent, and
 * resuming it a turn later, took the gateway's loop delay p99 in EC 4+2 1 MiB GETs from 16-20 ms
 * to 9-10, but cost each GET about a quarter more of the gateway's CPU (7.7-8.5 vs 4.9-6.9 ms):
 * its four shard answers and its response spend the budget in nearly every turn.
 */
export function writeFrameInTurn(socket: Duplex, id: number, type: FrameType, head: string, payload: Buffer | undefined, stillWanted: () => boolean): void {
  const turn = payload !== undefined && payload.length >= FRAME_LARGE_PAYLOAD_BYTES_MIN ? chargeLoopTurn(payload.length) : undefined;
  if (turn === undefined) {
    writeFrame(socket, id, type, head, payload);
    return;
  }
  void turn.then(() => {
    if (!socket.destroyed && stillWanted()) writeFrame(socket, id, type, head, payload);
  });
}

/**
 * Where a frame's payload may be written instead of a buffer of the reader's own: given the
 * frame's id and payload length, a buffer of exactly that length, or undefined.
 */
export type PayloadDestination = (id: number, payloadBytes: number) => Buffer | undefined;

/** Cuts a byte stream into frames; a frame longer than `frameBytesMax` is a protocol error. */
export class FrameReader {
  private pieces: Buffer[] = [];
  private bufferedBytes = 0;

  /**
   * `frameBytesMax` may change between pushes (a server takes only a small frame before
   * authentication). A frame whose payload spans socket reads is copied into one buffer: into
   * the one `destination` offers for it, else a new one.
   */
  constructor(
    public frameBytesMax: number,
    private readonly destination?: PayloadDestination,
  ) {}

  push(piece: Buffer): void {
    this.pieces.push(piece);
    this.bufferedBytes += piece.length;
  }

  /** The next whole frame, or undefined until more bytes come; throws on a frame over the limit. */
  next(): Frame | undefined {
    if (this.bufferedBytes < 4) return undefined;
    const first = this.pieces[0]!.length >= 4 ? this.pieces[0]! : this.take(4, false);
    const frameBytes = 4 + first.readUInt32BE(0);
    if (frameBytes < FRAME_HEADER_BYTES || frameBytes > this.frameBytesMax) throw new Error(`RPC frame of ${frameBytes} bytes`);
    if (this.bufferedBytes < frameBytes) return undefined;
    const header = this.pieces[0]!.length >= FRAME_HEADER_BYTES ? this.pieces[0]! : this.take(FRAME_HEADER_BYTES, false);
    const id = header.readUInt32BE(4);
    const type = header.readUInt8(8) as FrameType;
    const headBytes = header.readUInt16BE(10);
    if (FRAME_HEADER_BYTES + headBytes > frameBytes) throw new Error("RPC frame head past its end");
    const payloadBytes = frameBytes - FRAME_HEADER_BYTES - headBytes;
    // Within one read: a view of it. Else the payload goes where the destination says, if anywhere.
    const into = this.pieces[0]!.length >= frameBytes || payloadBytes === 0 ? undefined : this.destination?.(id, payloadBytes);
    if (into !== undefined) {
      if (into.length !== payloadBytes) throw new Error("an RPC payload destination has the payload's length");
      const head = this.take(FRAME_HEADER_BYTES + headBytes, true);
      return { id, type, head: head.toString("utf8", FRAME_HEADER_BYTES), payload: this.take(payloadBytes, true, into) };
    }
    const bytes = this.take(frameBytes, true);
    return {
      id,
      type,
      head: bytes.toString("utf8", FRAME_HEADER_BYTES, FRAME_HEADER_BYTES + headBytes),
      payload: bytes.subarray(FRAME_HEADER_BYTES + headBytes),
    };
  }

  /** The first `count` buffered bytes as one buffer (`into` when given), consumed when `consume`. */
  private take(count: number, consume: boolean, into?: Buffer): Buffer {
    const first = this.pieces[0]!;
    let bytes: Buffer;
    if (into === undefined && first.length >= count) {
      bytes = first.subarray(0, count);
    } else {
      bytes = into ?? Buffer.allocUnsafe(count);
      let copied = 0;
      for (const piece of this.pieces) {
        const length = Math.min(piece.length, count - copied);
        // copyBytes: `into` may be shared memory (a chunk buffer), which copy() writes slowly.
        copyBytes(bytes, length === piece.length ? piece : piece.subarray(0, length), copied);
        copied += length;
        if (copied === count) break;
      }
    }
    if (consume) {
      let remaining = count;
      while (remaining > 0) {
        const piece = this.pieces[0]!;
        if (piece.length <= remaining) {
          this.pieces.shift();
          remaining -= piece.length;
        } else {
          this.pieces[0] = piece.subarray(remaining);
          remaining = 0;
        }
      }
      this.bufferedBytes -= count;
    }
    return bytes;
  }
}

export function signChallenge(secret: string, challenge: string): string {
  return createHmac("sha256", secret).update(`${RPC_STREAM_PROTOCOL}\n${challenge}`).digest("hex");
}

export function challengeSignatureValid(secret: string, challenge: string, signature: string): boolean {
  const expected = Buffer.from(signChallenge(secret, challenge), "hex");
  const given = Buffer.from(signature, "hex");
  return given.length === expected.length && timingSafeEqual(given, expected);
}

export function newChallenge(): string {
  return randomBytes(16).toString("hex");
}

/** The 101 answer that opens a stream. */
export function switchingProtocolsResponse(challenge: string): string {
  return `HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: ${RPC_STREAM_PROTOCOL}\r\n${CHALLENGE_HEADER}: ${challenge}\r\n\r\n`;
}

export function challengeOf(response: http.IncomingMessage): string | undefined {
  const value = response.headers[CHALLENGE_HEADER];
  return typeof value === "string" && /^[0-9a-f]{32}$/.test(value) ? value : undefined;
}
