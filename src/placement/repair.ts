/**
 * Repair and drain of replicated volumes, planned and driven by placement (each tick kicks
 * one pass; passes never overlap). Placement is the copier: it reads a needle from a healthy
 * replica (the data node verifies the needle's CRC before answering, and we check the CRC
 * again on the write) and writes it to the replica that lacks it. Data never flows through a
 * replica that failed verification, so rot is never copied.
 *
 * What starts work:
 * - a node down past nodeOutAfterMs is *out*: each volume with a replica on it gets a task
 *   `replace` (from the out node to a new one);
 * - a node marked draining (`cairn admin node drain`): each of its volumes gets a task `drain`;
 * - a damage report (a read or the scrubber found a needle corrupt or missing on a replica): the
 *   needle is rewritten on that replica from a healthy one (in place, so sealed volumes too);
 * - a node that comes back up: its volumes are synchronised with their peers, which carries
 *   tombstones of deletes it missed to it (and copies it needles written while it was away).
 *
 * A task, and what a crash (placement restart) at each step leaves:
 * 1. choose a target node that keeps the failure-domain spread (a zone the other replicas do not
 *    use, else a rack, else any node; weighted by free space and latency like allocation), seal
 *    the volume in the map (gateways stop writing to it within one map refresh) and persist the
 *    task, all before any copy (crash: the task is resumed onto the same target);
 * 2. wait REPAIR_SETTLE_MS from the task's creation: writes begun on an older map finish;
 * 3. createVolume on the target (idempotent), then walk the merged, needle-id-ordered listings
 *    of every up replica and the target: a needle with a tombstone on any of them gets a
 *    tombstone everywhere it lacks one and is never copied; a live needle missing on the target
 *    is copied (crash: the copies made are on the target's disk and are skipped next time);
 * 4. walk again; only a walk that copies nothing proves the target complete (a straggling write
 *    landed after the first walk started is copied by the second);
 * 5. swap: in one transaction the target takes the old node's place in the replica set and the
 *    task is deleted. For a drain the old replica served reads until this moment, so the volume
 *    never had fewer than its full count of replicas.
 *
 * Mark-delete safety rests on one invariant of the data node: a tombstone row, once written, is
 * never dropped (compaction may drop the needle's bytes, never the row), and a write of a
 * tombstoned needle id is ignored. So a replica that missed a delete and comes back can only
 * lose its live copy to the tombstones of its peers, never give it back to them.
 *
 * Erasure-coded volumes (VolumeRecord.ec !== null) go through the same steps, but node i holds
 * shard i of every chunk: the target takes the leaving node's index, and a shard it lacks is
 * rebuilt by Reed-Solomon decoding from k other shards, each read with its needle CRC verified
 * by its data node. When a (k+1)-th shard is readable the rebuild is checked against it too, and
 * a rebuild that disagrees is never written (the chunk's own CRC lives in the metadata store,
 * out of placement's reach; the gateway checks it on every decoded read).
 */
import {
  crc32,
  log,
  MEBIBYTE,
  MINUTE_MS,
  SECOND_MS,
  type Clock,
  type NeedleId,
  type NodeId,
  type VolumeId,
} from "../base/index.js";
import {
  ChecksumMismatch,
  isRepairNeedleStore,
  NeedleNotFound,
  RPC_TIMEOUT_MS_DEFAULT,
  VolumeNotFound,
  type ClusterMap,
  type DamageReport,
  type NeedleListEntry,
  type NeedleStore,
  type NodeRecord,
  type NodeState,
  type RepairNeedleStore,
  type RepairStatus,
  type RepairTaskStatus,
  type RepairTotals,
  type VolumeRecord,
} from "../cluster/index.js";
import { ReedSolomon, type EcScheme } from "../ec/index.js";
import type { ClusterMapRecords, RepairTask } from "./cluster-map-store.js";
import { CLUSTER_MAP_REFRESH_INTERVAL_MS } from "./cluster-placement.js";
import { candidateFromNode, weightedPick } from "./volume-allocator.js";

/** A node down this long is out and its replicas are re-created elsewhere (the design's out-timeout). */
export const NODE_OUT_AFTER_MS_DEFAULT = 10 * MINUTE_MS;
/** Bytes per second repair copies at most (all tasks together): leaves the disks to clients. */
export const REPAIR_COPY_BYTES_PER_SECOND_DEFAULT = 64 * MEBIBYTE;
/** Volumes whose copy runs at once. */
export const REPAIR_VOLUMES_IN_FLIGHT_MAX = 2;
/** Needles per listing page asked of a data node (the data node allows up to 10,000). */
export const REPAIR_LIST_PAGE_COUNT_MAX = 1_000;
/**
 * After a task seals its volume in the map, writes that gateways began on an older map land
 * within one map refresh plus one RPC deadline; the copy starts after that (with margin).
 */
export const REPAIR_SETTLE_MS = CLUSTER_MAP_REFRESH_INTERVAL_MS + RPC_TIMEOUT_MS_DEFAULT + 2 * SECOND_MS;
/** Damage reports handled per pass; the rest wait for the next pass. */
export const REPAIR_DAMAGE_BATCH_COUNT_MAX = 64;
/** Damaged needles remembered at most; more reports than this are dropped (reads report again). */
export const REPAIR_DAMAGE_PENDING_COUNT_MAX = 10_000;
/** Every volume is synchronised with its peers this often even when nothing was reported. */
export const REPAIR_SWEEP_INTERVAL_MS = 60 * MINUTE_MS;

export interface RepairPlannerOptions {
  clock: Clock;
  store: ClusterMapRecords;
  /** The map with node states derived now (PlacementService.clusterMap). */
  clusterMap: () => ClusterMap;
  /** A node's store (cached by placement); must be a RepairNeedleStore to take part. */
  storeOf: (node: NodeRecord) => NeedleStore;
  /** When placement started: every node gets one full out-timeout from then. */
  startedAtMs: number;
  nodeOutAfterMs?: number;
  copyBytesPerSecond?: number;
  random: () => number;
}

interface TaskProgress {
  phase: RepairTaskStatus["phase"];
  needlesCopied: number;
  bytesCopied: number;
  tombstonesCopied: number;
  /** Replicas whose data node has sealed the volume too (sealOnReplicas); the rest are retried. */
  sealedOn: Set<NodeId>;
}

interface Member {
  nodeId: NodeId;
  store: RepairNeedleStore;
  /** The member's index in the replica set: the shard it holds of an erasure-coded volume. */
  shardIndex: number;
}

/** One needle id of the merged walk: the entry each member holds for it (absent: none). */
interface MergedNeedle {
  needleId: NeedleId;
  entries: Map<NodeId, NeedleListEntry>;
}

export class RepairPlanner {
  readonly nodeOutAfterMs: number;
  private readonly clock: Clock;
  private readonly store: ClusterMapRecords;
  private readonly clusterMap: () => ClusterMap;
  private readonly storeOf: (node: NodeRecord) => NeedleStore;
  private readonly startedAtMs: number;
  private readonly copyBytesPerSecond: number;
  private readonly random: () => number;
  private readonly damaged = new Map<string, DamageReport>();
  private readonly codecs = new Map<string, ReedSolomon>();
  private readonly progress = new Map<VolumeId, TaskProgress>();
  /** Nodes whose volumes are to be synchronised with their peers (they came back up). */
  private readonly nodesToSync = new Set<NodeId>();
  private readonly lastStates = new Map<NodeId, NodeState>();
  private readonly totals: RepairTotals = { replicasReplaced: 0, needlesCopied: 0, bytesCopied: 0, tombstonesPropagated: 0, needlesRewritten: 0, needlesLost: 0 };
  private lastSweepAtMs: number;
  private lastProblem: string | undefined;
  private copyFreeAtMs = 0;
  private running: Promise<void> | undefined;
  private closed = false;

  constructor(options: RepairPlannerOptions) {
    this.clock = options.clock;
    this.store = options.store;
    this.clusterMap = options.clusterMap;
    this.storeOf = options.storeOf;
    this.startedAtMs = options.startedAtMs;
    this.nodeOutAfterMs = options.nodeOutAfterMs ?? NODE_OUT_AFTER_MS_DEFAULT;
    this.copyBytesPerSecond = options.copyBytesPerSecond ?? REPAIR_COPY_BYTES_PER_SECOND_DEFAULT;
    this.random = options.random;
    this.lastSweepAtMs = options.startedAtMs;
    if (!(this.nodeOutAfterMs > 0)) throw new RangeError("nodeOutAfterMs must be positive");
    if (!(this.copyBytesPerSecond > 0)) throw new RangeError("copyBytesPerSecond must be positive");
  }

  /** Start a pass unless one is running; failures are logged and the next kick retries. */
  kick(): void {
    if (this.closed || this.running !== undefined) return;
    this.running = this.runOnce()
      .catch((error: unknown) => log.error({ error }, "repair pass failed"))
      .finally(() => (this.running = undefined));
  }

  /** Wait for the running pass, if any (tests, shutdown). */
  async idle(): Promise<void> {
    await this.running;
  }

  /** One pass: plan tasks, advance them, rewrite damaged needles, sync returned nodes. */
  async runOnce(): Promise<void> {
    const map = this.clusterMap();
    this.noteStateChanges(map);
    await this.planTasks(map);
    await this.runTasks(map);
    await this.repairDamage(map);
    await this.syncReturnedNodes(map);
  }

  noteDamage(report: DamageReport): void {
    if (report.reason === "unreachable") return; // down detection and the out-timeout handle that
    if (this.damaged.size >= REPAIR_DAMAGE_PENDING_COUNT_MAX) return;
    this.damaged.set(`${report.volumeId}/${report.needleId}/${report.nodeId}`, report);
  }

  /** Mark a node draining: it takes no new volumes and each of its volumes moves elsewhere. */
  async drain(nodeId: NodeId): Promise<boolean> {
    const newly = await this.store.setDraining(nodeId, this.clock.nowMs());
    if (newly) log.info({ nodeId }, "data node draining");
    this.kick();
    return newly;
  }

  isOut(node: NodeRecord): boolean {
    return node.state === "down" && this.clock.nowMs() - Math.max(node.lastHeartbeatAtMs, this.startedAtMs) > this.nodeOutAfterMs;
  }

  status(): RepairStatus {
    const map = this.clusterMap();
    const draining = this.store.drainingNodes();
    const nodes = new Map(map.nodes.map((node) => [node.nodeId, node]));
    const tasks = new Map(this.store.repairTasks().map((task) => [task.volumeId, task]));
    const volumeCounts = new Map<NodeId, number>();
    for (const volume of map.volumes) for (const nodeId of volume.replicas) volumeCounts.set(nodeId, (volumeCounts.get(nodeId) ?? 0) + 1);
    const volumes: RepairStatus["volumes"] = [];
    for (const volume of map.volumes) {
      const missing = volume.replicas.filter((nodeId) => nodes.get(nodeId)?.state !== "up");
      const task = tasks.get(volume.volumeId);
      if (missing.length === 0 && task === undefined && !volume.replicas.some((nodeId) => draining.has(nodeId))) continue;
      const progress = this.progress.get(volume.volumeId);
      volumes.push({
        volumeId: volume.volumeId,
        replicas: volume.replicas,
        missing,
        task:
          task === undefined
            ? undefined
            : {
                kind: task.kind,
                fromNodeId: task.fromNodeId,
                toNodeId: task.toNodeId,
                createdAtMs: task.createdAtMs,
                phase: progress?.phase ?? "queued",
                needlesCopied: progress?.needlesCopied ?? 0,
                bytesCopied: progress?.bytesCopied ?? 0,
                tombstonesCopied: progress?.tombstonesCopied ?? 0,
              },
      });
    }
    return {
      nodeOutAfterMs: this.nodeOutAfterMs,
      nodes: map.nodes.map((node) => ({
        nodeId: node.nodeId,
        address: node.address,
        zone: node.zone,
        state: node.state,
        out: this.isOut(node),
        draining: draining.has(node.nodeId),
        volumeCount: volumeCounts.get(node.nodeId) ?? 0,
      })),
      volumes,
      damagedNeedlesPending: this.damaged.size,
      totals: { ...this.totals },
      lastProblem: this.lastProblem,
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.running;
  }

  // ---- Planning ----

  /** A node seen down and now up again gets its volumes synchronised (tombstones it missed). */
  private noteStateChanges(map: ClusterMap): void {
    const nowMs = this.clock.nowMs();
    const sweep = nowMs - this.lastSweepAtMs >= REPAIR_SWEEP_INTERVAL_MS;
    if (sweep) this.lastSweepAtMs = nowMs;
    for (const node of map.nodes) {
      const previous = this.lastStates.get(node.nodeId);
      if (node.state === "up" && (sweep || previous === "down")) this.nodesToSync.add(node.nodeId);
      this.lastStates.set(node.nodeId, node.state);
    }
  }

  private async planTasks(map: ClusterMap): Promise<void> {
    const draining = this.store.drainingNodes();
    const leaving = new Map<NodeId, RepairTask["kind"]>();
    for (const node of map.nodes) {
      if (this.isOut(node)) leaving.set(node.nodeId, "replace");
      else if (draining.has(node.nodeId)) leaving.set(node.nodeId, "drain");
    }
    if (leaving.size === 0) return;
    const tasked = new Set(this.store.repairTasks().map((task) => task.volumeId));
    // Volumes missing the most replicas first: they are closest to loss.
    const candidates = map.volumes
      .filter((volume) => !tasked.has(volume.volumeId) && volume.replicas.some((nodeId) => leaving.has(nodeId)))
      .sort((left, right) => countLeaving(right, leaving) - countLeaving(left, leaving));
    for (const volume of candidates) {
      // An out replica before a draining one: the draining one still serves.
      const fromNodeId =
        volume.replicas.find((nodeId) => leaving.get(nodeId) === "replace") ?? volume.replicas.find((nodeId) => leaving.has(nodeId))!;
      await this.createTask(map, volume, fromNodeId, leaving.get(fromNodeId)!);
    }
  }

  /** Choose a target, seal the volume in the map, persist the task. */
  private async createTask(map: ClusterMap, volume: VolumeRecord, fromNodeId: NodeId, kind: RepairTask["kind"]): Promise<boolean> {
    const toNodeId = this.chooseTarget(map, volume, fromNodeId);
    if (toNodeId === undefined) {
      this.noteProblem(`no up node outside volume ${volume.volumeId}'s replica set can take a replica`);
      return false;
    }
    // Stop new writes before the first listing: gateways see the seal within one map refresh.
    if (volume.state === "writable" && (await this.store.sealVolume(volume.volumeId))) log.info({ volumeId: volume.volumeId }, "volume sealed for repair");
    const task: RepairTask = { volumeId: volume.volumeId, kind, fromNodeId, toNodeId, createdAtMs: this.clock.nowMs() };
    if (await this.store.insertRepairTask(task)) log.info({ ...task }, `${kind} task created`);
    return true;
  }

  /**
   * The node that best keeps the spread: one in the zone holding the fewest of the volume's other
   * replicas (for a replicated volume: a zone none uses), then in the rack holding the fewest;
   * among those, drawn by nodeWeight (free space, latency) as allocation draws.
   */
  private chooseTarget(map: ClusterMap, volume: VolumeRecord, fromNodeId: NodeId): NodeId | undefined {
    const draining = this.store.drainingNodes();
    const nodes = new Map(map.nodes.map((node) => [node.nodeId, node]));
    const zoneCounts = new Map<string, number>();
    const rackCounts = new Map<string, number>();
    for (const nodeId of volume.replicas) {
      const node = nodes.get(nodeId);
      if (nodeId === fromNodeId || node === undefined) continue;
      zoneCounts.set(node.zone, (zoneCounts.get(node.zone) ?? 0) + 1);
      rackCounts.set(rackKey(node), (rackCounts.get(rackKey(node)) ?? 0) + 1);
    }
    const candidates = map.nodes
      .filter((node) => node.state === "up" && !this.isOut(node) && !draining.has(node.nodeId) && !volume.replicas.includes(node.nodeId))
      .map(candidateFromNode);
    const fewestZone = Math.min(...candidates.map((candidate) => zoneCounts.get(candidate.zone) ?? 0));
    const inZone = candidates.filter((candidate) => (zoneCounts.get(candidate.zone) ?? 0) === fewestZone);
    const fewestRack = Math.min(...inZone.map((candidate) => rackCounts.get(rackKey(candidate)) ?? 0));
    const tier = inZone.filter((candidate) => (rackCounts.get(rackKey(candidate)) ?? 0) === fewestRack);
    return tier.length === 0 ? undefined : weightedPick(tier, this.random).nodeId;
  }

  // ---- Tasks ----

  private async runTasks(map: ClusterMap): Promise<void> {
    const queue = this.store.repairTasks();
    const worker = async (): Promise<void> => {
      for (let task = queue.shift(); task !== undefined && !this.closed; task = queue.shift()) {
        try {
          await this.runTask(map, task);
        } catch (error) {
          const progress = this.progress.get(task.volumeId);
          if (progress !== undefined) progress.phase = "queued";
          this.noteProblem(`volume ${task.volumeId}: ${(error as Error).message}`);
          log.warn({ volumeId: task.volumeId, error }, "repair task did not finish; retried next pass");
        }
      }
    };
    await Promise.all(Array.from({ length: REPAIR_VOLUMES_IN_FLIGHT_MAX }, worker));
  }

  private async runTask(map: ClusterMap, task: RepairTask): Promise<void> {
    const volume = this.store.volume(task.volumeId);
    if (volume === undefined || !volume.replicas.includes(task.fromNodeId) || volume.replicas.includes(task.toNodeId)) {
      await this.store.deleteRepairTask(task.volumeId); // done already, or no longer meaningful
      this.progress.delete(task.volumeId);
      return;
    }
    const nodes = new Map(map.nodes.map((node) => [node.nodeId, node]));
    const target = nodes.get(task.toNodeId);
    if (target === undefined || target.state !== "up" || this.store.drainingNodes().has(task.toNodeId)) {
      // The target failed or is itself leaving: drop the task; the next pass plans a new one.
      log.warn({ ...task }, "repair target unavailable; replanning");
      await this.store.deleteRepairTask(task.volumeId);
      this.progress.delete(task.volumeId);
      return;
    }
    let progress = this.progress.get(task.volumeId);
    if (progress === undefined) {
      progress = { phase: "queued", needlesCopied: 0, bytesCopied: 0, tombstonesCopied: 0, sealedOn: new Set() };
      this.progress.set(task.volumeId, progress);
    }
    if (this.clock.nowMs() < task.createdAtMs + REPAIR_SETTLE_MS) {
      progress.phase = "settling";
      return;
    }
    const targetStore = this.repairStoreOf(target);
    const sources = await this.withoutLostReplicas(map, volume, this.upMembers(volume, nodes));
    if (sources.length === 0) {
      this.noteProblem(`volume ${volume.volumeId}: no replica is up to copy from`);
      progress.phase = "queued";
      return;
    }
    await this.sealOnReplicas(volume, sources, progress);
    progress.phase = "copying";
    await targetStore.createVolume(volume.volumeId);
    // The target stands in for the leaving node: for a coded volume it holds that node's shard.
    const members = [...sources, { nodeId: target.nodeId, store: targetStore, shardIndex: volume.replicas.indexOf(task.fromNodeId) }];
    await this.syncVolume({ volume, members, copyTo: new Set([target.nodeId]), progress });
    progress.phase = "verifying";
    const stragglers = await this.syncVolume({ volume, members, copyTo: new Set([target.nodeId]), progress });
    if (stragglers > 0) {
      log.info({ volumeId: volume.volumeId, stragglers }, "repair copied late needles; verifying again next pass");
      return;
    }
    // The verified copy is complete: seal it on the target as its peers are, before it joins them.
    await targetStore.sealVolume({ volumeId: volume.volumeId });
    if (await this.store.replaceReplica(volume.volumeId, task.fromNodeId, task.toNodeId)) {
      this.totals.replicasReplaced += 1;
      log.info({ ...task, needlesCopied: progress.needlesCopied, bytesCopied: progress.bytesCopied }, `${task.kind} done: replica moved`);
    }
    this.progress.delete(task.volumeId);
  }

  /**
   * Seal the volume on the data nodes of its reachable replicas too (it is sealed in the map and
   * REPAIR_SETTLE_MS has passed), so their scrubbers and compactors take it and its unused tail
   * is not held. Best effort: a down or unreachable replica is skipped and logged, and tried
   * again on the task's next pass; the copy never waits for it.
   */
  private async sealOnReplicas(volume: VolumeRecord, members: readonly Member[], progress: TaskProgress): Promise<void> {
    const volumeId = volume.volumeId;
    await Promise.all(
      members.map(async (member) => {
        if (progress.sealedOn.has(member.nodeId)) return;
        try {
          await member.store.sealVolume({ volumeId });
          progress.sealedOn.add(member.nodeId);
        } catch (error) {
          log.warn({ volumeId, nodeId: member.nodeId, error }, "could not seal the volume on a replica's node; copying anyway");
        }
      }),
    );
    const reached = new Set(members.map((member) => member.nodeId));
    const skipped = volume.replicas.filter((nodeId) => !reached.has(nodeId) && !progress.sealedOn.has(nodeId));
    if (skipped.length > 0) log.info({ volumeId, nodeIds: skipped }, "replicas down; volume not sealed on their nodes");
  }

  // ---- Damage ----

  private async repairDamage(map: ClusterMap): Promise<void> {
    const batch = [...this.damaged.entries()].slice(0, REPAIR_DAMAGE_BATCH_COUNT_MAX);
    for (const [key, report] of batch) {
      if (this.closed) return;
      try {
        const done = await this.repairNeedle(map, report);
        if (done) this.damaged.delete(key);
      } catch (error) {
        log.warn({ ...report, error }, "damaged needle not repaired yet; retried next pass");
      }
    }
  }

  /** Rewrite one reported needle on its replica; true when nothing is left to do for it. */
  private async repairNeedle(map: ClusterMap, report: DamageReport): Promise<boolean> {
    const volume = this.store.volume(report.volumeId);
    if (volume === undefined || !volume.replicas.includes(report.nodeId)) return true;
    const nodes = new Map(map.nodes.map((node) => [node.nodeId, node]));
    const bad = nodes.get(report.nodeId);
    if (bad === undefined || bad.state !== "up") return false; // wait; if it stays down it goes out
    const members = await this.withoutLostReplicas(map, volume, this.upMembers(volume, nodes));
    if (!members.some((member) => member.nodeId === report.nodeId)) return true; // the whole replica is being re-created
    const entries = new Map<NodeId, NeedleListEntry>();
    await Promise.all(
      members.map(async (member) => {
        const entry = await lookupNeedle(member.store, report.volumeId, report.needleId as NeedleId);
        if (entry !== undefined) entries.set(member.nodeId, entry);
      }),
    );
    const merged: MergedNeedle = { needleId: report.needleId as NeedleId, entries };
    if ([...entries.values()].some((entry) => entry.tombstone)) {
      await this.propagateTombstone(report.volumeId, merged, members);
      return true;
    }
    const holders = members.filter((member) => member.nodeId !== report.nodeId && entries.get(member.nodeId) !== undefined);
    const copy = await this.produce(volume, report.needleId as NeedleId, holders, volume.replicas.indexOf(report.nodeId));
    if (copy === undefined) {
      if (holders.length > 0 || entries.has(report.nodeId)) {
        this.totals.needlesLost += 1;
        log.error({ ...report }, "needle has no healthy copy left on any replica");
      }
      return true;
    }
    const badStore = this.repairStoreOf(bad);
    try {
      const outcome = await badStore.rewriteNeedle({ volumeId: report.volumeId, needleId: report.needleId as NeedleId, data: copy, crc32: crc32(copy) });
      if (outcome === "appended" || outcome === "rewritten-in-place") this.totals.needlesRewritten += 1;
      log.info({ ...report, outcome }, "damaged needle repaired");
    } catch (error) {
      if (!(error instanceof NeedleNotFound)) throw error;
      // Sealed replica without a row for it: nothing can be appended there. Re-create the
      // replica whole on another node; this one is dropped from the set once the copy is done.
      log.warn({ ...report }, "needle missing from a sealed replica; re-creating the replica elsewhere");
      if (!this.store.repairTasks().some((task) => task.volumeId === report.volumeId)) await this.createTask(map, volume, report.nodeId, "replace");
    }
    return true;
  }

  /** The first verified copy among `holders`; a holder whose copy fails is reported damaged too. */
  private async readVerified(volumeId: VolumeId, needleId: NeedleId, holders: readonly Member[]): Promise<Buffer | undefined> {
    for (const holder of holders) {
      try {
        // The data node verifies the needle's CRC before answering; a rotted copy answers
        // ChecksumMismatch and is never passed on.
        return await holder.store.readNeedle({ volumeId, needleId });
      } catch (error) {
        if (error instanceof ChecksumMismatch) this.noteDamage({ volumeId, needleId, nodeId: holder.nodeId, reason: "checksum-mismatch" });
        else if (error instanceof NeedleNotFound) this.noteDamage({ volumeId, needleId, nodeId: holder.nodeId, reason: "needle-missing" });
        log.warn({ volumeId, needleId, nodeId: holder.nodeId, error }, "repair source read failed; trying another replica");
      }
    }
    return undefined;
  }

  // ---- Synchronisation of replicas ----

  /**
   * Each volume with a replica on a node to sync is walked once, with every up replica taking
   * part: tombstones reach every replica lacking one, live needles reach the nodes being synced.
   * A node leaves the set once all its volumes were walked.
   */
  private async syncReturnedNodes(map: ClusterMap): Promise<void> {
    if (this.nodesToSync.size === 0) return;
    const nodes = new Map(map.nodes.map((node) => [node.nodeId, node]));
    const tasked = new Set(this.store.repairTasks().map((task) => task.volumeId));
    const syncing = new Set([...this.nodesToSync].filter((nodeId) => nodes.get(nodeId)?.state === "up"));
    const failed = new Set<NodeId>();
    for (const volume of map.volumes) {
      if (this.closed) return;
      const copyTo = new Set(volume.replicas.filter((nodeId) => syncing.has(nodeId)));
      if (copyTo.size === 0 || tasked.has(volume.volumeId)) continue;
      try {
        const members = await this.withoutLostReplicas(map, volume, this.upMembers(volume, nodes));
        if (members.length < 2) continue;
        await this.syncVolume({ volume, members, copyTo, progress: undefined });
        if (volume.state === "sealed") await this.sealOnReturned(volume, members, copyTo);
      } catch (error) {
        for (const nodeId of copyTo) failed.add(nodeId);
        log.warn({ volumeId: volume.volumeId, error }, "replica sync failed; retried next pass");
      }
    }
    for (const nodeId of syncing) if (!failed.has(nodeId)) this.nodesToSync.delete(nodeId);
  }

  /**
   * A volume the map holds sealed is sealed on the returning nodes too, once they caught up:
   * one that was down while repair or drain sealed it (or while its peers filled it) would
   * otherwise keep it writable, out of its scrubber's and compactor's reach.
   */
  private async sealOnReturned(volume: VolumeRecord, members: readonly Member[], returned: ReadonlySet<NodeId>): Promise<void> {
    for (const member of members) {
      if (!returned.has(member.nodeId)) continue;
      await member.store.sealVolume({ volumeId: volume.volumeId });
    }
  }

  /**
   * Walk the merged listings of `members`: tombstones go to every member lacking one; live
   * needles not tombstoned anywhere are copied to the members in `copyTo` lacking them.
   * Returns how many needles were copied.
   */
  private async syncVolume(input: { volume: VolumeRecord; members: Member[]; copyTo: ReadonlySet<NodeId>; progress: TaskProgress | undefined }): Promise<number> {
    const { volume, members, copyTo, progress } = input;
    const volumeId = volume.volumeId;
    let copied = 0;
    for await (const merged of mergedListing(volumeId, members)) {
      if (this.closed) throw new Error("placement closing");
      const entries = [...merged.entries.values()];
      if (entries.some((entry) => entry.tombstone)) {
        const count = await this.propagateTombstone(volumeId, merged, members);
        if (progress !== undefined) progress.tombstonesCopied += count;
        continue;
      }
      const lacking = members.filter((member) => copyTo.has(member.nodeId) && !merged.entries.has(member.nodeId));
      if (lacking.length === 0) continue;
      const holders = members.filter((member) => merged.entries.has(member.nodeId));
      for (const member of lacking) {
        const data = await this.produce(volume, merged.needleId, holders, member.shardIndex);
        if (data === undefined) {
          this.totals.needlesLost += 1;
          log.error({ volumeId, needleId: merged.needleId, nodeId: member.nodeId }, "needle has no healthy copy to repair from");
          continue;
        }
        await this.throttle(data.length);
        try {
          // rewriteNeedle appends on a writable replica and never revives a tombstoned needle.
          await member.store.rewriteNeedle({ volumeId, needleId: merged.needleId, data, crc32: crc32(data) });
        } catch (error) {
          // A returning replica whose volume sealed itself cannot take appends; its reads of
          // this needle fail over to peers. A task's target is a fresh volume: that is a failure.
          if (!(error instanceof NeedleNotFound) || progress !== undefined) throw error;
          log.warn({ volumeId, needleId: merged.needleId, nodeId: member.nodeId }, "sealed replica lacks a needle; left to its peers");
          continue;
        }
        copied += 1;
        this.totals.needlesCopied += 1;
        this.totals.bytesCopied += data.length;
        if (progress !== undefined) {
          progress.needlesCopied += 1;
          progress.bytesCopied += data.length;
        }
      }
    }
    return copied;
  }

  /** Tombstone a needle on every member that lacks the tombstone; returns how many got one. */
  private async propagateTombstone(volumeId: VolumeId, merged: MergedNeedle, members: readonly Member[]): Promise<number> {
    let count = 0;
    for (const member of members) {
      if (merged.entries.get(member.nodeId)?.tombstone === true) continue;
      await member.store.deleteNeedle({ volumeId, needleId: merged.needleId });
      count += 1;
      this.totals.tombstonesPropagated += 1;
    }
    if (count > 0) log.info({ volumeId, needleId: merged.needleId, count }, "tombstone propagated to replicas that missed the delete");
    return count;
  }

  // ---- Sources: a verified copy, or a shard rebuilt from k verified others ----

  /** What the member at `shardIndex` should hold of a needle; undefined when nothing sound is left. */
  private async produce(volume: VolumeRecord, needleId: NeedleId, holders: readonly Member[], shardIndex: number): Promise<Buffer | undefined> {
    if (volume.ec === null) return this.readVerified(volume.volumeId, needleId, holders);
    return this.rebuildShard(volume.volumeId, volume.ec, needleId, holders, shardIndex);
  }

  /**
   * Decode shard `shardIndex` of a chunk from k other shards (each CRC-verified by its data
   * node on read). With one more shard readable, the rebuild is re-derived against it, so a
   * shard that is CRC-sound but wrong (a bug, a mixed-up write) is caught, not spread.
   */
  private async rebuildShard(volumeId: VolumeId, ec: EcScheme, needleId: NeedleId, holders: readonly Member[], shardIndex: number): Promise<Buffer | undefined> {
    const shards: Array<Buffer | undefined> = new Array<Buffer | undefined>(ec.k + ec.m).fill(undefined);
    let presentCount = 0;
    let check: { shardIndex: number; data: Buffer } | undefined;
    for (const holder of holders) {
      if (holder.shardIndex === shardIndex || holder.shardIndex < 0) continue;
      if (presentCount >= ec.k && check !== undefined) break;
      const data = await this.readVerified(volumeId, needleId, [holder]);
      if (data === undefined) continue;
      if (presentCount < ec.k) {
        shards[holder.shardIndex] = data;
        presentCount += 1;
      } else {
        check = { shardIndex: holder.shardIndex, data };
      }
    }
    if (presentCount < ec.k) return undefined;
    const present = shards.filter((shard): shard is Buffer => shard !== undefined);
    if (present.some((shard) => shard.length !== present[0]!.length) || (check !== undefined && check.data.length !== present[0]!.length)) {
      log.error({ volumeId, needleId }, "shards of one chunk differ in size; not rebuilding");
      return undefined;
    }
    const rebuilt = this.codecOf(ec).reconstruct(shards);
    if (check !== undefined && !Buffer.from(rebuilt[check.shardIndex]!).equals(check.data)) {
      log.error({ volumeId, needleId, shardIndex, checkedShardIndex: check.shardIndex }, "rebuilt shards disagree with a stored one; not writing the rebuild");
      return undefined;
    }
    const shard = rebuilt[shardIndex]!;
    return Buffer.from(shard.buffer, shard.byteOffset, shard.byteLength);
  }

  private codecOf(ec: EcScheme): ReedSolomon {
    const key = `${ec.k}+${ec.m}`;
    let codec = this.codecs.get(key);
    if (codec === undefined) {
      codec = new ReedSolomon(ec.k, ec.m);
      this.codecs.set(key, codec);
    }
    return codec;
  }

  // ---- Helpers ----

  /**
   * Drops members whose node answers that it has no such volume at all (its file was lost or
   * could not be opened: a replaced disk, say), and plans their re-creation elsewhere. Reads of
   * such a replica already fail over to its peers; without this only reads would know.
   */
  private async withoutLostReplicas(map: ClusterMap, volume: VolumeRecord, members: readonly Member[]): Promise<Member[]> {
    const kept: Member[] = [];
    for (const member of members) {
      try {
        await member.store.listNeedles({ volumeId: volume.volumeId, countMax: 1 });
        kept.push(member);
      } catch (error) {
        if (!(error instanceof VolumeNotFound)) throw error;
        log.error({ volumeId: volume.volumeId, nodeId: member.nodeId }, "a replica's volume is gone from its node; re-creating it elsewhere");
        if (!this.store.repairTasks().some((task) => task.volumeId === volume.volumeId)) await this.createTask(map, volume, member.nodeId, "replace");
      }
    }
    return kept;
  }

  /** The volume's replicas on up nodes, each with its index (its shard, when coded). */
  private upMembers(volume: VolumeRecord, nodes: ReadonlyMap<NodeId, NodeRecord>): Member[] {
    const members: Member[] = [];
    volume.replicas.forEach((nodeId, shardIndex) => {
      const node = nodes.get(nodeId);
      if (node !== undefined && node.state === "up") members.push({ nodeId, store: this.repairStoreOf(node), shardIndex });
    });
    return members;
  }

  private repairStoreOf(node: NodeRecord): RepairNeedleStore {
    const store = this.storeOf(node);
    if (!isRepairNeedleStore(store)) throw new Error(`node ${node.nodeId}'s store cannot list or rewrite needles`);
    return store;
  }

  /** Pace copies to copyBytesPerSecond over all tasks (a virtual clock of when bytes may go). */
  private async throttle(sizeBytes: number): Promise<void> {
    const nowMs = this.clock.nowMs();
    const startMs = Math.max(nowMs, this.copyFreeAtMs);
    this.copyFreeAtMs = startMs + (sizeBytes * SECOND_MS) / this.copyBytesPerSecond;
    const waitMs = startMs - nowMs;
    if (waitMs > 0) await new Promise((resolve) => setTimeout(resolve, waitMs));
  }

  private noteProblem(problem: string): void {
    if (problem !== this.lastProblem) log.warn({ problem }, "repair stalled");
    this.lastProblem = problem;
  }
}

/** Rack names are unique within a zone only. */
function rackKey(node: { zone: string; rack: string }): string {
  return `${node.zone}\u0000${node.rack}`;
}

function countLeaving(volume: VolumeRecord, leaving: ReadonlyMap<NodeId, unknown>): number {
  return volume.replicas.filter((nodeId) => leaving.has(nodeId)).length;
}

/** The needle id just before `needleId` (as 128-bit numbers), to list exactly one id. */
export function needleIdBefore(needleId: NeedleId): NeedleId | undefined {
  const value = BigInt(`0x${needleId}`);
  if (value === 0n) return undefined;
  return (value - 1n).toString(16).padStart(32, "0") as NeedleId;
}

async function lookupNeedle(store: RepairNeedleStore, volumeId: VolumeId, needleId: NeedleId): Promise<NeedleListEntry | undefined> {
  const afterNeedleId = needleIdBefore(needleId);
  const page = await store.listNeedles(afterNeedleId === undefined ? { volumeId, countMax: 1 } : { volumeId, afterNeedleId, countMax: 1 });
  const entry = page[0];
  return entry !== undefined && entry.needleId === needleId ? entry : undefined;
}

/** Pages through one member's listing. */
class ListingCursor {
  private page: NeedleListEntry[] = [];
  private index = 0;
  private exhausted = false;
  private lastNeedleId: NeedleId | undefined;

  constructor(
    readonly member: Member,
    private readonly volumeId: VolumeId,
  ) {}

  async peek(): Promise<NeedleListEntry | undefined> {
    if (this.index < this.page.length) return this.page[this.index];
    if (this.exhausted) return undefined;
    const input = this.lastNeedleId === undefined
      ? { volumeId: this.volumeId, countMax: REPAIR_LIST_PAGE_COUNT_MAX }
      : { volumeId: this.volumeId, afterNeedleId: this.lastNeedleId, countMax: REPAIR_LIST_PAGE_COUNT_MAX };
    this.page = await this.member.store.listNeedles(input);
    this.index = 0;
    if (this.page.length < REPAIR_LIST_PAGE_COUNT_MAX) this.exhausted = true;
    const last = this.page[this.page.length - 1];
    if (last !== undefined) this.lastNeedleId = last.needleId;
    return this.page[0];
  }

  advance(): void {
    this.index += 1;
  }
}

/**
 * The listings of every member merged by needle id (each is sorted the same way: SQLite compares
 * the 16-byte ids as memcmp does, which is the order of their lowercase hex), so memory stays at
 * one page per member however big the volume.
 */
async function* mergedListing(volumeId: VolumeId, members: readonly Member[]): AsyncGenerator<MergedNeedle> {
  const cursors = members.map((member) => new ListingCursor(member, volumeId));
  for (;;) {
    const heads = await Promise.all(cursors.map((cursor) => cursor.peek()));
    let smallest: NeedleId | undefined;
    for (const head of heads) if (head !== undefined && (smallest === undefined || head.needleId < smallest)) smallest = head.needleId;
    if (smallest === undefined) return;
    const entries = new Map<NodeId, NeedleListEntry>();
    heads.forEach((head, index) => {
      if (head?.needleId !== smallest) return;
      const cursor = cursors[index]!;
      entries.set(cursor.member.nodeId, head);
      cursor.advance();
    });
    yield { needleId: smallest, entries };
  }
}
