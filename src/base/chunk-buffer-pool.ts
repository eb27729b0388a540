/**
 * Chunk-sized buffers reused across requests, for the large-object paths (PUT bodies assembled
 * for hashing and writing, needles read for GET). Allocating a fresh 4 MiB buffer per chunk made
 * the garbage collector the largest source of event-loop stalls: every such buffer counts as
 * external memory, and V8 answers about every 64 MiB of it with a full mark-compact.
 *
 * Each buffer is backed by a SharedArrayBuffer, so a worker thread (hashing, needle reads) works
 * on the same memory without a copy or a transfer. Workers learn a pooled buffer once (its id
 * and memory) and are sent only its id afterwards (see chunkBufferRef), so no per-message
 * wrapper is created on either side.
 *
 * There are at most CHUNK_BUFFER_POOL_COUNT_MAX buffers, created on demand; nobody waits for
 * one. When none is free, a taker does without, as before the pool: a needle read uses a buffer
 * of its own, a PUT body a plain chunk hashed from copies. Needle reads take one only while more
 * than CHUNK_BUFFER_RESERVE_COUNT are left, so slow GET clients (whose buffers come back only once
 * their sockets have sent them) leave some to PUTs. There is no overflow SharedArrayBuffer: one
 * sent to a worker stays alive until that worker's heap is collected, which an idle worker
 * seldom does (400 such 4 MiB buffers kept 1.6 GiB resident in a test).
 *
 * Ownership: whoever takes a buffer releases it exactly once, after every reader and writer of
 * its bytes is done (socket writes flushed, file writes settled, worker hashes answered). A
 * second release, or using a buffer after releasing it, is a bug: the pool hands it to the
 * next taker, whose bytes would then change under the first.
 */
import { assert } from "./assert.js";
import { CHUNK_SIZE_BYTES } from "./limits.js";
import { KIBIBYTE } from "./units.js";

/**
 * A chunk buffer holds a whole chunk and the needle framing around it (header, checksum,
 * padding), so a large needle is read from its volume into one buffer with one pread.
 */
export const CHUNK_BUFFER_HEADROOM_BYTES = 4 * KIBIBYTE;
export const CHUNK_BUFFER_SIZE_BYTES = CHUNK_SIZE_BYTES + CHUNK_BUFFER_HEADROOM_BYTES;
/**
 * Where a PUT body's chunk starts in its buffer: at a needle header's size (28 bytes), as the
 * data of a needle read into a buffer does. A volume then starts the chunk's needle at a page
 * boundary of its file, so the chunk's bytes and their place in the file share their offset
 * within a page, which O_DIRECT writes need (see the datanode's direct-write.ts).
 */
export const CHUNK_BUFFER_DATA_OFFSET_BYTES = 28;
/** Chunk buffers in all (132 MiB, resident only once used): 16 concurrent 1 MiB PUTs and a few large PUTs and GETs at full speed. */
export const CHUNK_BUFFER_POOL_COUNT_MAX = 32;
/** Buffers needle reads leave to PUT bodies (which fill one per chunk as the body arrives). */
export const CHUNK_BUFFER_RESERVE_COUNT = 8;

export class ChunkBuffer {
  /** Whether the buffer is handed out now (between take and release). */
  private taken = true;
  /** The whole buffer (CHUNK_BUFFER_SIZE_BYTES) as a Buffer over the shared memory. */
  readonly bytes: Buffer;

  constructor(
    /** 1 and up; workers cache its memory by id. */
    readonly id: number,
    readonly shared: SharedArrayBuffer,
    /** Whether `shared` starts at a page boundary (see newPageAlignedSharedMemory). */
    readonly pageAligned: boolean,
  ) {
    this.bytes = Buffer.from(shared, 0, CHUNK_BUFFER_SIZE_BYTES);
    byMemory.set(shared, this);
  }

  get isTaken(): boolean {
    return this.taken;
  }

  /** @internal the pool's bookkeeping */
  markTaken(taken: boolean): void {
    this.taken = taken;
  }
}

const free: ChunkBuffer[] = [];
/** Every chunk buffer by its memory, so a view of one can be released (releaseChunkBufferOf). */
const byMemory = new WeakMap<ArrayBufferLike, ChunkBuffer>();
let createdCount = 0;

/**
 * A chunk buffer nobody else holds (its contents are whatever the last holder left), or
 * undefined when no more than `reserveCount` would be left: the caller then does without.
 */
export function tryTakeChunkBuffer(reserveCount = 0): ChunkBuffer | undefined {
  if (free.length + (CHUNK_BUFFER_POOL_COUNT_MAX - createdCount) <= reserveCount) return undefined;
  const reused = free.pop();
  if (reused !== undefined) {
    assert(!reused.isTaken, "a free chunk buffer is not handed out");
    reused.markTaken(true);
    return reused;
  }
  createdCount += 1;
  const aligned = newPageAlignedSharedMemory(CHUNK_BUFFER_SIZE_BYTES);
  return aligned === undefined
    ? new ChunkBuffer(createdCount, new SharedArrayBuffer(CHUNK_BUFFER_SIZE_BYTES), false)
    : new ChunkBuffer(createdCount, aligned, true);
}

const WASM_PAGE_SIZE_BYTES = 64 * KIBIBYTE;
/** The memory page size direct I/O aligns to (pageOffsetOf). */
export const MEMORY_PAGE_SIZE_BYTES = 4 * KIBIBYTE;

/**
 * Shared memory that starts at a page boundary: a WebAssembly memory is mapped on its own, where
 * a SharedArrayBuffer comes from malloc. A volume writes a large needle's data from it straight to
 * disk with O_DIRECT, which wants page-aligned memory (see the datanode's direct-write.ts).
 * V8 reserves address space around each one; where that is refused (a process with a virtual
 * memory limit), undefined, and the pool uses plain shared memory, never written that way.
 */
function newPageAlignedSharedMemory(sizeBytes: number): SharedArrayBuffer | undefined {
  const pages = Math.ceil(sizeBytes / WASM_PAGE_SIZE_BYTES);
  let memory: unknown;
  try {
    memory = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true }).buffer;
  } catch {
    return undefined;
  }
  assert(memory instanceof SharedArrayBuffer, "a shared WebAssembly memory is a SharedArrayBuffer");
  return memory;
}

/**
 * Where within a memory page `bytes` starts, when its memory is known to start at a page
 * boundary (a view of a chunk buffer); undefined for other memory.
 */
export function pageOffsetOf(bytes: Uint8Array): number | undefined {
  return byMemory.get(bytes.buffer)?.pageAligned === true ? bytes.byteOffset % MEMORY_PAGE_SIZE_BYTES : undefined;
}

/** Give a buffer back: its bytes may be overwritten by the next taker from now on. */
export function releaseChunkBuffer(buffer: ChunkBuffer): void {
  assert(buffer.isTaken, "a chunk buffer is released once per take");
  buffer.markTaken(false);
  free.push(buffer);
}

/**
 * Release the chunk buffer `bytes` is a view of, when it is one and is taken; plain memory is
 * left alone. For bytes handed through layers that do not know where they came from (a needle
 * read into a chunk buffer, sent to a client): only their final consumer may call this.
 */
export function releaseChunkBufferOf(bytes: Uint8Array): boolean {
  const buffer = byMemory.get(bytes.buffer);
  if (buffer === undefined) return false;
  releaseChunkBuffer(buffer);
  return true;
}

/**
 * Copies source into target at offsetBytes with one memcpy. TypedArray set(), and Buffer copy()
 * which uses it, copies into or out of shared memory (every chunk buffer) with relaxed atomics,
 * byte by byte when source and target are not equally aligned, and a chunk's data starts 28
 * bytes into its buffer: 1.3-2.2 GB/s measured, where fill() with a buffer runs at memory speed.
 */
export function copyBytes(target: Buffer, source: Uint8Array, offsetBytes: number): void {
  if (source.length > 0) target.fill(source, offsetBytes, offsetBytes + source.length);
}

/** Whether `bytes` is a view of a chunk buffer (something to release). */
export function isChunkBufferView(bytes: Uint8Array): boolean {
  return byMemory.has(bytes.buffer);
}

/** Pool statistics, for tests: buffers created, and those free now. */
export function chunkBufferPoolStats(): { createdCount: number; freeCount: number } {
  return { createdCount, freeCount: free.length };
}

/** How a message to a worker names a chunk buffer: its memory only the first time. */
export interface ChunkBufferRef {
  id: number;
  shared: SharedArrayBuffer | undefined;
}

/** The reference to send to a worker that already knows the pooled buffers in `known` (updated). */
export function chunkBufferRef(buffer: ChunkBuffer, known: Set<number>): ChunkBufferRef {
  if (known.has(buffer.id)) return { id: buffer.id, shared: undefined };
  known.add(buffer.id);
  return { id: buffer.id, shared: buffer.shared };
}

/** Worker side of chunkBufferRef: the memory a reference names, remembering pooled buffers in `cache`. */
export function resolveChunkBufferRef(ref: ChunkBufferRef, cache: Map<number, SharedArrayBuffer>): SharedArrayBuffer {
  if (ref.shared !== undefined) {
    cache.set(ref.id, ref.shared);
    return ref.shared;
  }
  const shared = cache.get(ref.id);
  assert(shared !== undefined, "a worker is sent a pooled buffer's memory before its id alone");
  return shared;
}
