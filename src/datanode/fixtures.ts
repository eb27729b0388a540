/**
 * Helpers shared by the data node's tests and its crash child: temporary disks and needles whose
 * bytes follow from their id, so a process that never saw the writer can check every byte.
 */
import { createHash } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { crc32, newNeedleId, type NeedleId, type NodeId, type VolumeId } from "../base/index.js";

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
