/**
 * `cairn gateway`: the stateless S3 API of a cluster. It keeps no state of its own: metadata
 * comes from the metadata store (served by placement, or PostgreSQL later), the cluster map
 * from placement, object bytes from the data nodes. Any number run side by side.
 */
import { log, systemClock } from "../base/index.js";
import { RemoteNeedleStore, RpcClient } from "../cluster/index.js";
import { DataRouter, GarbageCollector, type AckLevel } from "../datapath/index.js";
import { remoteMetadataStore } from "../meta/index.js";
import { ClusterPlacement } from "../placement/index.js";
import { listenS3 } from "./s3-listener.js";
import { masterKeyFromClusterSecret } from "./cluster-keys.js";
import { Settings, UsageError, type SettingSpec } from "./config.js";
import { credentialLookup, ROOT_USER_ID } from "./credentials.js";

export const GATEWAY_SETTINGS: readonly SettingSpec[] = [
  { flag: "listen", env: "CAIRN_LISTEN", defaultValue: "127.0.0.1:9000", help: "S3 API address" },
  { flag: "placement", env: "CAIRN_PLACEMENT", defaultValue: undefined, help: "placement URL(s), comma-separated" },
  { flag: "cluster-secret", env: "CAIRN_CLUSTER_SECRET", defaultValue: undefined, help: "secret shared by the cluster's processes" },
  { flag: "region", env: "CAIRN_REGION", defaultValue: "us-east-1", help: "region reported for buckets" },
  { flag: "domain", env: "CAIRN_DOMAINS", defaultValue: "localhost", help: "domain for virtual-host-style requests; repeatable", repeatable: true },
  { flag: "zone", env: "CAIRN_ZONE", defaultValue: undefined, help: "this gateway's zone (reads prefer replicas in it)" },
  { flag: "ack", env: "CAIRN_ACK", defaultValue: "all", help: "replica acks before a write succeeds: all, majority or one" },
];

function parseAckLevel(value: string): AckLevel {
  if (value === "all" || value === "majority" || value === "one") return value;
  throw new UsageError(`--ack must be all, majority or one, got ${value}`);
}

export async function runGateway(settings: Settings): Promise<{ port: number; close(): Promise<void> }> {
  const secret = settings.require("cluster-secret");
  const placementUrls = settings.require("placement").split(",").map((url) => url.trim()).filter((url) => url !== "");
  const ackLevel = parseAckLevel(settings.require("ack"));
  const masterKey = masterKeyFromClusterSecret(secret);
  const metaClient = new RpcClient(placementUrls[0]!, secret);
  const meta = remoteMetadataStore(metaClient);
  const zone = settings.get("zone");
  const placement = new ClusterPlacement({
    placementUrls,
    secret,
    storeFor: (node) => new RemoteNeedleStore({ nodeId: node.nodeId, address: node.address, secret }),
    ...(zone !== undefined ? { zone } : {}),
  });
  const dataRouter = new DataRouter(placement, ackLevel);
  const garbageCollector = new GarbageCollector(meta, dataRouter);
  garbageCollector.start();
  const listener = await listenS3(
    {
    meta,
    dataRouter,
    garbageCollector,
    clock: systemClock,
    region: settings.require("region"),
    domains: settings.list("domain"),
    lookupCredentials: credentialLookup(meta, masterKey, () => systemClock.nowMs()),
    rootUserId: ROOT_USER_ID,
    },
    settings.require("listen"),
  );
  const { host, port: boundPort } = listener;
  process.stdout.write(JSON.stringify({ event: "listening", role: "gateway", host, port: boundPort }) + "\n");
  log.info({ host, port: boundPort, placementUrls, ackLevel }, "cairn gateway listening");
  return {
    port: boundPort,
    async close() {
      await listener.close();
      await garbageCollector.stop();
      await placement.close();
      await meta.close();
    },
  };
}
