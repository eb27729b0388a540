/**
 * The data node's internal API: the data node methods of cluster/messages.ts as RPC routes over
 * a DataNode. Every argument is parsed here, at the edge, so a malformed request is answered with
 * DataNodeRequestInvalid and never reaches the engine's assertions (which would mean a bug).
 *
 *   json  createVolume({ volumeId })               -> null
 *   json  deleteNeedle({ volumeId, needleId })     -> null
 *   json  volumeStatuses({})                       -> VolumeStatus[]
 *   json  listNeedles({ volumeId, afterNeedleId?, countMax }) -> NeedleListEntry[]   (repair)
 *   json  sealVolume({ volumeId })                 -> VolumeStatus            (repair, drain)
 *   blob  rewriteNeedle?volumeId&needleId&crc32    (body: data) -> RewriteNeedleOutcome (repair)
 *   blob  writeNeedle?volumeId&needleId&crc32      (body: data) -> null
 *   blob  readNeedle?volumeId&needleId[&offsetBytes][&lengthBytes] -> data
 *   json  volumeGarbage({})                        -> VolumeGarbage[]          (sealed volumes)
 *   json  compactVolumes({ volumeId?, garbageRatioMin? }) -> CompactionResult[] (admin, tests)
 *   json  scrubVolumes({ volumeId? })              -> VolumeScrubResult[]     (admin, tests)
 *   json  scrubStatus({})                          -> { stats, findings }
 * The last three exist only when the node runs a Compactor / Scrubber.
 */
import { performance } from "node:perf_hooks";
import { isNeedleId, NEEDLE_DATA_SIZE_BYTES_MAX, type NeedleId, type VolumeId } from "../base/index.js";
import { registerRpcError, type ListNeedlesInput, type ReadNeedleInput, type RpcRoutes } from "../cluster/index.js";
import type { Compactor } from "./compaction.js";
import { NeedleRangeInvalid, NeedleTooLarge, type DataNode } from "./data-node.js";
import type { Scrubber } from "./scrubber.js";

/** Weight of the newest write in the write-latency moving average: about the last ten writes count. */
export const WRITE_LATENCY_EMA_WEIGHT = 0.2;
/** A repair listing page holds at most this many needles (about 100 bytes each in JSON). */
export const LIST_NEEDLES_COUNT_MAX = 10_000;
/** Volume ids are positive integers (64-bit in the superblock); JSON and JS carry them exactly up to here. */
const VOLUME_ID_MAX = Number.MAX_SAFE_INTEGER;

/** A request to the data node with a missing or malformed argument. */
export class DataNodeRequestInvalid extends Error {
  override name = "DataNodeRequestInvalid";
  constructor(
    readonly method: string,
    readonly argument: string,
  ) {
    super(`${method}: argument ${argument} is missing or invalid`);
  }
}

// Bad input is the caller's fault, not ours: answer 409 with a typed error (not 500 + a warning
// in our log), and let callers in a process that loaded this module rebuild the classes.
registerRpcError("DataNodeRequestInvalid", (_m, f) => new DataNodeRequestInvalid(String(f.method), String(f.argument)));
registerRpcError(
  "NeedleRangeInvalid",
  (_m, f) => new NeedleRangeInvalid(f.volumeId as VolumeId, f.needleId as NeedleId, Number(f.offsetBytes), Number(f.lengthBytes)),
);
registerRpcError("NeedleTooLarge", (_m, f) => new NeedleTooLarge(f.volumeId as VolumeId, f.needleId as NeedleId, Number(f.dataSizeBytes)));

/**
 * Needle writes served since the node started and their recent mean latency (append + fsync):
 * the signal placement's health detector weighs nodes by. Only acknowledged writes count; a
 * refused one (bad checksum, full volume) says nothing about the disk.
 */
export class WriteStats {
  writeCount = 0;
  /** Exponential moving average, in ms; 0 until the first write. */
  writeLatencyMs = 0;

  record(latencyMs: number): void {
    this.writeLatencyMs = this.writeCount === 0 ? latencyMs : this.writeLatencyMs + WRITE_LATENCY_EMA_WEIGHT * (latencyMs - this.writeLatencyMs);
    this.writeCount += 1;
  }
}

export interface DataNodeRpcRoutesOptions {
  /** Where write counts and latencies are recorded (the heartbeat sender reads them). */
  writeStats?: WriteStats;
  /** Monotonic clock for latencies; performance.now() when absent. */
  nowMs?: () => number;
  /** Serves compactVolumes (an on-demand pass) when present. */
  compactor?: Compactor;
  /** Serves scrubVolumes and scrubStatus when present. */
  scrubber?: Scrubber;
}

export function createDataNodeRpcRoutes(node: DataNode, options: DataNodeRpcRoutesOptions = {}): RpcRoutes {
  const writeStats = options.writeStats ?? new WriteStats();
  const nowMs = options.nowMs ?? (() => performance.now());
  return {
    json: {
      createVolume: async (body) => {
        const fields = jsonObject("createVolume", body);
        await node.createVolume(jsonVolumeId("createVolume", fields));
        return null;
      },
      deleteNeedle: async (body) => {
        const fields = jsonObject("deleteNeedle", body);
        await node.deleteNeedle({ volumeId: jsonVolumeId("deleteNeedle", fields), needleId: jsonNeedleId("deleteNeedle", fields) });
        return null;
      },
      volumeStatuses: async (body) => {
        if (body !== undefined && body !== null) jsonObject("volumeStatuses", body);
        return node.volumeStatuses();
      },
      listNeedles: async (body) => {
        const fields = jsonObject("listNeedles", body);
        const countMax = fields.countMax;
        if (typeof countMax !== "number" || !Number.isSafeInteger(countMax) || countMax < 1 || countMax > LIST_NEEDLES_COUNT_MAX) {
          throw new DataNodeRequestInvalid("listNeedles", "countMax");
        }
        const input: ListNeedlesInput = { volumeId: jsonVolumeId("listNeedles", fields), countMax };
        if (fields.afterNeedleId !== undefined) input.afterNeedleId = jsonNeedleId("listNeedles", { needleId: fields.afterNeedleId });
        return node.listNeedles(input);
      },
      sealVolume: async (body) => {
        const fields = jsonObject("sealVolume", body);
        return node.sealVolume({ volumeId: jsonVolumeId("sealVolume", fields) });
      },
      volumeGarbage: async (body) => {
        if (body !== undefined && body !== null) jsonObject("volumeGarbage", body);
        return node.sealedVolumeGarbage();
      },
      ...(options.compactor === undefined ? {} : { compactVolumes: compactVolumesRoute(options.compactor) }),
      ...(options.scrubber === undefined ? {} : scrubRoutes(options.scrubber)),
    },
    blobWrite: {
      writeNeedle: async (query, data) => {
        const volumeId = queryVolumeId("writeNeedle", query);
        const needleId = queryNeedleId("writeNeedle", query);
        const crc32 = queryInteger("writeNeedle", query, "crc32", 0xffff_ffff);
        if (crc32 === undefined) throw new DataNodeRequestInvalid("writeNeedle", "crc32");
        const startedAtMs = nowMs();
        await node.writeNeedle({ volumeId, needleId, data, crc32 });
        writeStats.record(nowMs() - startedAtMs);
        return null;
      },
      rewriteNeedle: async (query, data) => {
        const volumeId = queryVolumeId("rewriteNeedle", query);
        const needleId = queryNeedleId("rewriteNeedle", query);
        const crc32 = queryInteger("rewriteNeedle", query, "crc32", 0xffff_ffff);
        if (crc32 === undefined) throw new DataNodeRequestInvalid("rewriteNeedle", "crc32");
        return node.rewriteNeedle({ volumeId, needleId, data, crc32 });
      },
    },
    blobRead: {
      readNeedle: async (query) => {
        const input: ReadNeedleInput = { volumeId: queryVolumeId("readNeedle", query), needleId: queryNeedleId("readNeedle", query) };
        const offsetBytes = queryInteger("readNeedle", query, "offsetBytes", NEEDLE_DATA_SIZE_BYTES_MAX);
        const lengthBytes = queryInteger("readNeedle", query, "lengthBytes", NEEDLE_DATA_SIZE_BYTES_MAX);
        if (offsetBytes !== undefined) input.offsetBytes = offsetBytes;
        if (lengthBytes !== undefined) input.lengthBytes = lengthBytes;
        // Ranges past the needle's end are refused by the engine (NeedleRangeInvalid), which
        // alone knows the needle's size.
        return node.readNeedle(input);
      },
    },
  };
}

function compactVolumesRoute(compactor: Compactor): (body: unknown) => Promise<unknown> {
  return async (body) => {
    const fields = body === undefined || body === null ? {} : jsonObject("compactVolumes", body);
    const options: { volumeId?: VolumeId; garbageRatioMin?: number } = {};
    if (fields.volumeId !== undefined) options.volumeId = jsonVolumeId("compactVolumes", fields);
    if (fields.garbageRatioMin !== undefined) {
      const ratio = fields.garbageRatioMin;
      if (typeof ratio !== "number" || !(ratio > 0 && ratio <= 1)) throw new DataNodeRequestInvalid("compactVolumes", "garbageRatioMin");
      options.garbageRatioMin = ratio;
    }
    return compactor.runOnce(options);
  };
}

function scrubRoutes(scrubber: Scrubber): Record<string, (body: unknown) => Promise<unknown>> {
  return {
    scrubVolumes: async (body) => {
      const fields = body === undefined || body === null ? {} : jsonObject("scrubVolumes", body);
      return scrubber.runOnce(fields.volumeId === undefined ? {} : { volumeId: jsonVolumeId("scrubVolumes", fields) });
    },
    scrubStatus: async (body) => {
      if (body !== undefined && body !== null) jsonObject("scrubStatus", body);
      return { stats: scrubber.stats(), findings: scrubber.findings() };
    },
  };
}

// ---- Argument parsing: unknown fields are ignored (a newer caller may send more), known ones
// must be well formed. ----

function jsonObject(method: string, body: unknown): Record<string, unknown> {
  if (typeof body !== "object" || body === null || Array.isArray(body)) throw new DataNodeRequestInvalid(method, "body");
  return body as Record<string, unknown>;
}

function jsonVolumeId(method: string, fields: Record<string, unknown>): VolumeId {
  const value = fields.volumeId;
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 1 || value > VOLUME_ID_MAX) {
    throw new DataNodeRequestInvalid(method, "volumeId");
  }
  return value as VolumeId;
}

function jsonNeedleId(method: string, fields: Record<string, unknown>): NeedleId {
  const value = fields.needleId;
  if (typeof value !== "string" || !isNeedleId(value)) throw new DataNodeRequestInvalid(method, "needleId");
  return value;
}

/** The one value of a query argument; undefined when absent, refused when repeated. */
function queryValue(method: string, query: URLSearchParams, name: string): string | undefined {
  const values = query.getAll(name);
  if (values.length > 1) throw new DataNodeRequestInvalid(method, name);
  return values[0];
}

/** A decimal integer in [0, max] without sign, exponent or leading zeros; undefined when absent. */
function queryInteger(method: string, query: URLSearchParams, name: string, max: number): number | undefined {
  const text = queryValue(method, query, name);
  if (text === undefined) return undefined;
  if (!/^(0|[1-9][0-9]{0,15})$/.test(text)) throw new DataNodeRequestInvalid(method, name);
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value > max) throw new DataNodeRequestInvalid(method, name);
  return value;
}

function queryVolumeId(method: string, query: URLSearchParams): VolumeId {
  const value = queryInteger(method, query, "volumeId", VOLUME_ID_MAX);
  if (value === undefined || value < 1) throw new DataNodeRequestInvalid(method, "volumeId");
  return value as VolumeId;
}

function queryNeedleId(method: string, query: URLSearchParams): NeedleId {
  const value = queryValue(method, query, "needleId");
  if (value === undefined || !isNeedleId(value)) throw new DataNodeRequestInvalid(method, "needleId");
  return value;
}
