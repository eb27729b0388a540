/**
 * `cairn admin ...`: operator commands. Users and keys are written straight into the metadata
 * store of a data directory (SQLite allows this while a server runs on it: WAL readers and one
 * writer at a time). A new secret is printed once and stored only sealed with the master key.
 */
import * as path from "node:path";
import { newAccessKeyId, newSecretAccessKey, sealSecret } from "../auth/index.js";
import { systemClock } from "../base/index.js";
import { NoSuchAccessKey, NoSuchUser, SqliteMetadataStore, UserAlreadyExists, type MetadataStore } from "../meta/index.js";
import { Settings, UsageError, type SettingSpec } from "./config.js";
import { masterKeyFromClusterSecret } from "./cluster-keys.js";
import { loadOrCreateMasterKey, ROOT_USER_ID } from "./credentials.js";

export const ADMIN_SETTINGS: readonly SettingSpec[] = [
  { flag: "data-dir", env: "CAIRN_DATA_DIR", defaultValue: "./data", help: "data directory of the server to administer" },
  { flag: "placement", env: "CAIRN_PLACEMENT", defaultValue: undefined, help: "placement URL (admin status)" },
  { flag: "cluster-secret", env: "CAIRN_CLUSTER_SECRET", defaultValue: undefined, help: "cluster secret (admin status)" },
];

export const ADMIN_USAGE = `admin commands:
  cairn admin user add <user-id>     create a user and its first access key (printed once)
  cairn admin user rm <user-id>      remove a user and all its keys
  cairn admin user ls                list users
  cairn admin key add <user-id>      add an access key to a user (printed once)
  cairn admin key rm <access-key-id> remove an access key
  cairn admin key ls <user-id>       list a user's access key ids
`;

const USER_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$/;

async function addKey(meta: MetadataStore, masterKey: Buffer, userId: string): Promise<void> {
  const accessKeyId = newAccessKeyId();
  const secretAccessKey = newSecretAccessKey();
  await meta.addAccessKey({ accessKeyId, userId, secretSealed: sealSecret(masterKey, secretAccessKey), createdAtMs: systemClock.nowMs() });
  process.stdout.write(`AWS_ACCESS_KEY_ID=${accessKeyId}\nAWS_SECRET_ACCESS_KEY=${secretAccessKey}\n`);
}

export async function runAdmin(argv: string[], settings: Settings): Promise<void> {
  const [noun, verb, argument] = argv;
  const dataDirectory = path.resolve(settings.require("data-dir"));
  // A cluster's placement data directory seals secrets with the key derived from the cluster
  // secret; a `cairn server` data directory with its own master.key file.
  const clusterSecret = settings.get("cluster-secret");
  const masterKey = clusterSecret !== undefined ? masterKeyFromClusterSecret(clusterSecret) : await loadOrCreateMasterKey(dataDirectory);
  const meta = SqliteMetadataStore.open(path.join(dataDirectory, "metadata.sqlite"));
  try {
    switch (`${noun ?? ""} ${verb ?? ""}`) {
      case "user add": {
        if (argument === undefined || !USER_ID_PATTERN.test(argument)) throw new UsageError("user id: 1-64 of A-Z a-z 0-9 . _ @ -");
        try {
          await meta.createUser({ userId: argument, displayName: argument, createdAtMs: systemClock.nowMs(), isRoot: false });
        } catch (error) {
          if (error instanceof UserAlreadyExists) throw new UsageError(`user ${argument} already exists`);
          throw error;
        }
        await addKey(meta, masterKey, argument);
        return;
      }
      case "user rm": {
        if (argument === undefined) throw new UsageError("user rm needs a user id");
        if (argument === ROOT_USER_ID) throw new UsageError("the root user cannot be removed");
        try {
          await meta.deleteUser(argument);
        } catch (error) {
          if (error instanceof NoSuchUser) throw new UsageError(`no user ${argument}`);
          throw error;
        }
        process.stdout.write(`removed user ${argument}\n`);
        return;
      }
      case "user ls": {
        for (const user of await meta.listUsers()) {
          const keys = await meta.listAccessKeys(user.userId);
          process.stdout.write(`${user.userId}\t${user.isRoot ? "root" : "user"}\t${keys.length} key(s)\t${new Date(user.createdAtMs).toISOString()}\n`);
        }
        return;
      }
      case "key add": {
        if (argument === undefined) throw new UsageError("key add needs a user id");
        if ((await meta.getUser(argument)) === undefined) throw new UsageError(`no user ${argument}`);
        await addKey(meta, masterKey, argument);
        return;
      }
      case "key rm": {
        if (argument === undefined) throw new UsageError("key rm needs an access key id");
        try {
          await meta.removeAccessKey(argument);
        } catch (error) {
          if (error instanceof NoSuchAccessKey) throw new UsageError(`no access key ${argument}`);
          throw error;
        }
        process.stdout.write(`removed key ${argument}\n`);
        return;
      }
      case "key ls": {
        if (argument === undefined) throw new UsageError("key ls needs a user id");
        for (const key of await meta.listAccessKeys(argument)) process.stdout.write(`${key.accessKeyId}\t${new Date(key.createdAtMs).toISOString()}\n`);
        return;
      }
      default:
        throw new UsageError(`unknown admin command: ${argv.join(" ")}`);
    }
  } finally {
    await meta.close();
  }
}
