/**
 * `cairn gateway`: the stateless S3 API of a cluster. It keeps no state of its own: metadata
 * comes from the metadata store (served by placement, or PostgreSQL), the cluster map from the
 * placement leader, object bytes from the data nodes. Any number run side by side.
 *
 * With --etcd the gateway finds the placement leader by watching its key in etcd and follows
 * the leader's map (refreshed every CLUSTER_MAP_REFRESH_INTERVAL_MS); while no leader exists it
 * keeps serving reads and writes to existing volumes from the cached map.
 */
import { log, systemClock } from "../base/index.js";
import { EtcdKeyFollower, RemoteNeedleStore, RpcClient } from "../cluster/index.js";
import { DataRouter, GarbageCollector, type AckLevel } from "../datapath/index.js";
import { PostgresMetadataStore, remoteMetadataStore, type MetadataStore } from "../meta/index.js";
import { ClusterPlacement, placementLeaderKey } from "../placement/index.js";
import { parseLayoutName, STORAGE_CLASS_REPLICATED } from "../s3/index.js";
import { ETCD_FOLLOWER_SETTINGS, etcdClientOf, etcdPrefixOf } from "./placement.js";
import { listenS3 } from "./s3-listener.js";
import { masterKeyFromClusterSecret } from "./cluster-keys.js";
import { Settings, UsageError, type SettingSpec } from "./config.js";
import { ensureRootUser } from "./credentials.js";

export const GATEWAY_SETTINGS: readonly SettingSpec[] = [
  { flag: "listen", env: "CAIRN_LISTEN", defaultValue: "127.0.0.1:9000", help: "S3 API address" },
  { flag: "placement", env: "CAIRN_PLACEMENT", defaultValue: undefined, help: "placement URL(s), comma-separated (optional with --etcd)" },
  { flag: "cluster-secret", env: "CAIRN_CLUSTER_SECRET", defaultValue: undefined, help: "secret shared by the cluster's processes" },
  { flag: "region", env: "CAIRN_REGION", defaultValue: "us-east-1", help: "region reported for buckets" },
  { flag: "domain", env: "CAIRN_DOMAINS", defaultValue: "localhost", help: "domain for virtual-host-style requests; repeatable", repeatable: true },
  { flag: "zone", env: "CAIRN_ZONE", defaultValue: undefined, help: "this gateway's zone (reads prefer replicas in it)" },
  { flag: "ack", env: "CAIRN_ACK", defaultValue: "all", help: "replica acks before a write succeeds: all, majority or one" },
  {
    flag: "meta",
    env: "CAIRN_META",
    defaultValue: "placement",
    help: "metadata store: placement (served by the placement service) or postgres://user:pass@host/db",
  },
  { flag: "meta-schema", env: "CAIRN_META_SCHEMA", defaultValue: "cairn", help: "PostgreSQL schema holding Cairn's tables" },
  {
    flag: "default-storage-class",
    env: "CAIRN_DEFAULT_STORAGE_CLASS",
    defaultValue: STORAGE_CLASS_REPLICATED,
    help: "layout of objects that neither their PUT nor their bucket's cairn:storage-class tag chooses: STANDARD (replicated) or EC:<k>+<m>",
  },
  ...ETCD_FOLLOWER_SETTINGS,
];

function parseAckLevel(value: string): AckLevel {
  if (value === "all" || value === "majority" || value === "one") return value;
  throw new UsageError(`--ack must be all, majority or one, got ${value}`);
}

/**
 * The gateway's metadata store: the one placement serves over RPC, or PostgreSQL shared by all
 * gateways. With PostgreSQL the gateway registers the root key from CAIRN_ROOT_ACCESS_KEY /
 * CAIRN_ROOT_SECRET_KEY when they are set (placement does it for its own store).
 */
async function openMetadataStore(settings: Settings, placementUrl: string | undefined, secret: string): Promise<MetadataStore> {
  const meta = settings.require("meta");
  if (meta === "placement") {
    if (settings.get("etcd")) throw new UsageError("with --etcd there are several placement instances and no metadata store among them: use --meta postgres://...");
    if (placementUrl === undefined) throw new UsageError("--placement (or CAIRN_PLACEMENT) is required");
    return remoteMetadataStore(new RpcClient(placementUrl, secret));
  }
  if (!/^postgres(ql)?:\/\//.test(meta)) throw new UsageError(`--meta must be placement or a postgres:// URL`);
  const store = await PostgresMetadataStore.open(meta, { schema: settings.require("meta-schema") });
  const accessKeyId = process.env.CAIRN_ROOT_ACCESS_KEY;
  const secretAccessKey = process.env.CAIRN_ROOT_SECRET_KEY;
  if (accessKeyId && secretAccessKey) {
    await ensureRootUser(store, masterKeyFromClusterSecret(secret), { accessKeyId, secretAccessKey, generated: false }, systemClock.nowMs());
  }
  return store;
}

export async function runGateway(settings: Settings): Promise<{ port: number; close(): Promise<void> }> {
  const secret = settings.require("cluster-secret");
  const placementUrls = (settings.get("placement") ?? "").split(",").map((url) => url.trim()).filter((url) => url !== "");
  const etcd = etcdClientOf(settings);
  if (etcd === undefined && placementUrls.length === 0) throw new UsageError("--placement (or CAIRN_PLACEMENT) is required without --etcd");
  const ackLevel = parseAckLevel(settings.require("ack"));
  const defaultStorageClass = settings.require("default-storage-class");
  const defaultEc = parseLayoutName(defaultStorageClass);
  if (defaultEc === undefined) throw new UsageError(`--default-storage-class must be STANDARD or EC:<k>+<m> (k + m <= 20), got ${defaultStorageClass}`);
  const masterKey = masterKeyFromClusterSecret(secret);
  const meta = await openMetadataStore(settings, placementUrls[0], secret);
  const zone = settings.get("zone");
  const leader = etcd === undefined ? undefined : new EtcdKeyFollower(etcd, placementLeaderKey(etcdPrefixOf(settings)));
  await leader?.start();
  const placement = new ClusterPlacement({
    placementUrls,
    ...(leader !== undefined ? { leaderUrl: () => leader.value() } : {}),
    secret,
    storeFor: (node) => new RemoteNeedleStore({ nodeId: node.nodeId, address: node.address, secret }),
    ...(zone !== undefined ? { zone } : {}),
  });
  const dataRouter = new DataRouter(placement, ackLevel);
  const garbageCollector = new GarbageCollector(meta, dataRouter);
  garbageCollector.start();
  const listener = await listenS3({ meta, dataRouter, garbageCollector, masterKey, settings, defaultEc });
  const { host, port: boundPort } = listener;
  process.stdout.write(JSON.stringify({ event: "listening", role: "gateway", host, port: boundPort }) + "\n");
  log.info({ host, port: boundPort, placementUrls, etcd: etcd?.endpoints, leader: leader?.value(), ackLevel }, "cairn gateway listening");
  return {
    port: boundPort,
    async close() {
      await listener.close();
      await garbageCollector.stop();
      await dataRouter.close();
      await placement.close();
      leader?.close();
      etcd?.close();
      await meta.close();
    },
  };
}
