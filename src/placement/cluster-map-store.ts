/**
 * The cluster map of `cairn placement`, persisted in SQLite (WAL, synchronous=FULL: a change
 * acknowledged to a node or gateway survives power loss). Holds nodes and volumes as placement
 * last saw them, a map version bumped in the same transaction as every change, and the next
 * volume id.
 *
 * Node state (up/down) is not stored: it follows from the last heartbeat and the clock, and
 * the service derives it when it serves the map.
 */
import Database from "better-sqlite3";
import type { NodeId, VolumeId } from "../base/index.js";
import type { ClusterMap, DiskReport, NodeRecord, VolumeRecord } from "../cluster/index.js";
import type { EcScheme } from "../ec/index.js";

/** A node as stored: everything in NodeRecord except the derived state. */
export type StoredNode = Omit<NodeRecord, "state">;

interface NodeRow {
  node_id: string;
  address: string;
  zone: string;
  rack: string;
  last_heartbeat_at_ms: number;
  disks_json: string;
  write_count: number;
  write_latency_ms: number;
}

interface VolumeRow {
  volume_id: number;
  state: "writable" | "sealed";
  replicas_json: string;
  /** JSON of the EcScheme, or NULL for a replicated volume. */
  ec_json: string | null;
}

/** A replica being re-created on another node: `to` takes `from`'s place once it holds a full copy. */
export interface RepairTask {
  volumeId: VolumeId;
  /** replace: `from` is out (down for good); drain: `from` is up and being emptied. */
  kind: "replace" | "drain";
  fromNodeId: NodeId;
  toNodeId: NodeId;
  createdAtMs: number;
}

interface RepairTaskRow {
  volume_id: number;
  kind: "replace" | "drain";
  from_node_id: string;
  to_node_id: string;
  created_at_ms: number;
}

/**
 * What the placement service needs of a durable cluster map. Reads are synchronous (the service
 * derives node states and serves maps from them on every call); the three steps that must be
 * durable before placement acts on them may be asynchronous, and the service awaits them:
 * reserveVolumeId (before any node creates the volume), insertVolume (before any gateway may
 * write to it) and sealVolume. ClusterMapStore (SQLite) answers all of them at once;
 * EtcdClusterMapStore writes them through to etcd first.
 */
export interface ClusterMapRecords {
  version(): number;
  /** Announce a change that has no stored record (a node's derived state changed). */
  bumpVersion(): number;
  node(nodeId: NodeId): StoredNode | undefined;
  nodes(): StoredNode[];
  /** A heartbeat: insert or replace the node's record. */
  putNode(node: StoredNode): number;
  volume(volumeId: VolumeId): VolumeRecord | undefined;
  volumes(): VolumeRecord[];
  reserveVolumeId(): VolumeId | Promise<VolumeId>;
  insertVolume(volume: VolumeRecord): number | Promise<number>;
  sealVolume(volumeId: VolumeId): boolean | Promise<boolean>;
  snapshot(stateOf: (node: StoredNode) => NodeRecord["state"], replicaCount: number): ClusterMap;
  // Repair and drain (repair.ts). Each write is durable before it resolves: a task before any
  // copy is made for it, a replica swap before any map shows it.
  repairTasks(): RepairTask[];
  /** false when the volume already has a task. */
  insertRepairTask(task: RepairTask): boolean | Promise<boolean>;
  deleteRepairTask(volumeId: VolumeId): void | Promise<void>;
  /** `to` takes `from`'s place in the replica set and the task goes, at once; false if moot. */
  replaceReplica(volumeId: VolumeId, fromNodeId: NodeId, toNodeId: NodeId): boolean | Promise<boolean>;
  drainingNodes(): Set<NodeId>;
  /** false when the node was draining already. */
  setDraining(nodeId: NodeId, sinceMs: number): boolean | Promise<boolean>;
}

export class ClusterMapStore implements ClusterMapRecords {
  private constructor(private readonly db: Database.Database) {}

  /** Open (or create) the map; `":memory:"` gives a throwaway map for tests. */
  static open(databasePath: string): ClusterMapStore {
    const db = new Database(databasePath);
    db.pragma("journal_mode = WAL");
    db.pragma("synchronous = FULL");
    db.exec(`
      CREATE TABLE IF NOT EXISTS cluster_meta (
        name TEXT PRIMARY KEY,
        value INTEGER NOT NULL
      );
      INSERT OR IGNORE INTO cluster_meta (name, value) VALUES ('map_version', 0), ('next_volume_id', 1);
      CREATE TABLE IF NOT EXISTS nodes (
        node_id TEXT PRIMARY KEY,
        address TEXT NOT NULL,
        zone TEXT NOT NULL,
        rack TEXT NOT NULL,
        last_heartbeat_at_ms INTEGER NOT NULL,
        disks_json TEXT NOT NULL,
        write_count INTEGER NOT NULL,
        write_latency_ms REAL NOT NULL
      );
      CREATE TABLE IF NOT EXISTS volumes (
        volume_id INTEGER PRIMARY KEY,
        state TEXT NOT NULL CHECK (state IN ('writable', 'sealed')),
        replicas_json TEXT NOT NULL
      );
    `);
    // Repair and drain (repair.ts): the tasks in progress, so a restarted placement resumes each
    // onto the node it chose (copies already made are found and skipped), and the nodes being
    // drained, which take no new volumes.
    db.exec(`
      CREATE TABLE IF NOT EXISTS repair_tasks (
        volume_id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL CHECK (kind IN ('replace', 'drain')),
        from_node_id TEXT NOT NULL,
        to_node_id TEXT NOT NULL,
        created_at_ms INTEGER NOT NULL
      );
      CREATE TABLE IF NOT EXISTS draining_nodes (
        node_id TEXT PRIMARY KEY,
        since_ms INTEGER NOT NULL
      );
    `);
    // Maps written before erasure coding have no ec_json column: every volume there is replicated.
    const volumeColumns = db.prepare("PRAGMA table_info(volumes)").all() as Array<{ name: string }>;
    if (!volumeColumns.some((column) => column.name === "ec_json")) db.exec("ALTER TABLE volumes ADD COLUMN ec_json TEXT");
    return new ClusterMapStore(db);
  }

  version(): number {
    return this.metaValue("map_version");
  }

  /** Bump the version with no stored change (a node's derived state changed). */
  bumpVersion(): number {
    return this.db.transaction(() => this.bump())();
  }

  node(nodeId: NodeId): StoredNode | undefined {
    const row = this.db.prepare("SELECT * FROM nodes WHERE node_id = ?").get(nodeId) as NodeRow | undefined;
    return row === undefined ? undefined : nodeFromRow(row);
  }

  nodes(): StoredNode[] {
    return (this.db.prepare("SELECT * FROM nodes ORDER BY node_id").all() as NodeRow[]).map(nodeFromRow);
  }

  /** Insert or replace a node's record (a heartbeat); returns the new map version. */
  putNode(node: StoredNode): number {
    return this.db.transaction(() => {
      this.db
        .prepare(
          `INSERT INTO nodes (node_id, address, zone, rack, last_heartbeat_at_ms, disks_json, write_count, write_latency_ms)
           VALUES (@nodeId, @address, @zone, @rack, @lastHeartbeatAtMs, @disksJson, @writeCount, @writeLatencyMs)
           ON CONFLICT (node_id) DO UPDATE SET address = excluded.address, zone = excluded.zone, rack = excluded.rack,
             last_heartbeat_at_ms = excluded.last_heartbeat_at_ms, disks_json = excluded.disks_json,
             write_count = excluded.write_count, write_latency_ms = excluded.write_latency_ms`,
        )
        .run({
          nodeId: node.nodeId,
          address: node.address,
          zone: node.zone,
          rack: node.rack,
          lastHeartbeatAtMs: node.lastHeartbeatAtMs,
          disksJson: JSON.stringify(node.disks),
          writeCount: node.writeCount,
          writeLatencyMs: node.writeLatencyMs,
        });
      return this.bump();
    })();
  }

  volume(volumeId: VolumeId): VolumeRecord | undefined {
    const row = this.db.prepare("SELECT * FROM volumes WHERE volume_id = ?").get(volumeId) as VolumeRow | undefined;
    return row === undefined ? undefined : volumeFromRow(row);
  }

  volumes(): VolumeRecord[] {
    return (this.db.prepare("SELECT * FROM volumes ORDER BY volume_id").all() as VolumeRow[]).map(volumeFromRow);
  }

  /**
   * Take the next volume id for good, before any node creates the volume. A crash after this
   * leaves at most empty volume files on nodes under an id the map never hands out again, so
   * an id never names two different replica sets.
   */
  reserveVolumeId(): VolumeId {
    return this.db.transaction(() => {
      const volumeId = this.metaValue("next_volume_id");
      this.db.prepare("UPDATE cluster_meta SET value = ? WHERE name = 'next_volume_id'").run(volumeId + 1);
      return volumeId as VolumeId;
    })();
  }

  /** Record a volume whose replicas all exist; returns the new map version. */
  insertVolume(volume: VolumeRecord): number {
    return this.db.transaction(() => {
      this.db
        .prepare("INSERT INTO volumes (volume_id, state, replicas_json, ec_json) VALUES (?, ?, ?, ?)")
        .run(volume.volumeId, volume.state, JSON.stringify(volume.replicas), volume.ec === null ? null : JSON.stringify(volume.ec));
      return this.bump();
    })();
  }

  /** Seal a writable volume; false when it was unknown or already sealed (nothing changed). */
  sealVolume(volumeId: VolumeId): boolean {
    return this.db.transaction(() => {
      const result = this.db.prepare("UPDATE volumes SET state = 'sealed' WHERE volume_id = ? AND state = 'writable'").run(volumeId);
      if (result.changes === 0) return false;
      this.bump();
      return true;
    })();
  }

  // ---- Repair and drain (see repair.ts) ----

  repairTasks(): RepairTask[] {
    const rows = this.db.prepare("SELECT * FROM repair_tasks ORDER BY volume_id").all() as RepairTaskRow[];
    return rows.map((row) => ({
      volumeId: row.volume_id as VolumeId,
      kind: row.kind,
      fromNodeId: row.from_node_id as NodeId,
      toNodeId: row.to_node_id as NodeId,
      createdAtMs: row.created_at_ms,
    }));
  }

  /** Record a task before any copy is made; false when the volume already has one. */
  insertRepairTask(task: RepairTask): boolean {
    const result = this.db
      .prepare("INSERT OR IGNORE INTO repair_tasks (volume_id, kind, from_node_id, to_node_id, created_at_ms) VALUES (?, ?, ?, ?, ?)")
      .run(task.volumeId, task.kind, task.fromNodeId, task.toNodeId, task.createdAtMs);
    return result.changes === 1;
  }

  deleteRepairTask(volumeId: VolumeId): void {
    this.db.prepare("DELETE FROM repair_tasks WHERE volume_id = ?").run(volumeId);
  }

  /**
   * The last step of a repair or drain: `to` takes `from`'s place in the volume's replica set
   * (same index), and the task goes, in one transaction with the version bump. False, with
   * nothing changed, when the volume no longer has `from` or already has `to`.
   */
  replaceReplica(volumeId: VolumeId, fromNodeId: NodeId, toNodeId: NodeId): boolean {
    return this.db.transaction(() => {
      const volume = this.volume(volumeId);
      if (volume === undefined || !volume.replicas.includes(fromNodeId) || volume.replicas.includes(toNodeId)) return false;
      const replicas = volume.replicas.map((nodeId) => (nodeId === fromNodeId ? toNodeId : nodeId));
      this.db.prepare("UPDATE volumes SET replicas_json = ? WHERE volume_id = ?").run(JSON.stringify(replicas), volumeId);
      this.db.prepare("DELETE FROM repair_tasks WHERE volume_id = ?").run(volumeId);
      this.bump();
      return true;
    })();
  }

  drainingNodes(): Set<NodeId> {
    const rows = this.db.prepare("SELECT node_id FROM draining_nodes").all() as Array<{ node_id: string }>;
    return new Set(rows.map((row) => row.node_id as NodeId));
  }

  /** Mark a node draining (idempotent); returns whether it was newly marked. */
  setDraining(nodeId: NodeId, sinceMs: number): boolean {
    return this.db.prepare("INSERT OR IGNORE INTO draining_nodes (node_id, since_ms) VALUES (?, ?)").run(nodeId, sinceMs).changes === 1;
  }

  /** The stored map; every node is reported with the state the caller derives. */
  snapshot(stateOf: (node: StoredNode) => NodeRecord["state"], replicaCount: number): ClusterMap {
    return this.db.transaction(() => ({
      version: this.version(),
      replicaCount,
      nodes: this.nodes().map((node) => ({ ...node, state: stateOf(node) })),
      volumes: this.volumes(),
    }))();
  }

  close(): void {
    this.db.close();
  }

  private metaValue(name: string): number {
    const row = this.db.prepare("SELECT value FROM cluster_meta WHERE name = ?").get(name) as { value: number } | undefined;
    if (row === undefined) throw new Error(`cluster_meta.${name} missing`);
    return row.value;
  }

  /** Call inside a transaction only, so the bump commits with the change it announces. */
  private bump(): number {
    this.db.prepare("UPDATE cluster_meta SET value = value + 1 WHERE name = 'map_version'").run();
    return this.metaValue("map_version");
  }
}

function nodeFromRow(row: NodeRow): StoredNode {
  return {
    nodeId: row.node_id as NodeId,
    address: row.address,
    zone: row.zone,
    rack: row.rack,
    lastHeartbeatAtMs: row.last_heartbeat_at_ms,
    disks: JSON.parse(row.disks_json) as DiskReport[],
    writeCount: row.write_count,
    writeLatencyMs: row.write_latency_ms,
  };
}

function volumeFromRow(row: VolumeRow): VolumeRecord {
  return {
    volumeId: row.volume_id as VolumeId,
    state: row.state,
    replicas: JSON.parse(row.replicas_json) as NodeId[],
    ec: row.ec_json === null ? null : (JSON.parse(row.ec_json) as EcScheme),
  };
}

/**
 * Invariants of a published map, checked by placement before it serves one and by gateways
 * when they load one: every replica names a known node, no node holds two replicas of one
 * volume, volume ids are unique. Returns the problems found (empty when the map is sound).
 */
export function clusterMapProblems(map: ClusterMap): string[] {
  const problems: string[] = [];
  const nodeIds = new Set<string>();
  for (const node of map.nodes) {
    if (nodeIds.has(node.nodeId)) problems.push(`node ${node.nodeId} listed twice`);
    nodeIds.add(node.nodeId);
  }
  const volumeIds = new Set<number>();
  for (const volume of map.volumes) {
    if (volumeIds.has(volume.volumeId)) problems.push(`volume ${volume.volumeId} listed twice`);
    volumeIds.add(volume.volumeId);
    if (volume.replicas.length === 0) problems.push(`volume ${volume.volumeId} has no replicas`);
    if (new Set(volume.replicas).size !== volume.replicas.length) problems.push(`volume ${volume.volumeId} has two replicas on one node`);
    for (const nodeId of volume.replicas) {
      if (!nodeIds.has(nodeId)) problems.push(`volume ${volume.volumeId} names unknown node ${nodeId}`);
    }
  }
  return problems;
}
