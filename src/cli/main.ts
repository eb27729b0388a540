/** The `cairn` command: one role per subcommand. */
import * as path from "node:path";
import { promises as fs } from "node:fs";
import { log, systemClock } from "../base/index.js";
import { NotLeader } from "../cluster/index.js";
import { createMetadataRpcRoutes, SqliteMetadataStore } from "../meta/index.js";
import { ADMIN_SETTINGS, ADMIN_USAGE, runAdmin } from "./admin.js";
import { drainNode, printRepairStatus } from "./admin-repair.js";
import { printClusterStatus } from "./admin-status.js";
import { masterKeyFromClusterSecret } from "./cluster-keys.js";
import { CONFIG_SETTING, parseFlags, Settings, UsageError } from "./config.js";
import { ensureRootUser, loadOrCreateRootCredentials } from "./credentials.js";
import { DATANODE_SETTINGS, runDatanode } from "./datanode.js";
import { GATEWAY_SETTINGS, runGateway } from "./gateway.js";
import { PLACEMENT_SETTINGS, runPlacement } from "./placement.js";
import { missingNodeFlags } from "./node-flags.js";
import { runServer, SERVER_SETTINGS } from "./server.js";

const USAGE = `usage: cairn <command> [flags]

commands:
  server      every role in one process: S3 gateway, SQLite metadata, placement, one data node
  placement   the placement service of a cluster (cluster map, heartbeats, volume allocation);
              alone it also serves the cluster's metadata store (SQLite) to the gateways;
              with --etcd several instances elect a leader and keep the map in etcd
  datanode    a data node: stores needles in volumes on its disks
  gateway     a stateless S3 gateway of a cluster
  admin       operator commands

${ADMIN_USAGE}  cairn admin status --placement URL --cluster-secret S   print the cluster map
  cairn admin repair status --placement URL --cluster-secret S   under-replicated volumes, repair progress
  cairn admin node drain <node-id> --placement URL --cluster-secret S   move a node's replicas away

server flags (flag, environment variable, meaning):
${Settings.help(SERVER_SETTINGS)}

placement flags:
${Settings.help(PLACEMENT_SETTINGS)}

datanode flags:
${Settings.help(DATANODE_SETTINGS)}

gateway flags:
${Settings.help(GATEWAY_SETTINGS)}

every role:
${Settings.help([CONFIG_SETTING])}
`;

interface Closable {
  close(): Promise<void>;
}

/** SIGTERM/SIGINT close the role cleanly; a second signal is ignored while closing. */
function closeOnSignal(role: Closable): void {
  const missing = missingNodeFlags();
  if (missing.length > 0) log.warn({ missing }, "started without the node flags bin/cairn.js passes (see src/cli/node-flags.ts): large uploads run slower");
  let closing = false;
  const shutdown = (signal: string) => {
    if (closing) return;
    closing = true;
    log.info({ signal }, "shutting down");
    role.close().then(
      () => process.exit(0),
      (error: unknown) => {
        log.error({ error }, "shutdown failed");
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", () => shutdown("SIGTERM"));
  process.on("SIGINT", () => shutdown("SIGINT"));
}

/**
 * Placement plus the cluster's metadata store, which it serves to gateways over RPC. With
 * --etcd there are several placement instances and no shared SQLite file: gateways then use
 * PostgreSQL (--meta postgres://...), and placement serves the cluster map only.
 */
async function runPlacementWithMetadata(settings: Settings): Promise<Closable> {
  const etcd = settings.get("etcd");
  if (etcd !== undefined && etcd !== "") return runPlacement(settings);
  const dataDirectory = path.resolve(settings.require("data-dir"));
  await fs.mkdir(dataDirectory, { recursive: true, mode: 0o700 });
  const meta = SqliteMetadataStore.open(path.join(dataDirectory, "metadata.sqlite"));
  const root = await loadOrCreateRootCredentials(dataDirectory, process.env);
  await ensureRootUser(meta, masterKeyFromClusterSecret(settings.require("cluster-secret")), root, systemClock.nowMs());
  if (root.generated) {
    process.stdout.write(
      `Root credentials (saved in ${path.join(dataDirectory, "root-credentials.json")}):\n` +
        `  AWS_ACCESS_KEY_ID=${root.accessKeyId}\n  AWS_SECRET_ACCESS_KEY=${root.secretAccessKey}\n`,
    );
  }
  const placement = await runPlacement(settings, createMetadataRpcRoutes(meta));
  return {
    async close() {
      await placement.close();
      await meta.close();
    },
  };
}

export async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case "server": {
        const { flags } = parseFlags(rest);
        closeOnSignal(await runServer(Settings.load(SERVER_SETTINGS, flags)));
        return;
      }
      case "placement": {
        const { flags } = parseFlags(rest);
        closeOnSignal(await runPlacementWithMetadata(Settings.load(PLACEMENT_SETTINGS, flags)));
        return;
      }
      case "datanode": {
        const { flags } = parseFlags(rest);
        closeOnSignal(await runDatanode(Settings.load(DATANODE_SETTINGS, flags)));
        return;
      }
      case "gateway": {
        const { flags } = parseFlags(rest);
        closeOnSignal(await runGateway(Settings.load(GATEWAY_SETTINGS, flags)));
        return;
      }
      case "admin": {
        const { flags, positionals } = parseFlags(rest);
        const settings = Settings.load(ADMIN_SETTINGS, flags);
        if (positionals[0] === "status") {
          const secret = settings.require("cluster-secret");
          try {
            await printClusterStatus(settings.require("placement"), secret, process.stdout);
          } catch (error) {
            // A standby placement names the leader: ask it instead.
            if (!(error instanceof NotLeader) || error.leaderUrl === "") throw error;
            await printClusterStatus(error.leaderUrl, secret, process.stdout);
          }
          return;
        }
        if (positionals[0] === "repair" && positionals[1] === "status") {
          await printRepairStatus(settings.require("placement"), settings.require("cluster-secret"), process.stdout);
          return;
        }
        if (positionals[0] === "node" && positionals[1] === "drain") {
          await drainNode(settings.require("placement"), settings.require("cluster-secret"), positionals[2], process.stdout);
          return;
        }
        await runAdmin(positionals, settings);
        return;
      }
      case undefined:
      case "help":
      case "--help":
        process.stdout.write(USAGE);
        return;
      default:
        throw new UsageError(`unknown command ${command}`);
    }
  } catch (error) {
    if (error instanceof UsageError) {
      process.stderr.write(`cairn: ${error.message}\n\n${USAGE}`);
      process.exit(2);
    }
    throw error;
  }
}
