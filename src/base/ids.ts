/**
 * Identifiers generated with no single point: each is time-ordered and carries enough random
 * bits that any number of gateways and data nodes can mint them without talking to each other.
 */
import { randomBytes } from "node:crypto";

/** A needle id: 16 bytes as 32 lowercase hex characters (a UUIDv7 without dashes). */
export type NeedleId = string & { readonly brand: "NeedleId" };
/** A volume id: a positive integer allocated by placement. */
export type VolumeId = number & { readonly brand: "VolumeId" };
export type NodeId = string & { readonly brand: "NodeId" };

let lastUuidMs = 0;
let lastUuidSequence = 0;

/**
 * Random bytes for ids, drawn from the CSPRNG 4 KiB at a time: one randomBytes(16) per id cost a
 * small PUT about 3% of the event loop's time (an allocation and an OpenSSL call each).
 */
const RANDOM_POOL_SIZE_BYTES = 4096;
let randomPool = randomBytes(RANDOM_POOL_SIZE_BYTES);
let randomPoolOffset = 0;

/** `count` fresh random bytes, copied into `into` at `offset`. */
function fillRandom(into: Buffer, offset: number, count: number): void {
  if (randomPoolOffset + count > RANDOM_POOL_SIZE_BYTES) {
    randomPool = randomBytes(RANDOM_POOL_SIZE_BYTES);
    randomPoolOffset = 0;
  }
  randomPool.copy(into, offset, randomPoolOffset, randomPoolOffset + count);
  randomPoolOffset += count;
}

/**
 * UUIDv7 (RFC 9562): 48-bit Unix ms, version, 12-bit counter, variant, 62 random bits.
 * The counter keeps ids minted in one process within one millisecond strictly increasing.
 */
export function uuidV7Bytes(nowMs: number = Date.now()): Buffer {
  if (nowMs <= lastUuidMs) {
    lastUuidSequence += 1;
    if (lastUuidSequence > 0xfff) {
      lastUuidMs += 1;
      lastUuidSequence = 0;
    }
  } else {
    lastUuidMs = nowMs;
    lastUuidSequence = 0;
  }
  const bytes = Buffer.allocUnsafe(16);
  fillRandom(bytes, 8, 8);
  bytes.writeUIntBE(lastUuidMs, 0, 6);
  bytes[6] = 0x70 | ((lastUuidSequence >> 8) & 0x0f);
  bytes[7] = lastUuidSequence & 0xff;
  bytes[8] = 0x80 | (bytes[8]! & 0x3f);
  return bytes;
}

export function newNeedleId(): NeedleId {
  return uuidV7Bytes().toString("hex") as NeedleId;
}

export function isNeedleId(value: string): value is NeedleId {
  return /^[0-9a-f]{32}$/.test(value);
}

/**
 * A request id as S3 prints it (16 upper-case hex characters): 32 random bits drawn once per
 * process, then a counter. Unique within a process and, with high probability, across them; it
 * names a request in logs, it guards nothing, and drawing 8 random bytes per request cost a
 * small GET a few percent of its CPU.
 */
const REQUEST_ID_PREFIX = randomBytes(4).toString("hex").toUpperCase();
let requestCounter = 0;

export function newRequestId(): string {
  requestCounter = (requestCounter + 1) % 0x1_0000_0000;
  return REQUEST_ID_PREFIX + requestCounter.toString(16).toUpperCase().padStart(8, "0");
}
