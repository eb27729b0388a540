/**
 * Embedded placement for `cairn server`: one process, one data node, the cluster map in a
 * SQLite file of the data directory. It keeps one writable volume open per disk, and grows a new
 * volume when one seals.
 *
 * One per disk, not more: each writable volume commits its own groups, so concurrent PUTs spread
 * over two volumes of one disk pay two fsyncs where one would do (4 KiB PUTs, alternated runs
 * of one against two volumes on one disk: 1,599-2,809 vs 1,178-1,941 ops/s, 7 of 7 pairs).
 */
import Database from "better-sqlite3";
import { assert, log, type NodeId, type VolumeId } from "../base/index.js";
import type { DamageReport, NeedleStore } from "../cluster/index.js";
import { UnknownVolume, type Placement, type VolumeReplicaSet } from "./placement.js";

/** Writable volumes kept open at once when the caller does not say (one per disk, see above). */
export const EMBEDDED_WRITABLE_VOLUME_COUNT_DEFAULT = 1;

export class EmbeddedPlacement implements Placement {
  private readonly writable: VolumeId[] = [];
  private readonly knownVolumes = new Set<VolumeId>();
  private nextWritableIndex = 0;
  private growing: Promise<void> | undefined;

  private constructor(
    private readonly db: Database.Database,
    private readonly node: NeedleStore,
    private readonly writableVolumeCount: number,
  ) {}

  /** `writableVolumeCount`: the node's disk count, so that every disk takes writes. */
  static async open(options: { databasePath: string; node: NeedleStore; writableVolumeCount?: number }): Promise<EmbeddedPlacement> {
    const writableVolumeCount = options.writableVolumeCount ?? EMBEDDED_WRITABLE_VOLUME_COUNT_DEFAULT;
    assert(Number.isInteger(writableVolumeCount) && writableVolumeCount >= 1, "writableVolumeCount is a positive integer");
    const db = new Database(options.databasePath);
    db.pragma("journal_mode = WAL");
    db.pragma("synchronous = FULL");
    db.exec(`CREATE TABLE IF NOT EXISTS volumes (
      volume_id INTEGER PRIMARY KEY,
      state TEXT NOT NULL CHECK (state IN ('writable', 'sealed')),
      node_id TEXT NOT NULL
    )`);
    const placement = new EmbeddedPlacement(db, options.node, writableVolumeCount);
    await placement.reconcile();
    return placement;
  }

  /**
   * The data node is the truth for what exists on disk: a volume the map lost (crash between
   * createVolume and the insert) is adopted, a volume the node sealed is marked sealed.
   */
  private async reconcile(): Promise<void> {
    const statuses = await this.node.volumeStatuses();
    const upsert = this.db.prepare(
      "INSERT INTO volumes (volume_id, state, node_id) VALUES (?, ?, ?) ON CONFLICT (volume_id) DO UPDATE SET state = excluded.state",
    );
    this.db.transaction(() => {
      for (const status of statuses) upsert.run(status.volumeId, status.state, this.node.nodeId);
    })();
    const rows = this.db
      .prepare("SELECT volume_id FROM volumes WHERE state = 'writable' AND node_id = ? ORDER BY volume_id")
      .all(this.node.nodeId) as Array<{ volume_id: number }>;
    for (const row of rows) this.writable.push(row.volume_id as VolumeId);
    while (this.writable.length < this.writableVolumeCount) await this.growVolume();
  }

  private async growVolume(): Promise<void> {
    const row = this.db.prepare("SELECT COALESCE(MAX(volume_id), 0) AS max_id FROM volumes").get() as { max_id: number };
    const volumeId = (row.max_id + 1) as VolumeId;
    // Create on the node first: a crash before the insert leaves an empty volume that
    // reconcile() adopts on the next start, never a map entry without a file.
    await this.node.createVolume(volumeId);
    this.db.prepare("INSERT INTO volumes (volume_id, state, node_id) VALUES (?, 'writable', ?)").run(volumeId, this.node.nodeId);
    this.writable.push(volumeId);
    log.info({ volumeId }, "volume created");
  }

  async writableVolume(options: { exclude?: ReadonlySet<VolumeId> } = {}): Promise<VolumeReplicaSet> {
    while (this.writable.length === 0) {
      this.growing ??= this.growVolume().finally(() => (this.growing = undefined));
      await this.growing;
    }
    this.nextWritableIndex = (this.nextWritableIndex + 1) % this.writable.length;
    const preferred = this.writable.filter((candidate) => !options.exclude?.has(candidate));
    const volumeId = preferred.length > 0 ? preferred[this.nextWritableIndex % preferred.length] : this.writable[this.nextWritableIndex];
    assert(volumeId !== undefined, "writable index in range");
    return { volumeId, replicas: [this.node], healthy: [true], ec: null };
  }

  async volumeFull(volumeId: VolumeId): Promise<void> {
    const index = this.writable.indexOf(volumeId);
    if (index < 0) return; // another request already reported it
    this.writable.splice(index, 1);
    this.db.prepare("UPDATE volumes SET state = 'sealed' WHERE volume_id = ?").run(volumeId);
    if (this.writable.length < this.writableVolumeCount) {
      this.growing ??= this.growVolume().finally(() => (this.growing = undefined));
      await this.growing;
    }
  }

  reportDamage(report: DamageReport): void {
    // No other replica to repair from in one process; the scrubber and repair come with issue 6.
    log.error({ ...report }, "needle damage reported");
  }

  reportUnreachable(): void {
    // One in-process data node: there is nothing else to prefer.
  }

  /** Every read asks this; the map of one node is small enough to answer from memory. */
  async replicasOf(volumeId: VolumeId): Promise<VolumeReplicaSet> {
    if (!this.knownVolumes.has(volumeId)) {
      const row = this.db.prepare("SELECT node_id FROM volumes WHERE volume_id = ?").get(volumeId) as { node_id: NodeId } | undefined;
      if (row === undefined) throw new UnknownVolume(volumeId);
      this.knownVolumes.add(volumeId);
    }
    return { volumeId, replicas: [this.node], healthy: [true], ec: null };
  }

  async close(): Promise<void> {
    this.db.close();
  }
}
