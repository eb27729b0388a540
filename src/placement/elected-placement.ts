/**
 * One of several placement instances of a cluster whose map lives in etcd (`cairn placement
 * --etcd ...`). Every instance serves the placement RPC routes; only the elected leader runs a
 * PlacementService behind them. A standby answers every placement call with NotLeader, naming
 * the leader when it knows it, so callers that were pointed at it move on.
 *
 * Each term gets a fresh PlacementService over a freshly loaded EtcdClusterMapStore: the new
 * leader starts from what etcd holds (nodes, volumes, next volume id), with node states
 * derived again from heartbeats after the service's start-up grace window. A term ends when
 * the lease is lost or a fenced write fails; the service is closed before campaigning again.
 */
import { assert, log } from "../base/index.js";
import {
  EtcdElection,
  EtcdKeyFollower,
  NotLeader,
  type EtcdClient,
  type JsonHandler,
  type LeaderTerm,
  type NeedleStore,
  type NodeRecord,
  type RpcRoutes,
} from "../cluster/index.js";
import { EtcdClusterMapStore } from "./etcd-cluster-map-store.js";
import { createPlacementRpcRoutes, PlacementService, type PlacementServiceOptions } from "./placement-service.js";

/** The etcd key naming the placement leader (its RPC URL) under a cluster prefix. */
export function placementLeaderKey(prefix: string): string {
  return `${prefix}/placement/leader`;
}

/**
 * The method names of createPlacementRpcRoutes. Its handlers only close over the service and
 * touch it when called, so routes built over no service give the names and are thrown away;
 * a method added to the placement routes is forwarded without a change here.
 */
const PLACEMENT_RPC_METHODS: readonly string[] = Object.keys(createPlacementRpcRoutes(undefined as unknown as PlacementService).json ?? {});

export interface ElectedPlacementOptions {
  client: EtcdClient;
  prefix: string;
  /**
   * This instance's RPC URL, as others reach it: the value of the leader key while it leads.
   * Read once, by start() (after the RPC port is bound).
   */
  advertiseUrl: () => string;
  storeFor: (node: NodeRecord) => NeedleStore;
  service: Omit<PlacementServiceOptions, "store" | "storeFor">;
  ttlSeconds?: number;
}

export class ElectedPlacement {
  readonly routes: RpcRoutes;
  private election: EtcdElection | undefined;
  private readonly follower: EtcdKeyFollower;
  private leaderRoutes: RpcRoutes | undefined;
  private service: PlacementService | undefined;
  private store: EtcdClusterMapStore | undefined;

  constructor(private readonly options: ElectedPlacementOptions) {
    const key = placementLeaderKey(options.prefix);
    this.follower = new EtcdKeyFollower(options.client, key);
    // The placement routes by name, each forwarding to the leader's service or refusing.
    const json: Record<string, JsonHandler> = {};
    for (const name of PLACEMENT_RPC_METHODS) {
      json[name] = async (body) => {
        const handler = this.leaderRoutes?.json?.[name];
        if (handler === undefined) throw new NotLeader(this.leaderUrl() ?? "");
        return handler(body);
      };
    }
    this.routes = { json };
  }

  get isLeader(): boolean {
    return this.service !== undefined;
  }

  /** The leader's URL as etcd names it (possibly this instance), undefined while none. */
  leaderUrl(): string | undefined {
    return this.follower.value();
  }

  async start(): Promise<void> {
    assert(this.election === undefined, "elected placement started once");
    await this.follower.start();
    this.election = new EtcdElection({
      client: this.options.client,
      key: placementLeaderKey(this.options.prefix),
      value: this.options.advertiseUrl(),
      ...(this.options.ttlSeconds !== undefined ? { ttlSeconds: this.options.ttlSeconds } : {}),
      onElected: (term) => this.takeOffice(term),
      onDemoted: () => this.leaveOffice(),
    });
    this.election.start();
  }

  private async takeOffice(term: LeaderTerm): Promise<void> {
    const store = await EtcdClusterMapStore.load({
      client: this.options.client,
      prefix: this.options.prefix,
      leaderKey: placementLeaderKey(this.options.prefix),
      term,
      onLeadershipLost: () => this.election?.stepDown("a fenced write found another leader"),
    });
    const service = new PlacementService({ ...this.options.service, store, storeFor: this.options.storeFor });
    service.start();
    this.store = store;
    this.service = service;
    this.leaderRoutes = createPlacementRpcRoutes(service);
    log.info({ url: this.options.advertiseUrl(), createRevision: term.createRevision }, "placement leader: serving the cluster map");
  }

  private async leaveOffice(): Promise<void> {
    const service = this.service;
    const store = this.store;
    this.leaderRoutes = undefined;
    this.service = undefined;
    this.store = undefined;
    await service?.close();
    await store?.flush();
  }

  async close(): Promise<void> {
    await this.election?.resign();
    this.follower.close();
  }
}
