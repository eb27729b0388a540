/**
 * The placement service of a cluster (`cairn placement`): takes data nodes' heartbeats, keeps
 * the cluster map, and allocates volumes so that enough writable volumes with all replicas up
 * exist at all times. Gateways read the map (ClusterPlacement) and write to every replica of a
 * writable volume themselves; placement is never on the data path.
 *
 * Node state is derived, not stored: a node whose last heartbeat is older than nodeDownAfterMs
 * is down. After a restart of placement every node gets one full window from the start before
 * it can be called down, so a restart does not publish a map with every node down for the ~2 s
 * until the first heartbeats arrive.
 */
import { randomBytes } from "node:crypto";
import { assert, AssertionError, log, SECOND_MS, type Clock, type NodeId, type VolumeId } from "../base/index.js";
import {
  NODE_DOWN_AFTER_MS,
  type ClusterMap,
  type DamageReport,
  type DiskReport,
  type HeartbeatRequest,
  type HeartbeatResponse,
  type NeedleStore,
  type NodeRecord,
  type NodeState,
  type RepairStatus,
  type RpcRoutes,
  type VolumeStatus,
  type VolumeUsage,
} from "../cluster/index.js";
import { clusterMapProblems, type ClusterMapRecords, type StoredNode } from "./cluster-map-store.js";
import { EC_SHARD_COUNT_MAX, type EcScheme } from "../ec/index.js";
import { layoutName, sameLayout } from "./placement.js";
import { RepairPlanner } from "./repair.js";
import { allocateReplicas, candidateFromNode, InsufficientNodes } from "./volume-allocator.js";

export const REPLICA_COUNT_DEFAULT = 3;
/** Writable volumes kept with all replicas up: more spreads concurrent PUTs over more files and disks. */
export const WRITABLE_VOLUME_TARGET_DEFAULT = 4;
/** The background tick notices down nodes and grows volumes this often. */
export const PLACEMENT_TICK_INTERVAL_MS = 1 * SECOND_MS;
/** Replica sets tried for one new volume before growth gives up until the next tick. */
export const VOLUME_ALLOCATION_ATTEMPTS_MAX = 3;
/** Damage reports kept in memory for the (future) repair planner; the oldest are dropped. */
export const DAMAGE_REPORTS_KEPT_MAX = 10_000;
/** Bounds on what a heartbeat may carry: anything larger is a bug or an attack. */
export const HEARTBEAT_DISKS_COUNT_MAX = 1_024;
export const HEARTBEAT_VOLUMES_COUNT_MAX = 1_000_000;

/** A placement RPC carried a malformed body. */
export class InvalidPlacementRequest extends Error {
  override name = "InvalidPlacementRequest";
}

/** Every replica set tried for a new volume had a node that failed createVolume. */
export class VolumeAllocationFailed extends Error {
  override name = "VolumeAllocationFailed";
  constructor(readonly volumeId: VolumeId) {
    super(`could not create volume ${volumeId} on a full replica set`);
  }
}

export interface PlacementServiceOptions {
  clock: Clock;
  store: ClusterMapRecords;
  /** Reaches a node's NeedleStore (createVolume); over RPC in a cluster, fakes in tests. */
  storeFor: (node: NodeRecord) => NeedleStore;
  replicaCount?: number;
  writableVolumeTarget?: number;
  nodeDownAfterMs?: number;
  /** A node down this long is out and repair re-creates its replicas (NODE_OUT_AFTER_MS_DEFAULT). */
  nodeOutAfterMs?: number;
  /** Repair's copy rate over all tasks (REPAIR_COPY_BYTES_PER_SECOND_DEFAULT). */
  repairCopyBytesPerSecond?: number;
  /** Float in [0, 1); seeded in tests. */
  random?: () => number;
  newNodeId?: () => NodeId;
}

export class PlacementService {
  readonly replicaCount: number;
  readonly writableVolumeTarget: number;
  readonly nodeDownAfterMs: number;
  private readonly clock: Clock;
  private readonly store: ClusterMapRecords;
  private readonly storeFor: (node: NodeRecord) => NeedleStore;
  private readonly random: () => number;
  private readonly newNodeId: () => NodeId;
  private readonly startedAtMs: number;
  private readonly needleStores = new Map<NodeId, { address: string; store: NeedleStore }>();
  /** The state each node had in the last map served, to bump the version when one changes. */
  private readonly servedStates = new Map<NodeId, NodeState>();
  private readonly damage: DamageReport[] = [];
  /** Each node's volumes as its last heartbeat reported them (for status: raw bytes per class). */
  private readonly reportedVolumes = new Map<NodeId, readonly VolumeStatus[]>();
  /** One growth at a time per layout ("replicated", "EC:4+2", ...). */
  private readonly growing = new Map<string, Promise<void>>();
  /** Erasure-coding schemes gateways have asked for: the tick keeps writable volumes of each. */
  private readonly ecSchemesInUse = new Map<string, EcScheme>();
  readonly repair: RepairPlanner;
  private lastGrowthProblem: string | undefined;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(options: PlacementServiceOptions) {
    this.clock = options.clock;
    this.store = options.store;
    this.storeFor = options.storeFor;
    this.replicaCount = options.replicaCount ?? REPLICA_COUNT_DEFAULT;
    this.writableVolumeTarget = options.writableVolumeTarget ?? WRITABLE_VOLUME_TARGET_DEFAULT;
    this.nodeDownAfterMs = options.nodeDownAfterMs ?? NODE_DOWN_AFTER_MS;
    this.random = options.random ?? Math.random;
    this.newNodeId = options.newNodeId ?? (() => `node-${randomBytes(8).toString("hex")}` as NodeId);
    this.startedAtMs = this.clock.nowMs();
    assert(Number.isInteger(this.replicaCount) && this.replicaCount >= 1, "replicaCount is a positive integer");
    assert(Number.isInteger(this.writableVolumeTarget) && this.writableVolumeTarget >= 1, "writableVolumeTarget is a positive integer");
    assert(this.nodeDownAfterMs > 0, "nodeDownAfterMs is positive");
    this.repair = new RepairPlanner({
      clock: this.clock,
      store: this.store,
      clusterMap: () => this.clusterMap(),
      storeOf: (node) => this.needleStoreOf(node),
      startedAtMs: this.startedAtMs,
      random: this.random,
      ...(options.nodeOutAfterMs !== undefined ? { nodeOutAfterMs: options.nodeOutAfterMs } : {}),
      ...(options.repairCopyBytesPerSecond !== undefined ? { copyBytesPerSecond: options.repairCopyBytesPerSecond } : {}),
    });
    // Out must come after down: a node is first avoided, and only later written off.
    assert(this.repair.nodeOutAfterMs >= this.nodeDownAfterMs, "nodeOutAfterMs is at least nodeDownAfterMs");
  }

  /** Start the background tick (down-node detection and growth). */
  start(intervalMs: number = PLACEMENT_TICK_INTERVAL_MS): void {
    assert(this.timer === undefined, "placement tick started once");
    this.timer = setInterval(() => {
      this.tick().catch((error: unknown) => {
        // An invariant broke: the map's state is unknown, so stop (section 8 of STYLE.md).
        if (error instanceof AssertionError) throw error;
        // Anything else (a SQLite error, say) is logged; the next tick tries again.
        log.error({ error }, "placement tick failed");
      });
    }, intervalMs);
    this.timer.unref();
  }

  /** One round of background work; tests call it directly instead of waiting for the timer. */
  async tick(): Promise<void> {
    if (this.closed) return;
    // Serving the map also notices nodes that went down since the last look.
    const map = this.clusterMap();
    // Repair runs beside growth, one pass at a time, never holding up the tick.
    this.repair.kick();
    // Right after start, data nodes are still registering: growing now would spread replicas
    // over whichever zones happened to answer first. Background growth waits one down-timeout
    // (every live node heartbeats within it); a gateway that needs a volume asks growVolumes.
    if (this.clock.nowMs() - this.startedAtMs < this.nodeDownAfterMs) return;
    // Every layout in use keeps its target: replicated always, an EC scheme once a volume of it
    // exists (in the map, so the set survives a restart) or a gateway asked for one.
    for (const volume of map.volumes) if (volume.ec !== null) this.ecSchemesInUse.set(layoutName(volume.ec), volume.ec);
    for (const ec of [null, ...this.ecSchemesInUse.values()]) {
      if (this.healthyWritableCount(map, ec) < this.writableVolumeTarget) await this.growVolumes(ec);
    }
  }

  heartbeat(request: HeartbeatRequest): HeartbeatResponse {
    const nowMs = this.clock.nowMs();
    let nodeId = request.nodeId;
    if (nodeId === undefined) {
      nodeId = this.newNodeId();
      log.info({ nodeId, address: request.address, zone: request.zone, rack: request.rack }, "data node registered");
    } else if (this.store.node(nodeId) === undefined) {
      // A node that kept its id across a loss of the map (or a move to a new placement): its
      // volumes are still on its disks under that id, so adopt the id rather than mint one.
      log.warn({ nodeId, address: request.address }, "unknown data node id adopted");
    }
    const node: StoredNode = {
      nodeId,
      address: request.address,
      zone: request.zone,
      rack: request.rack,
      lastHeartbeatAtMs: nowMs,
      disks: request.disks,
      writeCount: request.writeCount,
      writeLatencyMs: request.writeLatencyMs,
    };
    this.store.putNode(node);
    this.reportedVolumes.set(nodeId, request.volumes);
    this.reconcileVolumes(nodeId, request.volumes);
    return { nodeId, mapVersion: this.store.version() };
  }

  /**
   * The node's own volume states are the truth for sealing: a replica seals when it is full,
   * and a sealed replica refuses writes, so the whole volume stops taking writes. Only nodes in
   * a volume's replica set count: another node may hold an empty orphan of an allocation that
   * failed half-way under the same id.
   */
  private reconcileVolumes(nodeId: NodeId, statuses: readonly VolumeStatus[]): void {
    for (const status of statuses) {
      if (status.state !== "sealed") continue;
      const volume = this.store.volume(status.volumeId);
      if (volume === undefined || volume.state === "sealed" || !volume.replicas.includes(nodeId)) continue;
      // Not awaited: a seal lost here (etcd away) comes back with the node's next heartbeat.
      void Promise.resolve(this.store.sealVolume(status.volumeId)).then(
        (sealed) => sealed && log.info({ volumeId: status.volumeId, nodeId }, "volume sealed (reported by heartbeat)"),
        (error: unknown) => log.warn({ error, volumeId: status.volumeId }, "could not record a sealed volume; the next heartbeat retries"),
      );
    }
  }

  /** The map as served to gateways and nodes, with node states derived from the clock now. */
  clusterMap(): ClusterMap {
    const nowMs = this.clock.nowMs();
    const stateOf = (node: StoredNode): NodeState =>
      nowMs - Math.max(node.lastHeartbeatAtMs, this.startedAtMs) > this.nodeDownAfterMs ? "down" : "up";
    let changed = false;
    for (const node of this.store.nodes()) {
      const state = stateOf(node);
      const previous = this.servedStates.get(node.nodeId);
      if (previous !== undefined && previous !== state) {
        changed = true;
        log.warn({ nodeId: node.nodeId, address: node.address, state }, `data node ${state}`);
      }
      this.servedStates.set(node.nodeId, state);
    }
    // A node going down changes the map without any write; a new version tells readers so.
    if (changed) this.store.bumpVersion();
    const map = this.store.snapshot(stateOf, this.replicaCount);
    const problems = clusterMapProblems(map);
    assert(problems.length === 0, `cluster map invariants: ${problems.join("; ")}`);
    return map;
  }

  /** A replica answered VolumeFull: seal the volume and grow a replacement before answering. */
  async volumeFull(volumeId: VolumeId): Promise<void> {
    const volume = this.store.volume(volumeId);
    if (await this.store.sealVolume(volumeId)) log.info({ volumeId }, "volume sealed (reported full)");
    else if (volume === undefined) log.warn({ volumeId }, "volumeFull for a volume not in the map");
    await this.growVolumes(volume?.ec ?? null);
  }

  /**
   * Make sure writableVolumeTarget writable volumes of the layout (`ec`, null for replicated)
   * with all replicas up exist; returns the map.
   */
  async growVolumes(ec: EcScheme | null = null): Promise<ClusterMap> {
    const layout = layoutName(ec);
    if (ec !== null) this.ecSchemesInUse.set(layout, ec);
    // One growth per layout at a time: concurrent callers would each allocate to the same shortfall.
    let growth = this.growing.get(layout);
    if (growth === undefined) {
      growth = this.growUntilTarget(ec).finally(() => this.growing.delete(layout));
      this.growing.set(layout, growth);
    }
    await growth;
    return this.clusterMap();
  }

  private async growUntilTarget(ec: EcScheme | null): Promise<void> {
    while (!this.closed) {
      const map = this.clusterMap();
      if (this.healthyWritableCount(map, ec) >= this.writableVolumeTarget) break;
      try {
        await this.allocateVolume(map, ec);
        this.noteGrowthProblem(undefined);
      } catch (error) {
        if (!(error instanceof InsufficientNodes || error instanceof VolumeAllocationFailed)) throw error;
        // Not enough healthy nodes right now; the tick retries. Logged once per distinct problem.
        this.noteGrowthProblem(error);
        break;
      }
    }
  }

  private noteGrowthProblem(error: Error | undefined): void {
    const problem = error?.message;
    if (problem !== undefined && problem !== this.lastGrowthProblem) log.warn({ error }, "volume growth stalled");
    if (problem === undefined && this.lastGrowthProblem !== undefined) log.info({}, "volume growth resumed");
    this.lastGrowthProblem = problem;
  }

  private healthyWritableCount(map: ClusterMap, ec: EcScheme | null): number {
    const up = new Set(map.nodes.filter((node) => node.state === "up").map((node) => node.nodeId));
    return map.volumes.filter(
      (volume) => volume.state === "writable" && sameLayout(volume.ec, ec) && volume.replicas.every((nodeId) => up.has(nodeId)),
    ).length;
  }

  /**
   * Allocate one volume. Protocol, and what a crash at each step leaves:
   * 1. reserve the id durably (crash: an id is skipped, nothing else);
   * 2. createVolume on every chosen replica (crash: empty orphan volumes on some nodes under an
   *    id the map never hands out; reconcile ignores them, compaction of orphans comes later);
   * 3. record the volume writable (from here gateways may write to it).
   * A replica that fails step 2 is excluded and a new replica set is drawn for the same id.
   * An erasure-coded volume is k + m nodes, shard i on the i-th node chosen.
   */
  private async allocateVolume(map: ClusterMap, ec: EcScheme | null): Promise<void> {
    const nodeCount = ec === null ? this.replicaCount : ec.k + ec.m;
    const draining = this.store.drainingNodes(); // a draining node takes no new volumes
    const upNodes = map.nodes.filter((node) => node.state === "up" && !draining.has(node.nodeId));
    if (upNodes.length < nodeCount) throw new InsufficientNodes(nodeCount, upNodes.length);
    const volumeId = await this.store.reserveVolumeId();
    const excluded = new Set<NodeId>();
    for (let attempt = 0; attempt < VOLUME_ALLOCATION_ATTEMPTS_MAX; attempt++) {
      const candidates = upNodes.filter((node) => !excluded.has(node.nodeId)).map(candidateFromNode);
      const replicas = allocateReplicas({ candidates, replicaCount: nodeCount, random: this.random });
      const outcomes = await Promise.allSettled(
        replicas.map((nodeId) => this.needleStoreOf(upNodes.find((node) => node.nodeId === nodeId)!).createVolume(volumeId)),
      );
      const failed = replicas.filter((_nodeId, index) => outcomes[index]!.status === "rejected");
      if (failed.length === 0) {
        if (this.closed) return;
        await this.store.insertVolume({ volumeId, state: "writable", replicas, ec });
        log.info({ volumeId, replicas, layout: layoutName(ec) }, "volume created");
        return;
      }
      for (const [index, outcome] of outcomes.entries()) {
        if (outcome.status === "rejected") log.warn({ volumeId, nodeId: replicas[index], error: outcome.reason as unknown }, "createVolume failed");
      }
      for (const nodeId of failed) excluded.add(nodeId);
    }
    throw new VolumeAllocationFailed(volumeId);
  }

  private needleStoreOf(node: NodeRecord): NeedleStore {
    const cached = this.needleStores.get(node.nodeId);
    if (cached !== undefined && cached.address === node.address) return cached.store;
    if (cached !== undefined) {
      // The node moved: its old address reaches nobody, so its client is of no further use.
      void cached.store.close().catch((error: unknown) => log.debug({ error }, "closing a moved node's store failed"));
    }
    const store = this.storeFor(node);
    this.needleStores.set(node.nodeId, { address: node.address, store });
    return store;
  }

  /** A read or the scrubber found a needle rotted or missing: repair rewrites it from a peer. */
  reportDamage(report: DamageReport): void {
    log.warn({ ...report }, "damage reported");
    this.repair.noteDamage(report);
    this.damage.push(report);
    if (this.damage.length > DAMAGE_REPORTS_KEPT_MAX) this.damage.splice(0, this.damage.length - DAMAGE_REPORTS_KEPT_MAX);
  }

  /** Bytes and needles of every volume on every node, as last heartbeated. */
  volumeUsage(): VolumeUsage[] {
    const usage: VolumeUsage[] = [];
    for (const [nodeId, statuses] of this.reportedVolumes) {
      for (const status of statuses) {
        const { volumeId, sizeBytes, needleCount, deletedNeedleCount } = status;
        usage.push({ volumeId, nodeId, sizeBytes, needleCount, deletedNeedleCount });
      }
    }
    return usage;
  }

  damageReports(): readonly DamageReport[] {
    return this.damage;
  }

  repairStatus(): RepairStatus {
    return this.repair.status();
  }

  /** `cairn admin node drain`: the node takes no new volumes and its replicas move away. */
  async drainNode(nodeId: NodeId): Promise<RepairStatus> {
    if (this.store.node(nodeId) === undefined) throw new InvalidPlacementRequest(`no data node ${nodeId}`);
    await this.repair.drain(nodeId);
    return this.repair.status();
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    await this.repair.close();
    await Promise.allSettled(this.growing.values());
    const stores = [...this.needleStores.values()];
    this.needleStores.clear();
    await Promise.allSettled(stores.map((entry) => entry.store.close()));
  }
}

/** The placement RPC methods of cluster/messages.ts, validating each body at the edge. */
export function createPlacementRpcRoutes(service: PlacementService): RpcRoutes {
  return {
    json: {
      heartbeat: async (body) => service.heartbeat(parseHeartbeatRequest(body)),
      clusterMap: async () => service.clusterMap(),
      volumeFull: async (body) => {
        await service.volumeFull(parseVolumeId(field(body, "volumeId")));
        return null;
      },
      volumeUsage: async () => service.volumeUsage(),
      growVolumes: async (body) => service.growVolumes(parseEcScheme(field(body, "ec"))),
      reportDamage: async (body) => {
        service.reportDamage(parseDamageReport(body));
        return null;
      },
      repairStatus: async () => service.repairStatus(),
      drainNode: async (body) => service.drainNode(parseNodeId(field(body, "nodeId"))),
    },
  };
}

// ---- Validation of RPC bodies: parse at the edge, pass typed values inward ----

function record(value: unknown, what: string): Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw new InvalidPlacementRequest(`${what} must be an object`);
  return value as Record<string, unknown>;
}

function field(body: unknown, name: string): unknown {
  return record(body, "body")[name];
}

function string(value: unknown, what: string): string {
  if (typeof value !== "string" || value.length === 0 || value.length > 1024) throw new InvalidPlacementRequest(`${what} must be a non-empty string`);
  return value;
}

function number(value: unknown, what: string): number {
  if (typeof value !== "number" || !Number.isFinite(value) || value < 0) throw new InvalidPlacementRequest(`${what} must be a non-negative number`);
  return value;
}

function array(value: unknown, what: string, countMax: number): unknown[] {
  if (!Array.isArray(value) || value.length > countMax) throw new InvalidPlacementRequest(`${what} must be an array of at most ${countMax}`);
  return value;
}

function parseVolumeId(value: unknown): VolumeId {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 1) throw new InvalidPlacementRequest("volumeId must be a positive integer");
  return value as VolumeId;
}

function parseNodeId(value: unknown): NodeId {
  const text = string(value, "nodeId");
  if (!/^[A-Za-z0-9._-]{1,128}$/.test(text)) throw new InvalidPlacementRequest("nodeId has invalid characters");
  return text as NodeId;
}

/** An EC scheme from an RPC body: null or absent for replicated, else {k, m} within the codec's bounds. */
export function parseEcScheme(value: unknown): EcScheme | null {
  if (value === undefined || value === null) return null;
  const input = record(value, "ec");
  const k = input.k;
  const m = input.m;
  if (!Number.isInteger(k) || !Number.isInteger(m) || (k as number) < 1 || (m as number) < 1 || (k as number) + (m as number) > EC_SHARD_COUNT_MAX) {
    throw new InvalidPlacementRequest(`ec must be {k, m} with k, m >= 1 and k + m <= ${EC_SHARD_COUNT_MAX}`);
  }
  return { k: k as number, m: m as number };
}

export function parseHeartbeatRequest(body: unknown): HeartbeatRequest {
  const input = record(body, "heartbeat");
  const address = string(input.address, "address");
  if (!/^https?:\/\//.test(address)) throw new InvalidPlacementRequest("address must be an http(s) URL");
  const disks: DiskReport[] = array(input.disks, "disks", HEARTBEAT_DISKS_COUNT_MAX).map((value) => {
    const disk = record(value, "disk");
    return {
      path: string(disk.path, "disk.path"),
      capacityBytes: number(disk.capacityBytes, "disk.capacityBytes"),
      freeBytes: number(disk.freeBytes, "disk.freeBytes"),
      usedBytes: number(disk.usedBytes, "disk.usedBytes"),
    };
  });
  const volumes: VolumeStatus[] = array(input.volumes, "volumes", HEARTBEAT_VOLUMES_COUNT_MAX).map((value) => {
    const volume = record(value, "volume");
    if (volume.state !== "writable" && volume.state !== "sealed") throw new InvalidPlacementRequest("volume.state must be writable or sealed");
    return {
      volumeId: parseVolumeId(volume.volumeId),
      state: volume.state,
      sizeBytes: number(volume.sizeBytes, "volume.sizeBytes"),
      needleCount: number(volume.needleCount, "volume.needleCount"),
      deletedNeedleCount: number(volume.deletedNeedleCount, "volume.deletedNeedleCount"),
    };
  });
  return {
    nodeId: input.nodeId === undefined || input.nodeId === null ? undefined : parseNodeId(input.nodeId),
    address,
    zone: string(input.zone, "zone"),
    rack: string(input.rack, "rack"),
    disks,
    volumes,
    writeCount: number(input.writeCount, "writeCount"),
    writeLatencyMs: number(input.writeLatencyMs, "writeLatencyMs"),
  };
}

const DAMAGE_REASONS: ReadonlySet<string> = new Set<DamageReport["reason"]>(["checksum-mismatch", "needle-missing", "unreachable"]);

export function parseDamageReport(body: unknown): DamageReport {
  const input = record(body, "damage report");
  if (typeof input.reason !== "string" || !DAMAGE_REASONS.has(input.reason)) throw new InvalidPlacementRequest("reason is not a known damage reason");
  return {
    volumeId: parseVolumeId(input.volumeId),
    needleId: string(input.needleId, "needleId"),
    nodeId: parseNodeId(input.nodeId),
    reason: input.reason as DamageReport["reason"],
  };
}
