/**
 * Large needles' data goes to the volume file around the page cache (O_DIRECT), as MinIO writes
 * large objects.
 *
 * Why: a buffered write copies every byte into the page cache, and writeback (at the group's
 * fdatasync) walks those pages again. Measured on this machine's ext4, 512 MiB in 4 MiB writes
 * cost 474-615 ms of CPU buffered and 28-29 ms with O_DIRECT, at twice the throughput; in the
 * server that was about 50 ms of a 64 MiB PUT's 250, taken from the hashing threads that set
 * the pace of large PUTs on two cores. A large object is seldom read right after it is written,
 * so its bytes gain little from the cache; its reads come from the disk, around the cache as well
 * (linesUpForDirectRead).
 *
 * How: O_DIRECT wants the file offset, the length and the memory address aligned to the
 * device's block size (DIRECT_IO_ALIGNMENT_BYTES covers 512 and 4096). A PUT's chunk sits in a
 * pooled chunk buffer, whose memory starts at a page boundary, at a known offset within a page;
 * the volume places the chunk's needle (with a padding needle before it when needed) so that
 * the data's file offset has that same offset within a page. Then every page-aligned stretch of
 * the data in the file is a page-aligned stretch of memory: the middle of the data is written
 * from the chunk buffer itself through the O_DIRECT descriptor, without a copy, and the rest
 * (padding, header, the data's partial first and last pages, checksum) through the ordinary one.
 * No page is written both ways. The group's fdatasync then makes all of it durable (both
 * descriptors are the same inode), and the file's bytes are exactly what a buffered writev of
 * the same parts would leave, so recovery, checksums and reads do not care how they were written.
 *
 * Where O_DIRECT is refused (tmpfs, some network file systems, devices with larger blocks) the
 * open fails or the first write fails with EINVAL; the volume then writes buffered only.
 */
import { constants, writevSync } from "node:fs";
import { open, rm, writeFile, type FileHandle } from "node:fs/promises";
import { join } from "node:path";
import { assert, MEBIBYTE, MEMORY_PAGE_SIZE_BYTES, pageOffsetOf, type ChunkBuffer } from "../base/index.js";

/** Covers 512-byte and 4 KiB logical blocks alike; also the page size of chunk buffers' memory. */
export const DIRECT_IO_ALIGNMENT_BYTES = MEMORY_PAGE_SIZE_BYTES;
/**
 * Only needle data at least this large is written around the page cache: chunks of large
 * objects. Small objects stay cached, where their GETs find them.
 */
export const DIRECT_WRITE_BYTES_MIN = 2 * MEBIBYTE;

/** One part of a group's bytes, in file order; `direct` only where the memory allows it (see above). */
export interface GroupPart {
  bytes: Buffer;
  direct: boolean;
}

/**
 * A second descriptor of the file with O_DIRECT, for writing (appends) or reading (large needles
 * read back, see linesUpForDirectRead), or undefined where that is refused.
 */
export async function openDirect(path: string, access: "write" | "read"): Promise<FileHandle | undefined> {
  const O_DIRECT = (constants as { O_DIRECT?: number }).O_DIRECT;
  if (O_DIRECT === undefined) return undefined;
  try {
    return await open(path, (access === "write" ? constants.O_WRONLY : constants.O_RDONLY) | O_DIRECT);
  } catch {
    return undefined;
  }
}

/**
 * Whether a needle read of `lengthBytes` at `positionBytes` can go through the O_DIRECT
 * descriptor into `into` (needle-verify-worker.ts): the needle is large enough to have been
 * written around the page cache (a smaller one that happens to start on a page is likely in the
 * cache, which O_DIRECT would not use), the read starts on a page of the file (such a needle
 * does) and, rounded up to whole pages, fits the buffer, whose memory starts on a page. Such reads skip the page cache as the writes did: on this
 * machine's virtual disk a 1 GiB read in 4 MiB requests cost 0.12 s of CPU with O_DIRECT and
 * 1.08 s through the page cache (readahead in small requests, each copied once more).
 */
export function linesUpForDirectRead(into: ChunkBuffer, positionBytes: number, lengthBytes: number): boolean {
  return (
    lengthBytes >= DIRECT_WRITE_BYTES_MIN &&
    pageOffsetOf(into.bytes) === 0 &&
    positionBytes % DIRECT_IO_ALIGNMENT_BYTES === 0 &&
    directReadLengthBytes(lengthBytes) <= into.bytes.length
  );
}

/** A direct read's length: whole pages. */
export function directReadLengthBytes(lengthBytes: number): number {
  return Math.ceil(lengthBytes / DIRECT_IO_ALIGNMENT_BYTES) * DIRECT_IO_ALIGNMENT_BYTES;
}

/** Whether files in `directory` open with O_DIRECT at all (tmpfs refuses it), tried on a probe file. */
export async function directWritesAllowedIn(directory: string): Promise<boolean> {
  const probePath = join(directory, ".direct-io-probe");
  await writeFile(probePath, "");
  try {
    const handle = await openDirect(probePath, "write");
    await handle?.close();
    return handle !== undefined;
  } finally {
    await rm(probePath, { force: true });
  }
}

/** The device or file system refused an O_DIRECT write: write buffered from now on. */
export class DirectWriteRefused extends Error {
  override name = "DirectWriteRefused";
}

/**
 * Writes `parts` one after another from `positionBytes`: the page-aligned middle of each direct
 * part through `direct`, everything else through `buffered`, in file order. Resolves to the bytes
 * written through `direct`. Rejects with DirectWriteRefused when an O_DIRECT write fails with
 * EINVAL (the caller then writes the same bytes buffered over whatever got written), and with
 * any other I/O error as it is.
 */
export async function writeParts(buffered: FileHandle, direct: FileHandle, parts: readonly GroupPart[], positionBytes: number): Promise<number> {
  let run: Buffer[] = [];
  let runStart = positionBytes;
  let position = positionBytes;
  let directBytes = 0;
  for (const part of parts) {
    const middleStart = alignUp(position);
    const middleEnd = alignDown(position + part.bytes.length);
    const middle = part.direct && middleEnd - middleStart >= DIRECT_WRITE_BYTES_MIN ? part.bytes.subarray(middleStart - position, middleEnd - position) : undefined;
    if (middle === undefined || pageOffsetOf(middle) !== 0) {
      run.push(part.bytes);
      position += part.bytes.length;
      continue;
    }
    if (middleStart > position) run.push(part.bytes.subarray(0, middleStart - position));
    if (run.length > 0) await writeAllAt(buffered, run, runStart);
    await writeDirect(direct, middle, middleStart);
    directBytes += middle.length;
    run = middleEnd < position + part.bytes.length ? [part.bytes.subarray(middleEnd - position)] : [];
    runStart = middleEnd;
    position += part.bytes.length;
  }
  if (run.length > 0) await writeAllAt(buffered, run, runStart);
  return directBytes;
}

async function writeDirect(direct: FileHandle, bytes: Buffer, positionBytes: number): Promise<void> {
  let writtenBytes = 0;
  while (writtenBytes < bytes.length) {
    let bytesWritten: number;
    try {
      ({ bytesWritten } = await direct.write(bytes, writtenBytes, bytes.length - writtenBytes, positionBytes + writtenBytes));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "EINVAL") throw new DirectWriteRefused(`O_DIRECT write refused: ${(error as Error).message}`);
      throw error;
    }
    // A short O_DIRECT write stops at a block boundary; one that does not cannot be continued.
    if (bytesWritten === 0 || bytesWritten % DIRECT_IO_ALIGNMENT_BYTES !== 0) {
      throw new DirectWriteRefused(`O_DIRECT write stopped after ${bytesWritten} of ${bytes.length - writtenBytes} bytes`);
    }
    writtenBytes += bytesWritten;
  }
}

/** One writev of `buffers` at `positionBytes`; loops only if the kernel wrote part of it. */
export async function writeAllAt(fileHandle: FileHandle, buffers: Buffer[], positionBytes: number): Promise<void> {
  let remaining = buffers;
  let position = positionBytes;
  while (remaining.length > 0) {
    const { bytesWritten } = await fileHandle.writev(remaining, position);
    position += bytesWritten;
    remaining = afterWritten(remaining, bytesWritten);
  }
}

/**
 * writeAllAt on the calling thread: for a few KiB, one writev into the page cache costs less than
 * handing it to libuv's thread pool and waiting for the answer (see Volume.writeGroup).
 */
export function writeAllAtSync(fd: number, buffers: Buffer[], positionBytes: number): void {
  let remaining = buffers;
  let position = positionBytes;
  while (remaining.length > 0) {
    const bytesWritten = writevSync(fd, remaining, position);
    position += bytesWritten;
    remaining = afterWritten(remaining, bytesWritten);
  }
}

/** What of `buffers` is left once the kernel wrote the first `bytesWritten` bytes of them. */
function afterWritten(buffers: Buffer[], bytesWritten: number): Buffer[] {
  assert(bytesWritten > 0, "writev makes progress");
  let skipBytes = bytesWritten;
  const next: Buffer[] = [];
  for (const buffer of buffers) {
    if (skipBytes >= buffer.length) {
      skipBytes -= buffer.length;
      continue;
    }
    next.push(skipBytes > 0 ? buffer.subarray(skipBytes) : buffer);
    skipBytes = 0;
  }
  return next;
}

function alignUp(bytes: number): number {
  return Math.ceil(bytes / DIRECT_IO_ALIGNMENT_BYTES) * DIRECT_IO_ALIGNMENT_BYTES;
}

function alignDown(bytes: number): number {
  return Math.floor(bytes / DIRECT_IO_ALIGNMENT_BYTES) * DIRECT_IO_ALIGNMENT_BYTES;
}
