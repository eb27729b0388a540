/**
 * `cairn server`: every role in one process — the S3 gateway, the metadata store on SQLite,
 * embedded placement, and one data node over the local disks. Needs no other service.
 */
import { promises as fs } from "node:fs";
import * as path from "node:path";
import {
  log,
  MINUTE_MS,
  MULTIPART_UPLOAD_AGE_MS_MAX,
  systemClock,
  type NodeId,
} from "../base/index.js";

/** Abandoned uploads are looked for at least this often. */
const UPLOAD_SWEEP_INTERVAL_MS_MAX = 10 * MINUTE_MS;
import { DataNode } from "../datanode/index.js";
import { DataRouter, GarbageCollector, UploadSweeper } from "../datapath/index.js";
import { SqliteMetadataStore } from "../meta/index.js";
import { EmbeddedPlacement } from "../placement/index.js";
import { listenS3 } from "./s3-listener.js";
import { Settings, UsageError, type SettingSpec } from "./config.js";
import { INLINE_OBJECT_BYTES_MAX_DEFAULT, INLINE_OBJECT_BYTES_MAX_LIMIT } from "../s3/index.js";
import { BACKGROUND_WORK_SETTINGS, DIRECT_IO_SETTING, startBackgroundWork } from "./datanode.js";
import { ensureRootUser, loadOrCreateMasterKey, loadOrCreateRootCredentials } from "./credentials.js";

export const SERVER_SETTINGS: readonly SettingSpec[] = [
  { flag: "data-dir", env: "CAIRN_DATA_DIR", defaultValue: "./data", help: "data directory (metadata, keys, cluster map)" },
  { flag: "disk", env: "CAIRN_DISKS", defaultValue: undefined, help: "a disk directory for volumes; repeat for several (default <data-dir>/disk0)", repeatable: true },
  { flag: "listen", env: "CAIRN_LISTEN", defaultValue: "127.0.0.1:9000", help: "S3 API address" },
  { flag: "region", env: "CAIRN_REGION", defaultValue: "us-east-1", help: "region reported for buckets" },
  { flag: "domain", env: "CAIRN_DOMAINS", defaultValue: "localhost", help: "domain for virtual-host-style requests; repeatable", repeatable: true },
  { flag: "volume-size-bytes", env: "CAIRN_VOLUME_SIZE_BYTES", defaultValue: undefined, help: "seal volumes at this size" },
  {
    flag: "multipart-expiry-seconds",
    env: "CAIRN_MULTIPART_EXPIRY_SECONDS",
    defaultValue: String(MULTIPART_UPLOAD_AGE_MS_MAX / 1000),
    help: "abort multipart uploads abandoned this long",
  },
  {
    flag: "inline-object-bytes-max",
    env: "CAIRN_INLINE_OBJECT_BYTES_MAX",
    defaultValue: String(INLINE_OBJECT_BYTES_MAX_DEFAULT),
    help: `keep objects up to this size in the metadata database, one fsync per PUT (0: none; at most ${INLINE_OBJECT_BYTES_MAX_LIMIT})`,
  },
  DIRECT_IO_SETTING,
  ...BACKGROUND_WORK_SETTINGS,
];

export interface RunningServer {
  port: number;
  close(): Promise<void>;
}

export async function runServer(settings: Settings): Promise<RunningServer> {
  const dataDirectory = path.resolve(settings.require("data-dir"));
  const inlineObjectBytesMax = settings.integer("inline-object-bytes-max")!;
  if (inlineObjectBytesMax > INLINE_OBJECT_BYTES_MAX_LIMIT) {
    throw new UsageError(`--inline-object-bytes-max must be at most ${INLINE_OBJECT_BYTES_MAX_LIMIT}, got ${inlineObjectBytesMax}`);
  }
  await fs.mkdir(dataDirectory, { recursive: true, mode: 0o700 });
  const disks = settings.list("disk").map((disk) => path.resolve(disk));
  if (disks.length === 0) disks.push(path.join(dataDirectory, "disk0"));
  for (const disk of disks) await fs.mkdir(disk, { recursive: true });

  const masterKey = await loadOrCreateMasterKey(dataDirectory);
  const root = await loadOrCreateRootCredentials(dataDirectory, process.env);
  const meta = SqliteMetadataStore.open(path.join(dataDirectory, "metadata.sqlite"));
  await ensureRootUser(meta, masterKey, root, systemClock.nowMs());

  const volumeSizeBytes = settings.integer("volume-size-bytes");
  const node = await DataNode.open({
    nodeId: "local" as NodeId,
    diskDirectories: disks,
    ...(volumeSizeBytes !== undefined ? { volumeSizeBytes } : {}),
    directIo: settings.boolean(DIRECT_IO_SETTING.flag) ?? true,
  });
  const placement = await EmbeddedPlacement.open({
    databasePath: path.join(dataDirectory, "placement.sqlite"),
    node,
    writableVolumeCount: disks.length,
  });
  const background = startBackgroundWork(node, settings, async (report) => placement.reportDamage(report));
  const dataRouter = new DataRouter(placement);
  const garbageCollector = new GarbageCollector(meta, dataRouter);
  garbageCollector.start();
  const uploadAgeMsMax = settings.integer("multipart-expiry-seconds")! * 1000;
  const uploadSweeper = new UploadSweeper(meta, systemClock, uploadAgeMsMax);
  uploadSweeper.start(Math.max(1_000, Math.min(UPLOAD_SWEEP_INTERVAL_MS_MAX, uploadAgeMsMax / 2)));

  const listener = await listenS3({ meta, dataRouter, garbageCollector, masterKey, settings, inlineObjectBytesMax });
  const { host, port: boundPort } = listener;
  if (root.generated) {
    // Printed once, on the start that created them; afterwards they live only in the data directory.
    process.stdout.write(
      `Root credentials (saved in ${path.join(dataDirectory, "root-credentials.json")}):\n` +
        `  AWS_ACCESS_KEY_ID=${root.accessKeyId}\n  AWS_SECRET_ACCESS_KEY=${root.secretAccessKey}\n`,
    );
  }
  process.stdout.write(JSON.stringify({ event: "listening", host, port: boundPort, dataDirectory }) + "\n");
  log.info({ host, port: boundPort, dataDirectory, disks }, "cairn server listening");

  return {
    port: boundPort,
    async close() {
      await listener.close();
      await uploadSweeper.stop();
      await garbageCollector.stop();
      await dataRouter.close();
      await background.stop();
      await placement.close();
      await node.close();
      await meta.close();
    },
  };
}
