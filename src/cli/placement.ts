/**
 * `cairn placement`: the placement service of a cluster — heartbeats, the cluster map, volume
 * allocation — served over internal RPC. Wiring only; the parts live in placement/ and cluster/.
 *
 * Two ways to keep the map:
 *   - alone (no --etcd): one instance, the map in SQLite (<data-dir>/cluster-map.sqlite);
 *   - with --etcd: any number of instances; they elect a leader through an etcd lease, the map
 *     lives in etcd under --etcd-prefix, and standbys answer NotLeader until they lead.
 *
 * Prints {"event":"listening","role":"placement","port":<port>} on stdout once it serves.
 */
import { promises as fs } from "node:fs";
import * as path from "node:path";
import { HTTP_KEEP_ALIVE_TIMEOUT_MS, log, NEEDLE_DATA_SIZE_BYTES_MAX, SECOND_MS, systemClock } from "../base/index.js";
import { createRpcServer, EtcdClient, NODE_DOWN_AFTER_MS, RemoteNeedleStore, type NeedleStore, type NodeRecord, type RpcRoutes } from "../cluster/index.js";
import {
  ClusterMapStore,
  createPlacementRpcRoutes,
  ElectedPlacement,
  NODE_OUT_AFTER_MS_DEFAULT,
  PlacementService,
  REPAIR_COPY_BYTES_PER_SECOND_DEFAULT,
  REPLICA_COUNT_DEFAULT,
} from "../placement/index.js";
import { parseListenAddress, Settings, UsageError, type SettingSpec } from "./config.js";

/** On close, requests still running after this are cut off so shutdown cannot hang on a slow peer. */
const SHUTDOWN_GRACE_MS = 5 * SECOND_MS;

export const PLACEMENT_SETTINGS: readonly SettingSpec[] = [
  { flag: "data-dir", env: "CAIRN_DATA_DIR", defaultValue: "./data", help: "data directory (cluster map)" },
  { flag: "listen", env: "CAIRN_LISTEN", defaultValue: "127.0.0.1:9200", help: "internal RPC address (port 0: any free port)" },
  { flag: "cluster-secret", env: "CAIRN_CLUSTER_SECRET", defaultValue: undefined, help: "shared secret of internal RPC (required)" },
  { flag: "replicas", env: "CAIRN_REPLICAS", defaultValue: String(REPLICA_COUNT_DEFAULT), help: "replicas per volume" },
  {
    flag: "node-down-after-ms",
    env: "CAIRN_NODE_DOWN_AFTER_MS",
    defaultValue: String(NODE_DOWN_AFTER_MS),
    help: "a data node silent this long is down",
  },
  {
    flag: "node-out-after-ms",
    env: "CAIRN_NODE_OUT_AFTER_MS",
    defaultValue: String(NODE_OUT_AFTER_MS_DEFAULT),
    help: "a data node down this long is out: repair re-creates its replicas elsewhere",
  },
  {
    flag: "repair-bytes-per-second",
    env: "CAIRN_REPAIR_BYTES_PER_SECOND",
    defaultValue: String(REPAIR_COPY_BYTES_PER_SECOND_DEFAULT),
    help: "repair and drain copy at most this many bytes per second",
  },
  { flag: "etcd", env: "CAIRN_ETCD", defaultValue: undefined, help: "etcd client URL(s), comma-separated: elect a leader and keep the map there" },
  { flag: "etcd-prefix", env: "CAIRN_ETCD_PREFIX", defaultValue: "/cairn", help: "key prefix of this cluster in etcd" },
  { flag: "advertise", env: "CAIRN_ADVERTISE", defaultValue: undefined, help: "URL others reach this placement at (default http://<listen host>:<bound port>)" },
];

/** The etcd settings of gateways and data nodes: where to find the placement leader. */
export const ETCD_FOLLOWER_SETTINGS: readonly SettingSpec[] = [
  { flag: "etcd", env: "CAIRN_ETCD", defaultValue: undefined, help: "etcd client URL(s), comma-separated: find the placement leader there" },
  { flag: "etcd-prefix", env: "CAIRN_ETCD_PREFIX", defaultValue: "/cairn", help: "key prefix of this cluster in etcd" },
];

/** The etcd client of --etcd, or undefined when the setting is absent. */
export function etcdClientOf(settings: Settings): EtcdClient | undefined {
  const endpoints = settings.get("etcd");
  if (endpoints === undefined || endpoints === "") return undefined;
  try {
    return new EtcdClient(endpoints);
  } catch (error) {
    throw new UsageError(`--etcd: ${(error as Error).message}`);
  }
}

export function etcdPrefixOf(settings: Settings): string {
  const prefix = settings.require("etcd-prefix").replace(/\/+$/, "");
  if (!/^\/[A-Za-z0-9._\/-]*$/.test(prefix)) throw new UsageError(`--etcd-prefix must be a key path such as /cairn, got ${prefix}`);
  return prefix;
}

export interface RunningPlacement {
  port: number;
  close(): Promise<void>;
}

/**
 * Start placement. `extraRoutes` are served beside the placement routes on the same port (the
 * metadata RPC of a cluster); a method in both is a wiring bug. `storeFor` reaches data nodes
 * (RemoteNeedleStore over RPC unless a test passes its own).
 */
export async function runPlacement(
  settings: Settings,
  extraRoutes?: RpcRoutes,
  storeFor?: (node: NodeRecord) => NeedleStore,
): Promise<RunningPlacement> {
  const dataDirectory = path.resolve(settings.require("data-dir"));
  const secret = settings.require("cluster-secret");
  const replicaCount = settings.integer("replicas") ?? REPLICA_COUNT_DEFAULT;
  if (replicaCount < 1) throw new UsageError("--replicas must be at least 1");
  const nodeDownAfterMs = settings.integer("node-down-after-ms") ?? NODE_DOWN_AFTER_MS;
  if (nodeDownAfterMs < 1) throw new UsageError("--node-down-after-ms must be at least 1");
  const nodeOutAfterMs = settings.integer("node-out-after-ms") ?? NODE_OUT_AFTER_MS_DEFAULT;
  if (nodeOutAfterMs < nodeDownAfterMs) throw new UsageError("--node-out-after-ms must be at least --node-down-after-ms");
  const repairCopyBytesPerSecond = settings.integer("repair-bytes-per-second") ?? REPAIR_COPY_BYTES_PER_SECOND_DEFAULT;
  if (repairCopyBytesPerSecond < 1) throw new UsageError("--repair-bytes-per-second must be at least 1");
  const listen = parseListenAddress(settings.require("listen"));
  await fs.mkdir(dataDirectory, { recursive: true, mode: 0o700 });

  const reachNode = storeFor ?? ((node: NodeRecord) => new RemoteNeedleStore({ nodeId: node.nodeId, address: node.address, secret }));
  const etcd = etcdClientOf(settings);
  const advertise = settings.get("advertise");
  // Alone: the service runs from the start over SQLite. With etcd: whenever this instance leads.
  let store: ClusterMapStore | undefined;
  let service: PlacementService | undefined;
  let elected: ElectedPlacement | undefined;
  let placementRoutes: RpcRoutes;
  if (etcd === undefined) {
    store = ClusterMapStore.open(path.join(dataDirectory, "cluster-map.sqlite"));
    service = new PlacementService({ clock: systemClock, store, replicaCount, nodeDownAfterMs, nodeOutAfterMs, repairCopyBytesPerSecond, storeFor: reachNode });
    placementRoutes = createPlacementRpcRoutes(service);
  } else {
    elected = new ElectedPlacement({
      client: etcd,
      prefix: etcdPrefixOf(settings),
      // Known once the port is bound (port 0); read by start(), after listen.
      advertiseUrl: () => advertiseUrl,
      storeFor: reachNode,
      service: { clock: systemClock, replicaCount, nodeDownAfterMs, nodeOutAfterMs, repairCopyBytesPerSecond },
    });
    placementRoutes = elected.routes;
  }
  let advertiseUrl = "";
  const routes = mergeRoutes(placementRoutes, extraRoutes ?? {});
  const server = createRpcServer(
    { secret, routes, blobSizeBytesMax: NEEDLE_DATA_SIZE_BYTES_MAX },
    { noDelay: true, keepAlive: true, keepAliveTimeout: HTTP_KEEP_ALIVE_TIMEOUT_MS },
  );
  try {
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(listen.port, listen.host, () => {
        server.off("error", reject);
        resolve();
      });
    });
  } catch (error) {
    await service?.close();
    store?.close();
    etcd?.close();
    throw error;
  }
  server.on("error", (error) => log.error({ error }, "placement RPC server error"));
  const bound = server.address();
  const port = typeof bound === "object" && bound !== null ? bound.port : listen.port;
  advertiseUrl = advertise !== undefined && advertise !== "" ? advertise.replace(/\/+$/, "") : `http://${listen.host.includes(":") ? `[${listen.host}]` : listen.host}:${port}`;
  service?.start();
  await elected?.start();
  process.stdout.write(JSON.stringify({ event: "listening", role: "placement", port }) + "\n");
  log.info({ host: listen.host, port, dataDirectory, replicaCount, nodeDownAfterMs, nodeOutAfterMs, etcd: etcd?.endpoints, advertiseUrl }, "cairn placement listening");

  return {
    port,
    async close() {
      // A leader resigns first (revoking its lease), so a standby takes over at once rather
      // than after the lease TTL; requests still arriving get NotLeader naming the new leader.
      await elected?.close();
      await new Promise<void>((resolve) => {
        const force = setTimeout(() => server.closeAllConnections(), SHUTDOWN_GRACE_MS);
        force.unref();
        server.close(() => {
          clearTimeout(force);
          resolve();
        });
        server.closeIdleConnections();
      });
      await service?.close();
      store?.close();
      etcd?.close();
    },
  };
}

function mergeRoutes(base: RpcRoutes, extra: RpcRoutes): RpcRoutes {
  for (const kind of ["json", "blobWrite", "blobRead"] as const) {
    for (const method of Object.keys(extra[kind] ?? {})) {
      if (base[kind]?.[method] !== undefined) throw new Error(`RPC method ${kind}/${method} is served twice`);
    }
  }
  return {
    json: { ...base.json, ...extra.json },
    blobWrite: { ...base.blobWrite, ...extra.blobWrite },
    blobRead: { ...base.blobRead, ...extra.blobRead },
  };
}
