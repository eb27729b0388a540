/**
 * The cluster map of an elected placement leader, durable in etcd so the next leader loads it.
 *
 * Layout under `<prefix>/map/` (values are JSON, whole records, so VolumeRecord.ec travels):
 *   nodes/<nodeId>                 StoredNode as registered (address, zone, rack; telemetry then)
 *   volumes/<volumeId, 12 digits>  VolumeRecord
 *   next-volume-id                 decimal
 *   version                        a marker rewritten to announce a change with no record
 *   repair-tasks/<volumeId, 12 d.> RepairTask in progress (repair.ts), written before any copy
 *   draining/<nodeId>              { sinceMs }: a node being drained
 *
 * The leader holds an in-memory copy, loaded once when it takes office, and serves reads from
 * it synchronously. Writes go through to etcd one at a time, in order, each a transaction that
 * compares the leader key's create_revision with this term's: a deposed leader's write fails
 * (LeadershipLost) and the leader steps down. What must be durable before placement acts on it
 * is applied to memory only after etcd has it, and the service awaits it: reserveVolumeId
 * (before any node creates the volume), insertVolume (before any gateway may see it) and
 * sealVolume. Other changes are written behind:
 *   - a node's registration (new node, or new address/zone/rack) is written in the background;
 *     insertVolume also writes its replicas' records, so a stored volume never names a node the
 *     next leader does not know. A lost registration costs nothing: the node's next heartbeat
 *     to the next leader carries its id and is adopted.
 *   - heartbeat telemetry (last heartbeat, disks, write latency) stays in memory: it is stale
 *     within seconds anyway, and the next leader gives every node a grace window (see
 *     PlacementService) while fresh heartbeats arrive.
 *
 * Map version: the etcd revision of the last write applied (or the load revision). Revisions
 * only grow across all leaders, so a new leader's maps are never older than any map a previous
 * leader served, and gateways (which keep the newest version) adopt them at once. Telemetry
 * changes keep the version: gateways adopt a map of equal version too.
 */
import { assert, log, type NodeId, type VolumeId } from "../base/index.js";
import type { ClusterMap, EtcdClient, LeaderTerm, NodeRecord, TxnOperation, VolumeRecord } from "../cluster/index.js";
import type { ClusterMapRecords, RepairTask, StoredNode } from "./cluster-map-store.js";

/** Volume ids are zero-padded in keys so that etcd's key order is id order. */
const VOLUME_ID_DIGITS = 12;

/** A write was refused because another placement instance leads now. */
export class LeadershipLost extends Error {
  override name = "LeadershipLost";
  constructor(readonly leaderKey: string) {
    super(`leadership of ${leaderKey} was lost; the write was not applied`);
  }
}

export interface EtcdClusterMapStoreOptions {
  client: EtcdClient;
  /** Key prefix of this cluster in etcd, e.g. "/cairn". */
  prefix: string;
  /** The leader key whose create revision fences every write. */
  leaderKey: string;
  term: LeaderTerm;
  /** A write found that this term is over: the caller steps down. */
  onLeadershipLost: () => void;
}

export function clusterMapPrefix(prefix: string): string {
  return `${prefix}/map/`;
}

export class EtcdClusterMapStore implements ClusterMapRecords {
  private readonly nodeRecords = new Map<NodeId, StoredNode>();
  /** Per node, the registration fields etcd holds (JSON), to write only what changed. */
  private readonly persistedRegistrations = new Map<NodeId, string>();
  private readonly registrationsInFlight = new Set<NodeId>();
  private readonly volumeRecords = new Map<VolumeId, VolumeRecord>();
  private readonly repairTaskRecords = new Map<VolumeId, RepairTask>();
  private readonly drainingNodeIds = new Set<NodeId>();
  private nextVolumeId = 1;
  private currentVersion = 0;
  /** The tail of the write queue: each write starts when the one before has settled. */
  private tail: Promise<unknown> = Promise.resolve();
  private lost = false;

  private constructor(private readonly options: EtcdClusterMapStoreOptions) {}

  /** Load the map as etcd holds it now; the caller must lead (term) already. */
  static async load(options: EtcdClusterMapStoreOptions): Promise<EtcdClusterMapStore> {
    const store = new EtcdClusterMapStore(options);
    const base = clusterMapPrefix(options.prefix);
    const { kvs, revision } = await options.client.range(base, { prefix: true });
    for (const kv of kvs) {
      const name = kv.key.slice(base.length);
      if (name.startsWith("nodes/")) {
        const node = JSON.parse(kv.value) as StoredNode;
        store.nodeRecords.set(node.nodeId, node);
        store.persistedRegistrations.set(node.nodeId, registration(node));
      } else if (name.startsWith("volumes/")) {
        const volume = JSON.parse(kv.value) as VolumeRecord;
        store.volumeRecords.set(volume.volumeId, { ...volume, ec: volume.ec ?? null });
      } else if (name.startsWith("repair-tasks/")) {
        const task = JSON.parse(kv.value) as RepairTask;
        store.repairTaskRecords.set(task.volumeId, task);
      } else if (name.startsWith("draining/")) {
        store.drainingNodeIds.add(name.slice("draining/".length) as NodeId);
      } else if (name === "next-volume-id") {
        store.nextVolumeId = Number(kv.value);
      }
    }
    // Never hand out an id a stored volume has, whatever next-volume-id says.
    for (const volumeId of store.volumeRecords.keys()) store.nextVolumeId = Math.max(store.nextVolumeId, volumeId + 1);
    assert(Number.isSafeInteger(store.nextVolumeId) && store.nextVolumeId >= 1, "next volume id is a positive integer");
    store.currentVersion = revision;
    log.info({ nodeCount: store.nodeRecords.size, volumeCount: store.volumeRecords.size, version: revision }, "cluster map loaded from etcd");
    return store;
  }

  version(): number {
    return this.currentVersion;
  }

  bumpVersion(): number {
    this.write([{ put: { key: this.key("version"), value: String(Date.now()) } }]).catch((error: unknown) =>
      log.warn({ error }, "could not record a map version bump in etcd"),
    );
    return this.currentVersion;
  }

  node(nodeId: NodeId): StoredNode | undefined {
    return this.nodeRecords.get(nodeId);
  }

  nodes(): StoredNode[] {
    return [...this.nodeRecords.values()].sort((left, right) => (left.nodeId < right.nodeId ? -1 : left.nodeId > right.nodeId ? 1 : 0));
  }

  putNode(node: StoredNode): number {
    this.nodeRecords.set(node.nodeId, node);
    const fields = registration(node);
    if (this.persistedRegistrations.get(node.nodeId) !== fields && !this.registrationsInFlight.has(node.nodeId)) {
      this.registrationsInFlight.add(node.nodeId);
      this.write([{ put: { key: this.nodeKey(node.nodeId), value: JSON.stringify(node) } }])
        .then(
          () => this.persistedRegistrations.set(node.nodeId, fields),
          (error: unknown) => log.warn({ error, nodeId: node.nodeId }, "could not record a data node in etcd; its next heartbeat retries"),
        )
        .finally(() => this.registrationsInFlight.delete(node.nodeId));
    }
    return this.currentVersion;
  }

  volume(volumeId: VolumeId): VolumeRecord | undefined {
    return this.volumeRecords.get(volumeId);
  }

  volumes(): VolumeRecord[] {
    return [...this.volumeRecords.values()].sort((left, right) => left.volumeId - right.volumeId);
  }

  reserveVolumeId(): Promise<VolumeId> {
    return this.enqueue(async () => {
      const volumeId = this.nextVolumeId;
      await this.commit([{ put: { key: this.key("next-volume-id"), value: String(volumeId + 1) } }]);
      this.nextVolumeId = volumeId + 1;
      return volumeId as VolumeId;
    });
  }

  insertVolume(volume: VolumeRecord): Promise<number> {
    return this.enqueue(async () => {
      assert(!this.volumeRecords.has(volume.volumeId), "a volume id is inserted once");
      const replicaNodes = volume.replicas.map((nodeId) => {
        const node = this.nodeRecords.get(nodeId);
        assert(node !== undefined, "a new volume's replicas are known nodes");
        return node;
      });
      await this.commit([
        { put: { key: this.volumeKey(volume.volumeId), value: JSON.stringify(volume) } },
        ...replicaNodes.map((node) => ({ put: { key: this.nodeKey(node.nodeId), value: JSON.stringify(node) } })),
      ]);
      for (const node of replicaNodes) this.persistedRegistrations.set(node.nodeId, registration(node));
      this.volumeRecords.set(volume.volumeId, volume);
      return this.currentVersion;
    });
  }

  sealVolume(volumeId: VolumeId): Promise<boolean> {
    return this.enqueue(async () => {
      const volume = this.volumeRecords.get(volumeId);
      if (volume === undefined || volume.state === "sealed") return false;
      const sealed: VolumeRecord = { ...volume, state: "sealed" };
      await this.commit([{ put: { key: this.volumeKey(volumeId), value: JSON.stringify(sealed) } }]);
      this.volumeRecords.set(volumeId, sealed);
      return true;
    });
  }

  repairTasks(): RepairTask[] {
    return [...this.repairTaskRecords.values()].sort((left, right) => left.volumeId - right.volumeId);
  }

  insertRepairTask(task: RepairTask): Promise<boolean> {
    return this.enqueue(async () => {
      if (this.repairTaskRecords.has(task.volumeId)) return false;
      await this.commit([{ put: { key: this.repairTaskKey(task.volumeId), value: JSON.stringify(task) } }]);
      this.repairTaskRecords.set(task.volumeId, task);
      return true;
    });
  }

  deleteRepairTask(volumeId: VolumeId): Promise<void> {
    return this.enqueue(async () => {
      if (!this.repairTaskRecords.has(volumeId)) return;
      await this.commit([{ deleteRange: { key: this.repairTaskKey(volumeId) } }]);
      this.repairTaskRecords.delete(volumeId);
    });
  }

  replaceReplica(volumeId: VolumeId, fromNodeId: NodeId, toNodeId: NodeId): Promise<boolean> {
    return this.enqueue(async () => {
      const volume = this.volumeRecords.get(volumeId);
      if (volume === undefined || !volume.replicas.includes(fromNodeId) || volume.replicas.includes(toNodeId)) return false;
      const target = this.nodeRecords.get(toNodeId);
      assert(target !== undefined, "a replica moves to a known node");
      const moved: VolumeRecord = { ...volume, replicas: volume.replicas.map((nodeId) => (nodeId === fromNodeId ? toNodeId : nodeId)) };
      // The target's record goes with it, so the stored volume never names a node etcd lacks.
      await this.commit([
        { put: { key: this.volumeKey(volumeId), value: JSON.stringify(moved) } },
        { put: { key: this.nodeKey(toNodeId), value: JSON.stringify(target) } },
        { deleteRange: { key: this.repairTaskKey(volumeId) } },
      ]);
      this.persistedRegistrations.set(toNodeId, registration(target));
      this.volumeRecords.set(volumeId, moved);
      this.repairTaskRecords.delete(volumeId);
      return true;
    });
  }

  drainingNodes(): Set<NodeId> {
    return new Set(this.drainingNodeIds);
  }

  setDraining(nodeId: NodeId, sinceMs: number): Promise<boolean> {
    return this.enqueue(async () => {
      if (this.drainingNodeIds.has(nodeId)) return false;
      await this.commit([{ put: { key: this.key(`draining/${nodeId}`), value: JSON.stringify({ sinceMs }) } }]);
      this.drainingNodeIds.add(nodeId);
      return true;
    });
  }

  snapshot(stateOf: (node: StoredNode) => NodeRecord["state"], replicaCount: number): ClusterMap {
    return {
      version: this.currentVersion,
      replicaCount,
      nodes: this.nodes().map((node) => ({ ...node, state: stateOf(node) })),
      volumes: this.volumes(),
    };
  }

  /** Wait for the writes queued so far to settle. */
  async flush(): Promise<void> {
    await this.tail.catch(() => undefined);
  }

  private write(operations: TxnOperation[]): Promise<void> {
    return this.enqueue(() => this.commit(operations));
  }

  private enqueue<T>(step: () => Promise<T>): Promise<T> {
    const result = this.tail.catch(() => undefined).then(step);
    this.tail = result;
    return result;
  }

  /** One fenced transaction; applies nothing to memory itself. */
  private async commit(operations: TxnOperation[]): Promise<void> {
    if (this.lost) throw new LeadershipLost(this.options.leaderKey);
    const result = await this.options.client.txn({
      compare: [{ key: this.options.leaderKey, target: "create", createRevision: this.options.term.createRevision }],
      success: operations,
    });
    if (!result.succeeded) {
      this.lost = true;
      this.options.onLeadershipLost();
      throw new LeadershipLost(this.options.leaderKey);
    }
    this.currentVersion = Math.max(this.currentVersion, result.revision);
  }

  private key(name: string): string {
    return `${clusterMapPrefix(this.options.prefix)}${name}`;
  }

  private nodeKey(nodeId: NodeId): string {
    return this.key(`nodes/${nodeId}`);
  }

  private repairTaskKey(volumeId: VolumeId): string {
    return this.key(`repair-tasks/${String(volumeId).padStart(VOLUME_ID_DIGITS, "0")}`);
  }

  private volumeKey(volumeId: VolumeId): string {
    return this.key(`volumes/${String(volumeId).padStart(VOLUME_ID_DIGITS, "0")}`);
  }
}

/** The fields of a node that make its registration: a change to one of them is written to etcd. */
function registration(node: StoredNode): string {
  return JSON.stringify([node.address, node.zone, node.rack]);
}
