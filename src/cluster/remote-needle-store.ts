/**
 * A data node seen through its internal RPC API: the same NeedleStore the data path calls
 * in-process in `cairn server`, here over RpcClient (methods and shapes in messages.ts).
 *
 * Typed operating errors (VolumeFull, VolumeNotFound, NeedleNotFound, ChecksumMismatch,
 * DiskFull) are rebuilt from their names by rpc.ts, so callers handle them exactly as they
 * would the in-process ones. A peer that cannot be reached, or does not answer within
 * `timeoutMs`, rejects with PeerUnavailable: read another replica, never wait on a hung node.
 */
import {
  CHUNK_BUFFER_RESERVE_COUNT,
  CHUNK_BUFFER_SIZE_BYTES,
  KIBIBYTE,
  releaseChunkBuffer,
  tryTakeChunkBuffer,
  type ChunkBuffer,
  type NeedleId,
  type NodeId,
  type VolumeId,
} from "../base/index.js";
import type {
  ListNeedlesInput,
  NeedleListEntry,
  ReadNeedleInput,
  RepairNeedleStore,
  RewriteNeedleOutcome,
  VolumeStatus,
  WriteNeedleInput,
} from "./needle-store.js";
import { PeerUnavailable, RPC_TIMEOUT_MS_DEFAULT, RpcClient } from "./rpc.js";

/**
 * Reads from this length on may be answered in a pooled chunk buffer; a shorter answer usually
 * arrives in one socket read, whose own memory it is then answered in.
 */
const POOLED_READ_BYTES_MIN = 64 * KIBIBYTE;

export interface RemoteNeedleStoreOptions {
  nodeId: NodeId;
  /** Base URL of the data node's internal API, as it heartbeats it (e.g. http://10.0.0.5:9100). */
  address: string;
  /** The cluster secret every internal request is signed with. */
  secret: string;
  /** Deadline of one call; RPC_TIMEOUT_MS_DEFAULT when absent. */
  timeoutMs?: number;
}

export class RemoteNeedleStore implements RepairNeedleStore {
  readonly nodeId: NodeId;
  readonly address: string;
  private readonly client: RpcClient;
  private readonly timeoutMs: number;

  constructor(options: RemoteNeedleStoreOptions) {
    this.nodeId = options.nodeId;
    this.address = options.address;
    this.timeoutMs = options.timeoutMs ?? RPC_TIMEOUT_MS_DEFAULT;
    this.client = new RpcClient(options.address, options.secret);
  }

  async createVolume(volumeId: VolumeId): Promise<void> {
    await this.client.call<null>("createVolume", { volumeId }, { timeoutMs: this.timeoutMs });
  }

  async writeNeedle(input: WriteNeedleInput): Promise<void> {
    const query = { volumeId: String(input.volumeId), needleId: input.needleId, crc32: String(input.crc32 >>> 0) };
    await this.client.writeBlob<null>("writeNeedle", query, input.data, { timeoutMs: this.timeoutMs });
  }

  /**
   * With `intoChunkBuffer` and a length known, a framed answer is copied from the socket into a
   * pooled chunk buffer (when one is spare) and a view of it is returned: one fresh buffer less
   * per 1 MiB GET, whose external memory V8 answers with full mark-compacts.
   */
  async readNeedle(input: ReadNeedleInput): Promise<Buffer> {
    const query: Record<string, string> = { volumeId: String(input.volumeId), needleId: input.needleId };
    if (input.offsetBytes !== undefined) query.offsetBytes = String(input.offsetBytes);
    if (input.lengthBytes !== undefined) query.lengthBytes = String(input.lengthBytes);
    let pooled: ChunkBuffer | undefined;
    let into = input.into;
    const lengthBytes = input.lengthBytes ?? 0;
    if (into === undefined && input.intoChunkBuffer === true && lengthBytes >= POOLED_READ_BYTES_MIN && lengthBytes <= CHUNK_BUFFER_SIZE_BYTES) {
      pooled = tryTakeChunkBuffer(CHUNK_BUFFER_RESERVE_COUNT);
      into = pooled?.bytes.subarray(0, lengthBytes);
    }
    let data: Buffer;
    try {
      data = await this.client.readBlob("readNeedle", query, { timeoutMs: this.timeoutMs, ...(into !== undefined ? { into } : {}) });
    } catch (error) {
      if (pooled !== undefined) releaseChunkBuffer(pooled); // the read has settled: nothing writes into it now
      throw error;
    }
    if (pooled !== undefined && data !== into) releaseChunkBuffer(pooled); // answered in memory of its own
    // The data node verified the needle's CRC before answering, and the RPC's framing (a frame's
    // length, or HTTP's) catches a cut body; what is left to check here is that the answer is the
    // range we asked for. A wrong length is a bad answer from this peer, not rot on its disk: read
    // another replica, but do not report the needle for repair.
    if (input.lengthBytes !== undefined && data.length !== input.lengthBytes) {
      throw new PeerUnavailable(this.address, `readNeedle answered ${data.length} bytes, ${input.lengthBytes} were asked for`);
    }
    return data;
  }

  async deleteNeedle(input: { volumeId: VolumeId; needleId: NeedleId }): Promise<void> {
    await this.client.call<null>("deleteNeedle", { volumeId: input.volumeId, needleId: input.needleId }, { timeoutMs: this.timeoutMs });
  }

  async volumeStatuses(): Promise<VolumeStatus[]> {
    return this.client.call<VolumeStatus[]>("volumeStatuses", {}, { timeoutMs: this.timeoutMs });
  }

  async listNeedles(input: ListNeedlesInput): Promise<NeedleListEntry[]> {
    return this.client.call<NeedleListEntry[]>("listNeedles", { ...input }, { timeoutMs: this.timeoutMs });
  }

  async rewriteNeedle(input: WriteNeedleInput): Promise<RewriteNeedleOutcome> {
    const query = { volumeId: String(input.volumeId), needleId: input.needleId, crc32: String(input.crc32 >>> 0) };
    return this.client.writeBlob<RewriteNeedleOutcome>("rewriteNeedle", query, input.data, { timeoutMs: this.timeoutMs });
  }

  async sealVolume(input: { volumeId: VolumeId }): Promise<VolumeStatus> {
    return this.client.call<VolumeStatus>("sealVolume", { volumeId: input.volumeId }, { timeoutMs: this.timeoutMs });
  }

  /** Closes the pooled sockets to this peer; the data node itself keeps running. */
  async close(): Promise<void> {
    this.client.close();
  }
}
