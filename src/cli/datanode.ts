/**
 * `cairn datanode`: stores needles in volumes on its disks, serves them over the internal RPC
 * API, and heartbeats to placement. Wiring only; the parts live in datanode/ and cluster/.
 *
 * Start-up order, and why:
 *   1. listen — with port 0 the bound port is part of the address we advertise, and placement
 *      may call us as soon as it has heard from us. Until the engine is open, requests get 503.
 *   2. node id — from <data-dir>/node-id, or assigned by placement on a first, id-less heartbeat
 *      (retried until placement answers) and persisted before use.
 *   3. open the DataNode with that id, serve RPC, heartbeat every HEARTBEAT_INTERVAL_MS.
 *   4. print {"event":"listening","role":"datanode","port":…,"nodeId":…} on stdout.
 */
import * as http from "node:http";
import type { Duplex } from "node:stream";
import { promises as fs } from "node:fs";
import * as path from "node:path";
import { HTTP_BODY_IDLE_TIMEOUT_MS, HTTP_KEEP_ALIVE_TIMEOUT_MS, KIBIBYTE, log, NEEDLE_DATA_SIZE_BYTES_MAX, SECOND_MS } from "../base/index.js";
import { createRpcHandler, EtcdKeyFollower, refuseRpcUpgrade, type DamageReport, type RpcHandler, type RpcRoutes } from "../cluster/index.js";
import { placementLeaderKey } from "../placement/index.js";
import {
  COMPACTION_GARBAGE_RATIO_MIN_DEFAULT,
  COMPACTION_INTERVAL_MS_DEFAULT,
  COMPACTION_RATE_BYTES_PER_SECOND_DEFAULT,
  Compactor,
  createDataNodeRpcRoutes,
  DataNode,
  HeartbeatSender,
  SCRUB_INTERVAL_MS_DEFAULT,
  SCRUB_RATE_BYTES_PER_SECOND_DEFAULT,
  Scrubber,
  WriteStats,
} from "../datanode/index.js";
import { parseListenAddress, Settings, UsageError, type SettingSpec } from "./config.js";
import { ETCD_FOLLOWER_SETTINGS, etcdClientOf, etcdPrefixOf } from "./placement.js";

/**
 * Bodies up to this much over the needle limit still reach the engine, which refuses them with
 * the typed NeedleTooLarge; past it the transport cuts the upload off.
 */
const BLOB_SIZE_BYTES_SLACK = 64 * KIBIBYTE;
/** On close, requests still running after this are cut off so shutdown cannot hang on a slow peer. */
const SHUTDOWN_GRACE_MS = 5 * SECOND_MS;

/** Both roles that hold disks take it (DataNodeOptions.directIo). */
export const DIRECT_IO_SETTING: SettingSpec = {
  flag: "direct-io",
  env: "CAIRN_DIRECT_IO",
  defaultValue: "true",
  help: "write large objects' chunks around the page cache (O_DIRECT): less CPU per large PUT, and their GETs read from the disk; false writes them through the page cache",
};

/** Compaction and scrubbing, shared by `cairn datanode` and `cairn server`. */
export const BACKGROUND_WORK_SETTINGS: readonly SettingSpec[] = [
  {
    flag: "compaction-garbage-percent",
    env: "CAIRN_COMPACTION_GARBAGE_PERCENT",
    defaultValue: String(Math.round(COMPACTION_GARBAGE_RATIO_MIN_DEFAULT * 100)),
    help: "compact a sealed volume once this percentage of it is garbage",
  },
  { flag: "compaction-interval-ms", env: "CAIRN_COMPACTION_INTERVAL_MS", defaultValue: String(COMPACTION_INTERVAL_MS_DEFAULT), help: "look for volumes to compact this often" },
  {
    flag: "compaction-bytes-per-second",
    env: "CAIRN_COMPACTION_BYTES_PER_SECOND",
    defaultValue: String(COMPACTION_RATE_BYTES_PER_SECOND_DEFAULT),
    help: "compaction reads at most this many bytes per second",
  },
  { flag: "scrub-interval-ms", env: "CAIRN_SCRUB_INTERVAL_MS", defaultValue: String(SCRUB_INTERVAL_MS_DEFAULT), help: "re-read each sealed volume this long after its last scrub" },
  { flag: "scrub-bytes-per-second", env: "CAIRN_SCRUB_BYTES_PER_SECOND", defaultValue: String(SCRUB_RATE_BYTES_PER_SECOND_DEFAULT), help: "the scrubber reads at most this many bytes per second" },
];

export const DATANODE_SETTINGS: readonly SettingSpec[] = [
  { flag: "data-dir", env: "CAIRN_DATA_DIR", defaultValue: "./data", help: "data directory (node id; default home of the disks)" },
  { flag: "disk", env: "CAIRN_DISKS", defaultValue: undefined, help: "a disk directory for volumes; repeat for several (default <data-dir>/disk0)", repeatable: true },
  { flag: "listen", env: "CAIRN_LISTEN", defaultValue: "127.0.0.1:9100", help: "internal API address (port 0: any free port)" },
  { flag: "advertise", env: "CAIRN_ADVERTISE", defaultValue: undefined, help: "URL peers reach this node at (default http://<listen host>:<bound port>)" },
  { flag: "placement", env: "CAIRN_PLACEMENT", defaultValue: undefined, help: "placement RPC base URL; comma-separated for several, tried in order (required without --etcd)" },
  { flag: "cluster-secret", env: "CAIRN_CLUSTER_SECRET", defaultValue: undefined, help: "shared secret of internal RPC (required)" },
  { flag: "zone", env: "CAIRN_ZONE", defaultValue: "zone-a", help: "failure domain: zone" },
  { flag: "rack", env: "CAIRN_RACK", defaultValue: "rack-a", help: "failure domain: rack" },
  { flag: "volume-size-bytes", env: "CAIRN_VOLUME_SIZE_BYTES", defaultValue: undefined, help: "seal volumes at this size" },
  ...ETCD_FOLLOWER_SETTINGS,
  DIRECT_IO_SETTING,
  ...BACKGROUND_WORK_SETTINGS,
];



export interface BackgroundWork {
  compactor: Compactor;
  scrubber: Scrubber;
  stop(): Promise<void>;
}

/** Starts the compactor and the scrubber over `node` with the BACKGROUND_WORK_SETTINGS. */
export function startBackgroundWork(node: DataNode, settings: Settings, reportDamage: (report: DamageReport) => Promise<void>): BackgroundWork {
  const garbagePercent = settings.integer("compaction-garbage-percent")!;
  if (garbagePercent < 1 || garbagePercent > 100) throw new UsageError(`--compaction-garbage-percent must be 1..100, got ${garbagePercent}`);
  const positive = (flag: string): number => {
    const value = settings.integer(flag)!;
    if (value < 1) throw new UsageError(`--${flag} must be at least 1, got ${value}`);
    return value;
  };
  const compactor = new Compactor(node, {
    garbageRatioMin: garbagePercent / 100,
    intervalMs: positive("compaction-interval-ms"),
    rateBytesPerSecond: positive("compaction-bytes-per-second"),
  });
  const scrubber = new Scrubber({
    node,
    intervalMs: positive("scrub-interval-ms"),
    rateBytesPerSecond: positive("scrub-bytes-per-second"),
    reportDamage,
    rewriteVolume: async (volumeId) => {
      await node.compactVolume(volumeId, { force: true, rateBytesPerSecond: compactor.rateBytesPerSecond });
    },
  });
  compactor.start();
  scrubber.start();
  return {
    compactor,
    scrubber,
    async stop() {
      await Promise.all([compactor.stop(), scrubber.stop()]);
    },
  };
}

export interface RunningDatanode {
  port: number;
  close(): Promise<void>;
}

export async function runDatanode(settings: Settings): Promise<RunningDatanode> {
  const dataDirectory = path.resolve(settings.require("data-dir"));
  const disks = settings.list("disk").map((disk) => path.resolve(disk));
  if (disks.length === 0) disks.push(path.join(dataDirectory, "disk0"));
  const listen = parseListenAddress(settings.require("listen"));
  const placementAddresses = settings.list("placement").flatMap((value) => value.split(",")).map((value) => value.trim()).filter((value) => value !== "");
  const etcd = etcdClientOf(settings);
  if (placementAddresses.length === 0 && etcd === undefined) throw new UsageError("--placement (or CAIRN_PLACEMENT) is required without --etcd");
  for (const address of placementAddresses) httpUrl("placement", address);
  const secret = settings.require("cluster-secret");
  const zone = settings.require("zone");
  const rack = settings.require("rack");
  const volumeSizeBytes = settings.integer("volume-size-bytes");
  const advertiseSetting = settings.get("advertise");
  if (advertiseSetting !== undefined && advertiseSetting !== "") httpUrl("advertise", advertiseSetting);
  else if (isWildcardHost(listen.host)) throw new UsageError(`--advertise is required when listening on ${listen.host}: peers cannot dial a wildcard address`);

  await fs.mkdir(dataDirectory, { recursive: true, mode: 0o700 });
  for (const disk of disks) await fs.mkdir(disk, { recursive: true });

  // 1. Listen. Until the engine is open every request is answered 503; see gate below.
  let serve: RpcHandler | undefined;
  const inFlight = new Set<Promise<unknown>>();
  const server = http.createServer(
    { noDelay: true, keepAlive: true, keepAliveTimeout: HTTP_KEEP_ALIVE_TIMEOUT_MS, requestTimeout: 0 },
    (req, res) => {
      if (serve !== undefined) {
        serve(req, res);
        return;
      }
      const body = JSON.stringify({ error: { name: "DataNodeStarting", message: "data node is starting", fields: {} } });
      res.writeHead(503, { "content-type": "application/json", "content-length": String(Buffer.byteLength(body)) });
      res.end(body);
    },
  );
  server.timeout = HTTP_BODY_IDLE_TIMEOUT_MS;
  server.on("upgrade", (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    if (serve !== undefined) {
      serve.upgrade(req, socket, head);
      return;
    }
    // Starting: the client takes HTTP for now (and gets the 503 there) and tries again later.
    refuseRpcUpgrade(socket, 503, "DataNodeStarting", "data node is starting");
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(listen.port, listen.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  server.on("error", (error) => log.error({ error }, "data node RPC server error"));
  const bound = server.address();
  const port = typeof bound === "object" && bound !== null ? bound.port : listen.port;
  const address = advertiseSetting ? httpUrl("advertise", advertiseSetting) : `http://${urlHost(listen.host)}:${port}`;

  // With etcd, heartbeats go to the placement leader named there (followed by watching its key).
  const leader = etcd === undefined ? undefined : new EtcdKeyFollower(etcd, placementLeaderKey(etcdPrefixOf(settings)));
  await leader?.start();
  const writeStats = new WriteStats();
  const sender = new HeartbeatSender({
    dataDirectory,
    placementAddresses,
    ...(leader !== undefined ? { leaderAddress: () => leader.value() } : {}),
    secret,
    address,
    zone,
    rack,
    diskDirectories: disks,
    writeCounters: writeStats,
  });
  let node: DataNode | undefined;
  let background: BackgroundWork | undefined;
  try {
    // 2. Our id, persisted or assigned.
    const nodeId = await sender.ensureNodeId();
    // 3. The engine, then the routes over it.
    node = await DataNode.open({
      nodeId,
      diskDirectories: disks,
      ...(volumeSizeBytes !== undefined ? { volumeSizeBytes } : {}),
      directIo: settings.boolean(DIRECT_IO_SETTING.flag) ?? true,
    });
    background = startBackgroundWork(node, settings, (report) => sender.reportDamage(report));
    const { compactor, scrubber } = background;
    serve = createRpcHandler({
      secret,
      routes: trackInFlight(createDataNodeRpcRoutes(node, { writeStats, compactor, scrubber }), inFlight),
      blobSizeBytesMax: NEEDLE_DATA_SIZE_BYTES_MAX + BLOB_SIZE_BYTES_SLACK,
    });
    sender.start(node);
    // 4. Test harnesses wait for this line.
    process.stdout.write(JSON.stringify({ event: "listening", role: "datanode", port, nodeId }) + "\n");
    log.info({ nodeId, address, port, dataDirectory, disks, placementAddresses, zone, rack }, "cairn datanode listening");
  } catch (error) {
    await background?.stop();
    await sender.stop();
    leader?.close();
    etcd?.close();
    await closeServer(server, serve);
    await node?.close();
    throw error;
  }

  const openNode = node;
  const openBackground = background;
  let closing: Promise<void> | undefined;
  return {
    port,
    close() {
      closing ??= (async () => {
        // Stop heartbeating first: placement then sees us go quiet and routes around us.
        await sender.stop();
        leader?.close();
        etcd?.close();
        await closeServer(server, serve);
        // Handlers may outlive their sockets (cut off after the grace period); the engine
        // must not close under a running write.
        while (inFlight.size > 0) await Promise.allSettled([...inFlight]);
        await openBackground.stop();
        await openNode.close();
      })();
      return closing;
    },
  };
}

/** Stops accepting, lets running requests finish for SHUTDOWN_GRACE_MS, then cuts them off. */
async function closeServer(server: http.Server, rpc: RpcHandler | undefined): Promise<void> {
  if (!server.listening) return;
  rpc?.closeStreams(SHUTDOWN_GRACE_MS);
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeIdleConnections();
  const timer = setTimeout(() => server.closeAllConnections(), SHUTDOWN_GRACE_MS);
  await closed;
  clearTimeout(timer);
}

/** Wraps every route so close() can wait for the engine calls still running. */
function trackInFlight(routes: RpcRoutes, inFlight: Set<Promise<unknown>>): RpcRoutes {
  const track = <R>(running: Promise<R>): Promise<R> => {
    inFlight.add(running);
    const forget = (): void => void inFlight.delete(running);
    running.then(forget, forget);
    return running;
  };
  const wrapped: RpcRoutes = {};
  if (routes.json) wrapped.json = Object.fromEntries(Object.entries(routes.json).map(([name, handler]) => [name, (body: unknown) => track(handler(body))]));
  if (routes.blobWrite) {
    wrapped.blobWrite = Object.fromEntries(
      Object.entries(routes.blobWrite).map(([name, handler]) => [name, (query: URLSearchParams, body: Buffer) => track(handler(query, body))]),
    );
  }
  if (routes.blobRead) wrapped.blobRead = Object.fromEntries(Object.entries(routes.blobRead).map(([name, handler]) => [name, (query: URLSearchParams) => track(handler(query))]));
  return wrapped;
}

/** An http:// base URL without a trailing slash (RpcClient speaks plain HTTP). */
function httpUrl(setting: string, value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new UsageError(`--${setting} must be a URL such as http://10.0.0.5:9100, got ${value}`);
  }
  if (url.protocol !== "http:") throw new UsageError(`--${setting} must be an http:// URL, got ${value}`);
  return value.replace(/\/+$/, "");
}

function isWildcardHost(host: string): boolean {
  return host === "" || host === "0.0.0.0" || host === "::" || host === "[::]";
}

function urlHost(host: string): string {
  return host.includes(":") ? `[${host}]` : host;
}
