/**
 * Helpers shared by the data node's tests and its crash child: temporary disks and needles whose
 * bytes follow from their id, so a process that never saw the writer can check every byte.
 */
import { createHash } from "node:crypto";
import assert from "node:assert/strict";
import { mkdtemp, open, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { crc32, newNeedleId, type NeedleId, type NodeId, type VolumeId } from "../base/index.js";
import { decodeNeedle, decodeNeedleHeader, startsWithSealFooterMagic, SUPERBLOCK_SIZE_BYTES } from "./needle-codec.js";

export const TEST_NODE_ID = "node-test" as NodeId;

export interface TemporaryDisks {
  root: string;
  disks: string[];
  cleanup(): Promise<void>;
}

export async function makeTemporaryDisks(diskCount = 1): Promise<TemporaryDisks> {
  const root = await mkdtemp(join(tmpdir(), "cairn-datanode-"));
  const disks = Array.from({ length: diskCount }, (_, index) => join(root, `disk${index}`));
  return { root, disks, cleanup: () => rm(root, { recursive: true, force: true }) };
}

/** Deterministic payload for a needle id: SHA-256 in counter mode. */
export function needleBytes(needleId: NeedleId, sizeBytes: number): Buffer {
  const out = Buffer.alloc(sizeBytes);
  for (let block = 0, offset = 0; offset < sizeBytes; block++, offset += 32) {
    createHash("sha256").update(needleId).update(String(block)).digest().copy(out, offset);
  }
  return out;
}

export function makeNeedle(volumeId: VolumeId, sizeBytes: number): { volumeId: VolumeId; needleId: NeedleId; data: Buffer; crc32: number } {
  const needleId = newNeedleId();
  const data = needleBytes(needleId, sizeBytes);
  return { volumeId, needleId, data, crc32: crc32(data) };
}

export function volumePath(disk: string, volumeId: number): string {
  return join(disk, "volumes", `${volumeId}.vol`);
}

/** Needle payload size the compaction tests and their crash child use with 64 KiB volumes. */
/** XORs one byte of a file with `mask`: the smallest damage a checksum must catch. */
export async function flipByte(path: string, offsetBytes: number, mask = 0x01): Promise<void> {
  const file = await open(path, "r+");
  try {
    const byte = Buffer.alloc(1);
    await file.read(byte, 0, 1, offsetBytes);
    byte[0] = byte[0]! ^ mask;
    await file.write(byte, 0, 1, offsetBytes);
  } finally {
    await file.close();
  }
}

export const SMALL_VOLUME_SIZE_BYTES = 64 * 1024;
export const SMALL_NEEDLE_SIZE_BYTES = 4000;

export interface FilledVolume {
  /** Needles still live. */
  live: { volumeId: VolumeId; needleId: NeedleId; data: Buffer; crc32: number }[];
  /** Needles deleted (their bytes are garbage), plus one never-written id deleted on the sealed volume. */
  deleted: { volumeId: VolumeId; needleId: NeedleId }[];
}

/**
 * Fills `volumeId` until it seals, deleting one needle while it is still writable (a tombstone
 * needle in the file) and then `deleteShare` of the rest on the sealed volume (tombstones in the
 * mapping only), plus one tombstone for a needle the volume never held.
 */
export async function fillSealAndDelete(
  node: {
    createVolume(volumeId: VolumeId): Promise<void>;
    writeNeedle(input: { volumeId: VolumeId; needleId: NeedleId; data: Buffer; crc32: number }): Promise<void>;
    deleteNeedle(input: { volumeId: VolumeId; needleId: NeedleId }): Promise<void>;
  },
  volumeId: VolumeId,
  deleteShare: number,
): Promise<FilledVolume> {
  await node.createVolume(volumeId);
  const written: FilledVolume["live"] = [];
  const deleted: FilledVolume["deleted"] = [];
  for (let index = 0; ; index++) {
    const needle = makeNeedle(volumeId, index % 3 === 0 ? SMALL_NEEDLE_SIZE_BYTES : SMALL_NEEDLE_SIZE_BYTES - 13 * index);
    try {
      await node.writeNeedle(needle);
    } catch (error) {
      if ((error as Error).name === "VolumeFull") break;
      throw error;
    }
    written.push(needle);
    if (index === 2) {
      await node.deleteNeedle(written[1]!);
      deleted.push(written[1]!);
    }
  }
  const candidates = written.filter((needle) => !deleted.includes(needle));
  const deleteCount = Math.round(candidates.length * deleteShare);
  // Every other one first, so survivors sit between dead needles.
  const order = [...candidates.filter((_, index) => index % 2 === 0), ...candidates.filter((_, index) => index % 2 === 1)];
  for (const needle of order.slice(0, deleteCount)) {
    await node.deleteNeedle(needle);
    deleted.push(needle);
  }
  const unknown = { volumeId, needleId: newNeedleId() };
  await node.deleteNeedle(unknown);
  deleted.push(unknown);
  return { live: written.filter((needle) => !deleted.includes(needle)), deleted };
}

/** Every needle of a volume file in file order (padding too), each checked to decode and verify; stops at a seal footer. */
export async function needlesInVolumeFile(path: string): Promise<Array<{ offsetBytes: number; flags: number; dataSizeBytes: number }>> {
  const file = await readFile(path);
  const needles: Array<{ offsetBytes: number; flags: number; dataSizeBytes: number }> = [];
  for (let offsetBytes = SUPERBLOCK_SIZE_BYTES; offsetBytes < file.length && !startsWithSealFooterMagic(file.subarray(offsetBytes)); ) {
    const header = decodeNeedleHeader(file.subarray(offsetBytes));
    assert.equal(header.kind, "header", `a needle at ${offsetBytes}`);
    if (header.kind !== "header") break;
    assert.equal(decodeNeedle(file.subarray(offsetBytes, offsetBytes + header.encodedSizeBytes)).kind, "needle", `needle at ${offsetBytes} verifies`);
    needles.push({ offsetBytes, flags: header.header.flags, dataSizeBytes: header.header.dataSizeBytes });
    offsetBytes += header.encodedSizeBytes;
  }
  return needles;
}
