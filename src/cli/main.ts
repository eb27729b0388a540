/** The `cairn` command: one role per subcommand. */
import { log } from "../base/index.js";
import { parseFlags, Settings, UsageError } from "./config.js";
import { ADMIN_SETTINGS, ADMIN_USAGE, runAdmin } from "./admin.js";
import { runServer, SERVER_SETTINGS } from "./server.js";

const USAGE = `usage: cairn <command> [flags]

commands:
  server     every role in one process: S3 gateway, SQLite metadata, placement, one data node
  admin      operator commands (users and keys)

${ADMIN_USAGE}
server flags (flag, environment variable, meaning):
${Settings.help(SERVER_SETTINGS)}
`;

export async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case "server": {
        const { flags } = parseFlags(rest);
        const server = await runServer(new Settings(SERVER_SETTINGS, flags));
        let closing = false;
        const shutdown = (signal: string) => {
          if (closing) return;
          closing = true;
          log.info({ signal }, "shutting down");
          server.close().then(
            () => process.exit(0),
            (error: unknown) => {
              log.error({ error }, "shutdown failed");
              process.exit(1);
            },
          );
        };
        process.on("SIGTERM", () => shutdown("SIGTERM"));
        process.on("SIGINT", () => shutdown("SIGINT"));
        return;
      }
      case "admin": {
        const { flags, positionals } = parseFlags(rest);
        await runAdmin(positionals, new Settings(ADMIN_SETTINGS, flags));
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
