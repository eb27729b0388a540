/**
 * Byte formats of a volume file: the superblock that opens it, the needles appended to it, and
 * the seal footer that closes it. Pure functions: sizing is separate from encoding, and nothing
 * here mutates its input or touches a file.
 *
 * All integers are big-endian. Every structure starts at an offset that is a multiple of 8.
 *
 * Superblock (at offset 0, SUPERBLOCK_SIZE_BYTES = 32):
 * | offset | field           | size | meaning                                                 |
 * |--------|-----------------|------|---------------------------------------------------------|
 * | 0      | magic           | 8    | ASCII "CAIRNVOL"                                        |
 * | 8      | format version  | 4    | VOLUME_FORMAT_VERSION (2); decoders read 1 and 2 only   |
 * | 12     | reserved        | 4    | zero                                                    |
 * | 16     | volume id       | 8    | the VolumeId this file holds (must match its file name) |
 * | 24     | superblock crc  | 4    | CRC32 of bytes 0..23                                    |
 * | 28     | reserved        | 4    | zero                                                    |
 *
 * Needle (at any 8-aligned offset after the superblock; NEEDLE_HEADER_SIZE_BYTES = 28):
 * | offset   | field       | size     | meaning                                              |
 * |----------|-------------|----------|------------------------------------------------------|
 * | 0        | magic       | 4        | 0x4E45444C, ASCII "NEDL"                             |
 * | 4        | flags       | 2        | bit 0: tombstone (then data size is 0); bit 1:       |
 * |          |             |          | padding (version 2; see below); others zero          |
 * | 6        | reserved    | 2        | zero                                                 |
 * | 8        | needle id   | 16       | the NeedleId's 16 bytes (32 hex chars decoded)       |
 * | 24       | data size   | 4        | payload bytes, at most NEEDLE_DATA_SIZE_BYTES_MAX    |
 * | 28       | data        | n        | the payload                                          |
 * | 28+n     | needle crc  | 4        | CRC32 of bytes 0..28+n-1 (header AND data), so a     |
 * |          |             |          | garbled header is caught as surely as garbled data   |
 * | 32+n     | padding     | 0..7     | zero bytes up to the next multiple of 8              |
 *
 * A padding needle (version 2) fills a gap: its needle id and data are all zero and it is never
 * mapped. A volume writes one before a large needle whose data is to be written around the page
 * cache (O_DIRECT), so that the data's offset in the file falls where its memory does within a
 * page (see direct-write.ts). Version 1 files never hold one; version 1 readers would refuse it,
 * which is why files that may hold one say version 2.
 *
 * Seal footer (the last SEAL_FOOTER_SIZE_BYTES = 32 bytes of a sealed volume):
 * | offset | field          | size | meaning                                                 |
 * |--------|----------------|------|---------------------------------------------------------|
 * | 0      | magic          | 8    | ASCII "CAIRNEND"                                        |
 * | 8      | volume id      | 8    | same as the superblock's                                |
 * | 16     | data end       | 8    | the footer's own offset: bytes before it are checksummed|
 * | 24     | file crc       | 4    | CRC32 of every byte of the file before the footer       |
 * | 28     | footer crc     | 4    | CRC32 of footer bytes 0..27                             |
 *
 * A footer is only recognised where a needle could start and only if it is the last 32 bytes of
 * the file, its own CRC holds and its data end equals its offset, so needle payload bytes that
 * happen to spell "CAIRNEND" are never taken for one.
 */
import { assert, crc32, crc32Combine, isNeedleId, NEEDLE_DATA_SIZE_BYTES_MAX, type NeedleId, type VolumeId } from "../base/index.js";

export const VOLUME_FORMAT_VERSION = 2;
/** Format versions this code reads: 1 is 2 without padding needles. */
const VOLUME_FORMAT_VERSIONS_READ: readonly number[] = [1, 2];
/** The first format version whose files may hold padding needles. */
export const VOLUME_FORMAT_VERSION_PADDING = 2;
export const NEEDLE_ALIGNMENT_BYTES = 8;

const SUPERBLOCK_MAGIC = Buffer.from("CAIRNVOL", "ascii");
const SEAL_FOOTER_MAGIC = Buffer.from("CAIRNEND", "ascii");
export const NEEDLE_MAGIC = 0x4e45444c;

export const SUPERBLOCK_SIZE_BYTES = 32;
export const SEAL_FOOTER_SIZE_BYTES = 32;
export const NEEDLE_ID_SIZE_BYTES = 16;
export const NEEDLE_HEADER_SIZE_BYTES = 4 + 2 + 2 + NEEDLE_ID_SIZE_BYTES + 4;
export const NEEDLE_CHECKSUM_SIZE_BYTES = 4;

/** Flag bits of a needle header. */
export const NEEDLE_FLAG_TOMBSTONE = 0x1;
export const NEEDLE_FLAG_PADDING = 0x2;
const NEEDLE_FLAGS_KNOWN = NEEDLE_FLAG_TOMBSTONE | NEEDLE_FLAG_PADDING;
/** A padding needle's id. */
const PADDING_NEEDLE_ID = "0".repeat(32) as NeedleId;

const NEEDLE_LAYOUT = {
  magic: 0,
  flags: 4,
  reserved: 6,
  needleId: 8,
  dataSize: 24,
  data: NEEDLE_HEADER_SIZE_BYTES,
} as const;

export interface NeedleHeader {
  needleId: NeedleId;
  flags: number;
  dataSizeBytes: number;
}

export interface Needle {
  header: NeedleHeader;
  data: Uint8Array;
}

export function alignUp(sizeBytes: number, alignmentBytes: number = NEEDLE_ALIGNMENT_BYTES): number {
  return Math.ceil(sizeBytes / alignmentBytes) * alignmentBytes;
}

/** The bytes a needle occupies in a volume: header, data, checksum and padding. */
export function needleEncodedSizeBytes(header: Pick<NeedleHeader, "dataSizeBytes">): number {
  return alignUp(NEEDLE_HEADER_SIZE_BYTES + header.dataSizeBytes + NEEDLE_CHECKSUM_SIZE_BYTES);
}

/** The smallest padding needle (no data); any multiple of 8 from here on is a valid size. */
export const PADDING_NEEDLE_SIZE_BYTES_MIN = needleEncodedSizeBytes({ dataSizeBytes: 0 });

/** A padding needle of exactly `sizeBytes` (a multiple of 8, at least PADDING_NEEDLE_SIZE_BYTES_MIN), and its CRC32. */
export function encodePaddingNeedle(sizeBytes: number): { bytes: Buffer; crc32: number } {
  assert(sizeBytes >= PADDING_NEEDLE_SIZE_BYTES_MIN && sizeBytes % NEEDLE_ALIGNMENT_BYTES === 0, "padding fills whole needle slots");
  const dataSizeBytes = sizeBytes - PADDING_NEEDLE_SIZE_BYTES_MIN;
  const bytes = Buffer.allocUnsafe(sizeBytes);
  const crc32 = encodeNeedle({ header: { needleId: PADDING_NEEDLE_ID, flags: NEEDLE_FLAG_PADDING, dataSizeBytes }, data: Buffer.alloc(dataSizeBytes) }, bytes);
  return { bytes, crc32 };
}

/** The largest needle a volume can ever hold; recovery treats a bigger size field as garbage. */
export const NEEDLE_ENCODED_SIZE_BYTES_MAX = needleEncodedSizeBytes({ dataSizeBytes: NEEDLE_DATA_SIZE_BYTES_MAX });

export function needleIdToBytes(needleId: NeedleId): Buffer {
  assert(isNeedleId(needleId), `needle id is 32 lowercase hex characters: ${needleId}`);
  return Buffer.from(needleId, "hex");
}

export function needleIdFromBytes(bytes: Uint8Array): NeedleId {
  assert(bytes.length === NEEDLE_ID_SIZE_BYTES, "needle id is 16 bytes");
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString("hex") as NeedleId;
}

/**
 * Writes `needle` into `target` and returns the CRC32 of all of `target` (what a volume's running
 * file CRC adds). `dataCrc32`, when the caller already has CRC32(data), spares a pass over the data.
 */
export function encodeNeedle(needle: Needle, target: Buffer, dataCrc32?: number): number {
  const { header, data } = needle;
  assert(target.length === needleEncodedSizeBytes(header), "target is sized for this needle");
  assert(data.length === header.dataSizeBytes, "data length matches the header's data size");
  assert(header.dataSizeBytes <= NEEDLE_DATA_SIZE_BYTES_MAX, "needle data is within the limit");
  assert((header.flags & ~NEEDLE_FLAGS_KNOWN) === 0, "only known needle flags are set");
  assert(!(header.flags & NEEDLE_FLAG_TOMBSTONE) || header.dataSizeBytes === 0, "a tombstone carries no data");
  assert(!(header.flags & NEEDLE_FLAG_TOMBSTONE && header.flags & NEEDLE_FLAG_PADDING), "a needle is not both tombstone and padding");
  writeNeedleHeader(header, target);
  target.set(data, NEEDLE_LAYOUT.data);
  const checksumOffset = NEEDLE_LAYOUT.data + header.dataSizeBytes;
  const needleCrc32 =
    dataCrc32 === undefined
      ? crc32(target.subarray(0, checksumOffset))
      : crc32Combine(crc32(target.subarray(0, NEEDLE_LAYOUT.data)), dataCrc32, header.dataSizeBytes);
  target.writeUInt32BE(needleCrc32, checksumOffset);
  target.fill(0, checksumOffset + NEEDLE_CHECKSUM_SIZE_BYTES);
  return crc32(target.subarray(checksumOffset), needleCrc32);
}

/** A needle's bytes as three parts, the data not copied: head + data + tail is its encoding. */
export interface NeedleFrame {
  /** The fixed header (NEEDLE_HEADER_SIZE_BYTES). */
  head: Buffer;
  /** The needle CRC and the zero padding. */
  tail: Buffer;
  /** CRC32 of the whole encoding (head, data and tail), as encodeNeedle returns it. */
  encodedCrc32: number;
}

/**
 * The same bytes as encodeNeedle, written around `needle.data` instead of copying it: a large
 * needle goes to the file as one writev of head, data and tail. `dataCrc32`, when the caller
 * already has CRC32(data), spares a pass over the data.
 */
export function frameNeedle(needle: Needle, dataCrc32?: number): NeedleFrame {
  const { header, data } = needle;
  const encodedSizeBytes = needleEncodedSizeBytes(header);
  const head = Buffer.allocUnsafe(NEEDLE_HEADER_SIZE_BYTES);
  const tail = Buffer.alloc(encodedSizeBytes - NEEDLE_HEADER_SIZE_BYTES - header.dataSizeBytes);
  assert(data.length === header.dataSizeBytes, "data length matches the header's data size");
  assert(header.dataSizeBytes <= NEEDLE_DATA_SIZE_BYTES_MAX, "needle data is within the limit");
  assert((header.flags & ~NEEDLE_FLAGS_KNOWN) === 0, "only known needle flags are set");
  assert(!(header.flags & NEEDLE_FLAG_TOMBSTONE) || header.dataSizeBytes === 0, "a tombstone carries no data");
  writeNeedleHeader(header, head);
  const needleCrc32 = crc32Combine(crc32(head), dataCrc32 ?? crc32(data), header.dataSizeBytes);
  tail.writeUInt32BE(needleCrc32, 0);
  return { head, tail, encodedCrc32: crc32(tail, needleCrc32) };
}

function writeNeedleHeader(header: NeedleHeader, target: Buffer): void {
  target.writeUInt32BE(NEEDLE_MAGIC, NEEDLE_LAYOUT.magic);
  target.writeUInt16BE(header.flags, NEEDLE_LAYOUT.flags);
  target.writeUInt16BE(0, NEEDLE_LAYOUT.reserved);
  needleIdToBytes(header.needleId).copy(target, NEEDLE_LAYOUT.needleId);
  target.writeUInt32BE(header.dataSizeBytes, NEEDLE_LAYOUT.dataSize);
}

export type NeedleHeaderDecoded =
  | { kind: "header"; header: NeedleHeader; encodedSizeBytes: number }
  | { kind: "invalid"; reason: "short" | "magic" | "flags" | "size" };

/** Decodes the fixed header at the start of `source`; does not check the needle's CRC. */
export function decodeNeedleHeader(source: Uint8Array): NeedleHeaderDecoded {
  if (source.length < NEEDLE_HEADER_SIZE_BYTES) return { kind: "invalid", reason: "short" };
  const view = Buffer.from(source.buffer, source.byteOffset, source.length);
  if (view.readUInt32BE(NEEDLE_LAYOUT.magic) !== NEEDLE_MAGIC) return { kind: "invalid", reason: "magic" };
  const flags = view.readUInt16BE(NEEDLE_LAYOUT.flags);
  if ((flags & ~NEEDLE_FLAGS_KNOWN) !== 0 || view.readUInt16BE(NEEDLE_LAYOUT.reserved) !== 0) {
    return { kind: "invalid", reason: "flags" };
  }
  const dataSizeBytes = view.readUInt32BE(NEEDLE_LAYOUT.dataSize);
  if (dataSizeBytes > NEEDLE_DATA_SIZE_BYTES_MAX) return { kind: "invalid", reason: "size" };
  if (flags & NEEDLE_FLAG_TOMBSTONE && dataSizeBytes !== 0) return { kind: "invalid", reason: "size" };
  if (flags & NEEDLE_FLAG_TOMBSTONE && flags & NEEDLE_FLAG_PADDING) return { kind: "invalid", reason: "flags" };
  const needleId = needleIdFromBytes(view.subarray(NEEDLE_LAYOUT.needleId, NEEDLE_LAYOUT.needleId + NEEDLE_ID_SIZE_BYTES));
  const header: NeedleHeader = { needleId, flags, dataSizeBytes };
  return { kind: "header", header, encodedSizeBytes: needleEncodedSizeBytes(header) };
}

export type NeedleDecoded =
  | { kind: "needle"; header: NeedleHeader; data: Buffer }
  | { kind: "invalid"; reason: "short" | "magic" | "flags" | "size" | "checksum" };

/**
 * Decodes a whole needle and verifies its CRC. `data` is a view into `source` (no copy). The
 * padding is not covered by the CRC but must be zero, so any byte of the needle that changed is
 * noticed.
 */
export function decodeNeedle(source: Uint8Array): NeedleDecoded {
  const decoded = decodeNeedleHeader(source);
  if (decoded.kind === "invalid") return decoded;
  if (source.length < decoded.encodedSizeBytes) return { kind: "invalid", reason: "short" };
  const view = Buffer.from(source.buffer, source.byteOffset, decoded.encodedSizeBytes);
  const checksumOffset = NEEDLE_LAYOUT.data + decoded.header.dataSizeBytes;
  const expected = view.readUInt32BE(checksumOffset);
  if (crc32(view.subarray(0, checksumOffset)) !== expected) return { kind: "invalid", reason: "checksum" };
  for (let index = checksumOffset + NEEDLE_CHECKSUM_SIZE_BYTES; index < view.length; index++) {
    if (view[index] !== 0) return { kind: "invalid", reason: "checksum" };
  }
  return { kind: "needle", header: decoded.header, data: view.subarray(NEEDLE_LAYOUT.data, checksumOffset) };
}

// ---- Superblock ----

export function encodeSuperblock(volumeId: VolumeId): Buffer {
  assert(Number.isSafeInteger(volumeId) && volumeId > 0, "volume id is a positive integer");
  const target = Buffer.alloc(SUPERBLOCK_SIZE_BYTES);
  SUPERBLOCK_MAGIC.copy(target, 0);
  target.writeUInt32BE(VOLUME_FORMAT_VERSION, 8);
  target.writeBigUInt64BE(BigInt(volumeId), 16);
  target.writeUInt32BE(crc32(target.subarray(0, 24)), 24);
  return target;
}

export type SuperblockDecoded =
  | { kind: "superblock"; volumeId: VolumeId; formatVersion: number }
  | { kind: "invalid"; reason: "short" | "magic" | "checksum" | "version" };

export function decodeSuperblock(source: Uint8Array): SuperblockDecoded {
  if (source.length < SUPERBLOCK_SIZE_BYTES) return { kind: "invalid", reason: "short" };
  const view = Buffer.from(source.buffer, source.byteOffset, SUPERBLOCK_SIZE_BYTES);
  if (!view.subarray(0, 8).equals(SUPERBLOCK_MAGIC)) return { kind: "invalid", reason: "magic" };
  if (crc32(view.subarray(0, 24)) !== view.readUInt32BE(24)) return { kind: "invalid", reason: "checksum" };
  const formatVersion = view.readUInt32BE(8);
  if (!VOLUME_FORMAT_VERSIONS_READ.includes(formatVersion)) return { kind: "invalid", reason: "version" };
  return { kind: "superblock", volumeId: Number(view.readBigUInt64BE(16)) as VolumeId, formatVersion };
}

// ---- Seal footer ----

export interface SealFooter {
  volumeId: VolumeId;
  /** The footer's own offset; the file checksum covers [0, dataEndOffsetBytes). */
  dataEndOffsetBytes: number;
  fileCrc32: number;
}

export function encodeSealFooter(footer: SealFooter): Buffer {
  assert(footer.dataEndOffsetBytes >= SUPERBLOCK_SIZE_BYTES, "a footer follows the superblock");
  assert(footer.dataEndOffsetBytes % NEEDLE_ALIGNMENT_BYTES === 0, "a footer starts 8-aligned");
  const target = Buffer.alloc(SEAL_FOOTER_SIZE_BYTES);
  SEAL_FOOTER_MAGIC.copy(target, 0);
  target.writeBigUInt64BE(BigInt(footer.volumeId), 8);
  target.writeBigUInt64BE(BigInt(footer.dataEndOffsetBytes), 16);
  target.writeUInt32BE(footer.fileCrc32 >>> 0, 24);
  target.writeUInt32BE(crc32(target.subarray(0, 28)), 28);
  return target;
}

export type SealFooterDecoded = { kind: "footer"; footer: SealFooter } | { kind: "invalid"; reason: "short" | "magic" | "checksum" };

export function decodeSealFooter(source: Uint8Array): SealFooterDecoded {
  if (source.length < SEAL_FOOTER_SIZE_BYTES) return { kind: "invalid", reason: "short" };
  const view = Buffer.from(source.buffer, source.byteOffset, SEAL_FOOTER_SIZE_BYTES);
  if (!view.subarray(0, 8).equals(SEAL_FOOTER_MAGIC)) return { kind: "invalid", reason: "magic" };
  if (crc32(view.subarray(0, 28)) !== view.readUInt32BE(28)) return { kind: "invalid", reason: "checksum" };
  return {
    kind: "footer",
    footer: {
      volumeId: Number(view.readBigUInt64BE(8)) as VolumeId,
      dataEndOffsetBytes: Number(view.readBigUInt64BE(16)),
      fileCrc32: view.readUInt32BE(24),
    },
  };
}

/** True when `source` starts with the footer magic (a scan then tries to decode a footer). */
export function startsWithSealFooterMagic(source: Uint8Array): boolean {
  return source.length >= 8 && Buffer.from(source.buffer, source.byteOffset, 8).equals(SEAL_FOOTER_MAGIC);
}
