/**
 * Placement for a gateway in a cluster: a cached copy of the placement service's cluster map,
 * refreshed in the background and on demand. The data path asks it for a writable volume and
 * for a volume's replicas; both answer from the cache, so while placement is unreachable reads
 * and writes to existing writable volumes carry on (only growing new volumes waits for it).
 */
import { assert, log, SECOND_MS, type NodeId, type VolumeId } from "../base/index.js";
import { RpcClient, type ClusterMap, type DamageReport, type NeedleStore, type NodeRecord, type VolumeRecord } from "../cluster/index.js";
import { clusterMapProblems } from "./cluster-map-store.js";
import type { EcScheme } from "../ec/index.js";
import { sameLayout, UnknownVolume, type Placement, type VolumeReplicaSet } from "./placement.js";

/** The cached map is refreshed this often; a node down or a volume sealed reaches gateways within it. */
export const CLUSTER_MAP_REFRESH_INTERVAL_MS = 1 * SECOND_MS;
/** Rounds of "ask placement to grow, refresh, look again" before writableVolume gives up. */
export const WRITABLE_VOLUME_ATTEMPTS_MAX = 3;
/** Pause between those rounds: growth needs createVolume on every replica, a few ms to a second. */
export const WRITABLE_VOLUME_RETRY_DELAY_MS = 200;
/** Placement RPCs from a gateway; short, because a slow placement must not stall the data path. */
export const PLACEMENT_RPC_TIMEOUT_MS = 3 * SECOND_MS;

/** No volume with all replicas up takes writes, and placement could not grow one. */
export class NoWritableVolume extends Error {
  override name = "NoWritableVolume";
  constructor(readonly reason: string) {
    super(`no writable volume: ${reason}`);
  }
}

/** No placement instance answered and no cluster map is cached yet. */
export class PlacementUnavailable extends Error {
  override name = "PlacementUnavailable";
  constructor(readonly reason: string) {
    super(`placement unavailable: ${reason}`);
  }
}

export interface ClusterPlacementOptions {
  /** Placement instances to try, in order, after the leader (may be empty when leaderUrl is given). */
  placementUrls: string[];
  /**
   * The placement leader's URL as etcd names it now (undefined while there is none); tried
   * first. With several placement instances, the others answer NotLeader.
   */
  leaderUrl?: () => string | undefined;
  secret: string;
  storeFor: (node: NodeRecord) => NeedleStore;
  /** The gateway's zone: replicas in it are read first. */
  zone?: string;
  refreshIntervalMs?: number;
}

/** How long a node this gateway could not reach is avoided (see reportUnreachable). */
export const SUSPECT_NODE_MS = 5_000;

export class ClusterPlacement implements Placement {
  private readonly suspects = new Map<NodeId, number>();
  private readonly clients = new Map<string, RpcClient>();
  private readonly placementUrls: readonly string[];
  private readonly leaderUrl: (() => string | undefined) | undefined;
  private readonly secret: string;
  private readonly storeFor: (node: NodeRecord) => NeedleStore;
  private readonly zone: string | undefined;
  private readonly timer: NodeJS.Timeout;
  private readonly needleStores = new Map<NodeId, { address: string; store: NeedleStore }>();
  /** Volumes a replica called full that the cached map may still list as writable. */
  private readonly fullVolumes = new Set<VolumeId>();
  private map: ClusterMap | undefined;
  /** The placement URL that answered last; tried first after the leader. */
  private preferredUrl: string | undefined;
  private refreshing: Promise<ClusterMap> | undefined;
  private nextWritableIndex = 0;
  private placementReachable = true;
  private closed = false;

  constructor(options: ClusterPlacementOptions) {
    assert(options.placementUrls.length > 0 || options.leaderUrl !== undefined, "at least one placement URL, or a leader to follow");
    this.placementUrls = options.placementUrls;
    this.leaderUrl = options.leaderUrl;
    this.secret = options.secret;
    this.storeFor = options.storeFor;
    this.zone = options.zone;
    this.timer = setInterval(() => {
      this.refresh().catch(() => undefined); // refresh() logs reachability changes itself
    }, options.refreshIntervalMs ?? CLUSTER_MAP_REFRESH_INTERVAL_MS);
    this.timer.unref();
    this.refresh().catch(() => undefined);
  }

  /** The newest map seen, or undefined before the first successful refresh. */
  currentMap(): ClusterMap | undefined {
    return this.map;
  }

  /**
   * Fetch the map now; rejects only when no placement answers. Concurrent callers share one
   * fetch, so use this where any recent map will do (the background refresh, a first map).
   */
  refresh(): Promise<ClusterMap> {
    this.refreshing ??= this.fetchMap().finally(() => (this.refreshing = undefined));
    return this.refreshing;
  }

  /**
   * A fetch of its own, for callers that need a map newer than something they just learned
   * (a volume named by metadata, a seal just reported): a shared fetch may have left before it.
   */
  private async fetchMap(): Promise<ClusterMap> {
    return this.adopt(await this.callPlacement<ClusterMap>("clusterMap", {}));
  }

  /**
   * A writable volume with every replica up, round-robin; one outside `exclude` (volumes that
   * just failed the caller) when such exists. When none is writable, asks placement to grow.
   */
  async writableVolume(options: { exclude?: ReadonlySet<VolumeId>; ec?: EcScheme | null } = {}): Promise<VolumeReplicaSet> {
    const exclude = options.exclude ?? new Set<VolumeId>();
    const ec = options.ec ?? null;
    const map = await this.mapOrFetch();
    let choice = this.pickWritable(map, exclude, ec);
    for (let attempt = 0; choice === undefined && attempt < WRITABLE_VOLUME_ATTEMPTS_MAX; attempt++) {
      if (attempt > 0) await delay(WRITABLE_VOLUME_RETRY_DELAY_MS);
      try {
        this.adopt(await this.callPlacement<ClusterMap>("growVolumes", { ec }));
      } catch (error) {
        // Placement unreachable: nothing can grow; the cache is all there is.
        throw new NoWritableVolume(`placement unreachable (${(error as Error).message})`);
      }
      choice = this.pickWritable(this.map!, exclude, ec);
    }
    if (choice === undefined) throw new NoWritableVolume("placement could not grow a volume with all replicas up");
    return choice;
  }

  /** Round-robin over writable volumes of the layout whose replicas are all up, so PUTs spread over them. */
  private pickWritable(map: ClusterMap, exclude: ReadonlySet<VolumeId>, ec: EcScheme | null): VolumeReplicaSet | undefined {
    const nodes = nodesById(map);
    const writable = map.volumes.filter(
      (volume) =>
        volume.state === "writable" &&
        sameLayout(volume.ec, ec) &&
        !this.fullVolumes.has(volume.volumeId) &&
        volume.replicas.every((nodeId) => this.isUsable(nodes.get(nodeId))),
    );
    if (writable.length === 0) return undefined;
    const preferred = writable.filter((volume) => !exclude.has(volume.volumeId));
    // Only excluded volumes left: one of them is still better than failing the write here.
    const pool = preferred.length > 0 ? preferred : writable;
    this.nextWritableIndex = (this.nextWritableIndex + 1) % pool.length;
    return this.replicaSet(pool[this.nextWritableIndex]!, nodes);
  }

  /**
   * A node this gateway just failed to reach is avoided for writes and tried last for reads
   * until SUSPECT_NODE_MS passes: placement needs NODE_DOWN_AFTER_MS to notice a dead node,
   * and writes should not keep picking volumes on it meanwhile.
   */
  reportDamage(report: DamageReport): void {
    this.callPlacement("reportDamage", report).catch((error: unknown) => log.warn({ error, ...report }, "could not report damage to placement"));
  }

  reportUnreachable(nodeId: NodeId): void {
    this.suspects.set(nodeId, Date.now() + SUSPECT_NODE_MS);
  }

  private isUsable(node: NodeRecord | undefined): boolean {
    if (node === undefined || node.state !== "up") return false;
    const suspectUntilMs = this.suspects.get(node.nodeId);
    if (suspectUntilMs === undefined) return true;
    if (suspectUntilMs > Date.now()) return false;
    this.suspects.delete(node.nodeId);
    return true;
  }

  async volumeFull(volumeId: VolumeId): Promise<void> {
    this.fullVolumes.add(volumeId);
    try {
      await this.callPlacement("volumeFull", { volumeId });
      await this.fetchMap();
    } catch (error) {
      // Placement will learn it from the node's heartbeat; this gateway stops using the volume now.
      log.warn({ volumeId, error }, "could not tell placement a volume is full");
    }
  }

  async replicasOf(volumeId: VolumeId, options: { fresh?: boolean } = {}): Promise<VolumeReplicaSet> {
    let map = options.fresh ? await this.fetchMap().catch(() => this.mapOrFetch()) : await this.mapOrFetch();
    let volume = map.volumes.find((candidate) => candidate.volumeId === volumeId);
    if (volume === undefined) {
      // A volume created since our last refresh; ask once, and keep serving if placement is away.
      map = await this.fetchMap().catch(() => map);
      volume = map.volumes.find((candidate) => candidate.volumeId === volumeId);
    }
    if (volume === undefined) throw new UnknownVolume(volumeId);
    return this.replicaSet(volume, nodesById(map));
  }

  /**
   * Replicated: stores best-first for reads, up before down, the gateway's zone first, then
   * lower write latency (the detector's signal of a busy or failing disk), then placement
   * order. Down replicas stay, last: the map may be stale and they may be the only copy that
   * answers. Erasure-coded: placement order, since position i is shard i.
   */
  private replicaSet(volume: VolumeRecord, nodes: Map<NodeId, NodeRecord>): VolumeReplicaSet {
    const records = volume.replicas.map((nodeId, index) => {
      const node = nodes.get(nodeId);
      assert(node !== undefined, "adopted maps name only known nodes");
      return { node, index, healthy: this.isUsable(node) };
    });
    if (volume.ec === null) {
      records.sort(
        (left, right) =>
          rank(left.healthy) - rank(right.healthy) ||
          rank(left.node.zone === this.zone) - rank(right.node.zone === this.zone) ||
          left.node.writeLatencyMs - right.node.writeLatencyMs ||
          left.index - right.index,
      );
    }
    return {
      volumeId: volume.volumeId,
      replicas: records.map((entry) => this.needleStoreOf(entry.node)),
      healthy: records.map((entry) => entry.healthy),
      ec: volume.ec,
    };
  }

  private needleStoreOf(node: NodeRecord): NeedleStore {
    const cached = this.needleStores.get(node.nodeId);
    if (cached !== undefined && cached.address === node.address) return cached.store;
    if (cached !== undefined) {
      // The node moved; requests in flight on the old client fail and are retried elsewhere.
      void cached.store.close().catch((error: unknown) => log.debug({ error }, "closing a moved node's store failed"));
    }
    const store = this.storeFor(node);
    this.needleStores.set(node.nodeId, { address: node.address, store });
    return store;
  }

  private async mapOrFetch(): Promise<ClusterMap> {
    if (this.map !== undefined) return this.map;
    try {
      return await this.refresh();
    } catch (error) {
      throw new PlacementUnavailable((error as Error).message);
    }
  }

  /** Keep the newest map: a slow answer must not roll the cache back past a newer one. */
  private adopt(received: ClusterMap): ClusterMap {
    if (this.map !== undefined && received.version < this.map.version) return this.map;
    // The RPC transport carries null as an absent field; a replicated volume's ec is null here.
    const map: ClusterMap = { ...received, volumes: received.volumes.map((volume) => ({ ...volume, ec: volume.ec ?? null })) };
    const problems = clusterMapProblems(map);
    if (problems.length > 0) {
      // Input from the network: refuse it and keep the last sound map rather than crash the gateway.
      log.error({ version: map.version, problems }, "cluster map refused");
      if (this.map !== undefined) return this.map;
      throw new PlacementUnavailable(`cluster map version ${map.version} is inconsistent`);
    }
    this.map = map;
    for (const volume of map.volumes) if (volume.state === "sealed") this.fullVolumes.delete(volume.volumeId);
    return map;
  }

  /** The placement URLs to try, in order: the leader, the one that answered last, the rest. */
  private candidateUrls(): string[] {
    const urls = [this.leaderUrl?.(), this.preferredUrl, ...this.placementUrls].filter((url): url is string => url !== undefined && url !== "");
    return [...new Set(urls)];
  }

  private clientOf(url: string): RpcClient {
    let client = this.clients.get(url);
    if (client === undefined) {
      client = new RpcClient(url, this.secret);
      this.clients.set(url, client);
    }
    return client;
  }

  /** Call placement, trying each instance from the leader (or the last one that answered). */
  private async callPlacement<T>(method: string, body: unknown): Promise<T> {
    let lastError: unknown = new PlacementUnavailable("no placement leader is known");
    for (const url of this.candidateUrls()) {
      try {
        const result = await this.clientOf(url).call<T>(method, body, { timeoutMs: PLACEMENT_RPC_TIMEOUT_MS });
        this.preferredUrl = url;
        if (!this.placementReachable) log.info({ url }, "placement reachable again");
        this.placementReachable = true;
        return result;
      } catch (error) {
        // A standby (NotLeader), a dead instance: the next one may lead.
        lastError = error;
      }
    }
    if (this.placementReachable && !this.closed) log.warn({ error: lastError }, "placement unreachable; serving from the cached cluster map");
    this.placementReachable = false;
    throw lastError;
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    await this.refreshing?.catch(() => undefined);
    for (const client of this.clients.values()) client.close();
    const stores = [...this.needleStores.values()];
    this.needleStores.clear();
    await Promise.allSettled(stores.map((entry) => entry.store.close()));
  }
}

function rank(preferred: boolean): number {
  return preferred ? 0 : 1;
}

function nodesById(map: ClusterMap): Map<NodeId, NodeRecord> {
  return new Map(map.nodes.map((node) => [node.nodeId, node]));
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
