/**
 * `cairn placement`: the placement service of a cluster — heartbeats, the cluster map in
 * SQLite (<data-dir>/cluster-map.sqlite), volume allocation — served over internal RPC.
 * Wiring only; the parts live in placement/ and cluster/.
 *
 * Prints {"event":"listening","role":"placement","port":<port>} on stdout once it serves.
 */
import * as http from "node:http";
import { promises as fs } from "node:fs";
import * as path from "node:path";
import { HTTP_KEEP_ALIVE_TIMEOUT_MS, log, NEEDLE_DATA_SIZE_BYTES_MAX, SECOND_MS, systemClock } from "../base/index.js";
import { createRpcHandler, NODE_DOWN_AFTER_MS, RemoteNeedleStore, type NeedleStore, type NodeRecord, type RpcRoutes } from "../cluster/index.js";
import { ClusterMapStore, createPlacementRpcRoutes, PlacementService, REPLICA_COUNT_DEFAULT } from "../placement/index.js";
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
];

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
  const listen = parseListenAddress(settings.require("listen"));
  await fs.mkdir(dataDirectory, { recursive: true, mode: 0o700 });

  const store = ClusterMapStore.open(path.join(dataDirectory, "cluster-map.sqlite"));
  const service = new PlacementService({
    clock: systemClock,
    store,
    replicaCount,
    nodeDownAfterMs,
    storeFor: storeFor ?? ((node) => new RemoteNeedleStore({ nodeId: node.nodeId, address: node.address, secret })),
  });
  const routes = mergeRoutes(createPlacementRpcRoutes(service), extraRoutes ?? {});
  const server = http.createServer(
    { noDelay: true, keepAlive: true, keepAliveTimeout: HTTP_KEEP_ALIVE_TIMEOUT_MS },
    createRpcHandler({ secret, routes, blobSizeBytesMax: NEEDLE_DATA_SIZE_BYTES_MAX }),
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
    await service.close();
    store.close();
    throw error;
  }
  server.on("error", (error) => log.error({ error }, "placement RPC server error"));
  const bound = server.address();
  const port = typeof bound === "object" && bound !== null ? bound.port : listen.port;
  service.start();
  process.stdout.write(JSON.stringify({ event: "listening", role: "placement", port }) + "\n");
  log.info({ host: listen.host, port, dataDirectory, replicaCount, nodeDownAfterMs }, "cairn placement listening");

  return {
    port,
    async close() {
      await new Promise<void>((resolve) => {
        const force = setTimeout(() => server.closeAllConnections(), SHUTDOWN_GRACE_MS);
        force.unref();
        server.close(() => {
          clearTimeout(force);
          resolve();
        });
        server.closeIdleConnections();
      });
      await service.close();
      store.close();
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
