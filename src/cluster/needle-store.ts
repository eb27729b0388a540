/**
 * The seam between the gateway's data path and the data nodes. In `cairn server` the data path
 * calls a data node in-process through this interface; in a cluster it calls the same methods
 * over the internal RPC API (rpc.ts). Nothing above this seam knows which.
 */
import type { NeedleId, NodeId, VolumeId } from "../base/index.js";

export interface WriteNeedleInput {
  volumeId: VolumeId;
  needleId: NeedleId;
  /** The whole needle payload (one chunk, at most NEEDLE_DATA_SIZE_BYTES_MAX). */
  data: Buffer;
  /** CRC32 of `data`, computed by the writer; the data node checks it before appending. */
  crc32: number;
  /**
   * The writer computed `crc32` over this very memory (not over a copy of the bytes, nor received
   * from elsewhere), and nothing changes it until the write settles: a data node in the same
   * process may take the CRC without another pass. Never carried over the wire; a remote data
   * node always checks.
   */
  crc32OfTheseBytes?: boolean;
}

export interface ReadNeedleInput {
  volumeId: VolumeId;
  needleId: NeedleId;
  /** Byte range inside the needle's payload; the whole payload when absent. */
  offsetBytes?: number;
  lengthBytes?: number;
  /**
   * The caller releases the bytes it is given with releaseChunkBufferOf once done (after a socket
   * has sent them): a store may then answer with a view of a pooled chunk buffer (an in-process
   * one for a whole large needle, a remote one for a range of known length). Plain memory is
   * released as nothing.
   */
  intoChunkBuffer?: boolean;
  /**
   * A buffer of exactly the length asked for, which the store may answer in (the answer is then
   * this very buffer) rather than in memory of its own; nothing writes into it once the read has
   * settled. Lets a caller gather the pieces of a chunk in one pooled buffer without a copy each.
   */
  into?: Buffer;
}

export interface VolumeStatus {
  volumeId: VolumeId;
  state: "writable" | "sealed";
  sizeBytes: number;
  needleCount: number;
  deletedNeedleCount: number;
}

export interface NeedleStore {
  readonly nodeId: NodeId;
  /** Create an empty read-write volume (idempotent for an existing volume id). */
  createVolume(volumeId: VolumeId): Promise<void>;
  /**
   * Append one needle; resolves only once it is fsynced and in the object mapping.
   * Rejects with VolumeFull (the volume was sealed; write elsewhere), VolumeNotFound,
   * ChecksumMismatch (the data does not match `crc32`).
   * A sealed volume that already holds the needle acknowledges the write: at once when its copy
   * verifies (a retry), after rewriting its copy in place when that copy is corrupt (repair).
   */
  writeNeedle(input: WriteNeedleInput): Promise<void>;
  /**
   * Read a needle's payload (or a range of it), verifying its checksum.
   * Rejects with NeedleNotFound (never written, or deleted) or ChecksumMismatch (rot on disk).
   */
  readNeedle(input: ReadNeedleInput): Promise<Buffer>;
  /** Mark-delete: append a tombstone; idempotent; durable when it resolves. */
  deleteNeedle(input: { volumeId: VolumeId; needleId: NeedleId }): Promise<void>;
  volumeStatuses(): Promise<VolumeStatus[]>;
  close(): Promise<void>;
}

/** One needle as a volume's object mapping holds it: what repair compares across replicas. */
export interface NeedleListEntry {
  needleId: NeedleId;
  /** Payload size; 0 for a tombstone of a needle this replica never held. */
  dataSizeBytes: number;
  /** Mark-deleted here: this needle must never be copied anywhere again. */
  tombstone: boolean;
}

export interface ListNeedlesInput {
  volumeId: VolumeId;
  /** Entries strictly after this id, in needle-id order; from the first when absent. */
  afterNeedleId?: NeedleId;
  countMax: number;
}

/** What rewriteNeedle did with a good copy of a needle. */
export type RewriteNeedleOutcome =
  /** The needle's bytes were written again at its mapped offset (sealed volume). */
  | "rewritten-in-place"
  /** Appended: the replica had no row for it, or a rotted one, and its volume is writable. */
  | "appended"
  /** The replica's copy verified and matches: nothing written (a stale damage report). */
  | "intact"
  /** The replica holds a tombstone for it: nothing written, it stays dead. */
  | "tombstoned";

/**
 * The calls repair and drain make on a data node, beside the data path's. Kept apart from
 * NeedleStore so the data path (and its test fakes) need not know them.
 */
export interface RepairNeedleStore extends NeedleStore {
  /** A page of a volume's needles and tombstones in needle-id order (at most countMax). */
  listNeedles(input: ListNeedlesInput): Promise<NeedleListEntry[]>;
  /**
   * Put a verified copy of a needle back on a replica that lost or rotted it. Rejects with
   * NeedleNotFound when the replica has no row for it and its volume is sealed (nothing can
   * be appended there: the replica has to be re-created whole), ChecksumMismatch when `data`
   * does not match `crc32` or the mapped size.
   */
  rewriteNeedle(input: WriteNeedleInput): Promise<RewriteNeedleOutcome>;
  /**
   * Seal a volume on the data node as a full one is sealed (footer, fsync, mapping state), after
   * the appends already queued there; later appends get VolumeFull. Idempotent: a sealed volume
   * (or a damaged or failed one, which takes no appends either) is left as it is. Rejects with
   * VolumeNotFound, or with the write failure (DiskFull, I/O) if the footer cannot be written.
   */
  sealVolume(input: { volumeId: VolumeId }): Promise<VolumeStatus>;
}

export function isRepairNeedleStore(store: NeedleStore): store is RepairNeedleStore {
  const candidate = store as Partial<RepairNeedleStore>;
  return typeof candidate.listNeedles === "function" && typeof candidate.rewriteNeedle === "function" && typeof candidate.sealVolume === "function";
}

// ---- Operating errors: expected, typed, carrying ids (mapped to S3 errors at the edge) ----

export class VolumeFull extends Error {
  override name = "VolumeFull";
  constructor(readonly volumeId: VolumeId) {
    super(`volume ${volumeId} is full (sealed)`);
  }
}

export class VolumeNotFound extends Error {
  override name = "VolumeNotFound";
  constructor(readonly volumeId: VolumeId) {
    super(`volume ${volumeId} not found`);
  }
}

export class NeedleNotFound extends Error {
  override name = "NeedleNotFound";
  constructor(readonly volumeId: VolumeId, readonly needleId: NeedleId) {
    super(`needle ${needleId} not found in volume ${volumeId}`);
  }
}

export class ChecksumMismatch extends Error {
  override name = "ChecksumMismatch";
  constructor(readonly volumeId: VolumeId, readonly needleId: NeedleId) {
    super(`checksum mismatch for needle ${needleId} in volume ${volumeId}`);
  }
}

export class DiskFull extends Error {
  override name = "DiskFull";
  constructor(readonly volumeId: VolumeId) {
    super(`no space left for volume ${volumeId}`);
  }
}
