/**
 * Baselines measured in the same run as the workloads, on the same machine: single-core MD5
 * (the PUT path must compute it for the ETag), and the data directory's disk for large
 * sequential writes and for small fsynced writes (the ceiling of any fsync-per-PUT design).
 */
import { createHash, randomBytes } from "node:crypto";
import { closeSync, fsyncSync, openSync, unlinkSync, writeSync } from "node:fs";
import * as path from "node:path";

const MEBIBYTE = 1024 * 1024;

export interface Md5Baseline {
  bufferSizeBytes: number;
  /** Best of the passes: the least disturbed by other work on the machine. */
  mibPerSecond: number;
  passes: number;
}

export function measureMd5(passes = 3): Md5Baseline {
  const buffer = randomBytes(64 * MEBIBYTE);
  let bestSeconds = Infinity;
  for (let pass = 0; pass < passes; pass++) {
    const startedAt = performance.now();
    createHash("md5").update(buffer).digest();
    bestSeconds = Math.min(bestSeconds, (performance.now() - startedAt) / 1000);
  }
  return { bufferSizeBytes: buffer.length, mibPerSecond: buffer.length / MEBIBYTE / bestSeconds, passes };
}

export interface DiskBaseline {
  directory: string;
  sequential: { totalBytes: number; writeSizeBytes: number; seconds: number; mibPerSecond: number };
  smallFsync: { writeSizeBytes: number; seconds: number; writes: number; writesPerSecond: number; latencyMsMean: number };
}

export function measureDisk(directory: string, options: { sequentialBytes?: number; smallFsyncSeconds?: number } = {}): DiskBaseline {
  const totalBytes = options.sequentialBytes ?? 256 * MEBIBYTE;
  const writeSizeBytes = 4 * MEBIBYTE;
  const block = randomBytes(writeSizeBytes);
  const sequentialFile = path.join(directory, "disk-baseline-sequential");
  const sequentialStartedAt = performance.now();
  const sequentialFd = openSync(sequentialFile, "w");
  try {
    for (let written = 0; written < totalBytes; written += writeSizeBytes) writeSync(sequentialFd, block);
    fsyncSync(sequentialFd);
  } finally {
    closeSync(sequentialFd);
  }
  const sequentialSeconds = (performance.now() - sequentialStartedAt) / 1000;
  unlinkSync(sequentialFile);

  // Serial appends of 4 KiB, each followed by fsync, as a write-ahead log without group commit.
  const smallFile = path.join(directory, "disk-baseline-fsync");
  const small = randomBytes(4096);
  const smallSeconds = options.smallFsyncSeconds ?? 2;
  const smallFd = openSync(smallFile, "w");
  let writes = 0;
  const smallStartedAt = performance.now();
  try {
    while (performance.now() - smallStartedAt < smallSeconds * 1000) {
      writeSync(smallFd, small);
      fsyncSync(smallFd);
      writes += 1;
    }
  } finally {
    closeSync(smallFd);
  }
  const smallElapsed = (performance.now() - smallStartedAt) / 1000;
  unlinkSync(smallFile);
  return {
    directory,
    sequential: { totalBytes, writeSizeBytes, seconds: sequentialSeconds, mibPerSecond: totalBytes / MEBIBYTE / sequentialSeconds },
    smallFsync: { writeSizeBytes: 4096, seconds: smallElapsed, writes, writesPerSecond: writes / smallElapsed, latencyMsMean: (smallElapsed * 1000) / writes },
  };
}
