/**
 * Root credentials and the master key that seals secrets at rest, both kept in the data
 * directory with 0600 permissions. Secrets are never logged; the generated root secret is
 * printed once, on the start that creates it.
 */
import { randomBytes } from "node:crypto";
import { promises as fs } from "node:fs";
import * as path from "node:path";
import { setInBoundedCache } from "../base/index.js";
import { newAccessKeyId, newSecretAccessKey, sealSecret, unsealSecret } from "../auth/index.js";
import { AccessKeyAlreadyExists, UserAlreadyExists, type MetadataStore } from "../meta/index.js";

export const ROOT_USER_ID = "root";
/** Looked-up secrets are cached this long; a removed key stops working within this time. */
export const CREDENTIAL_CACHE_TTL_MS = 5_000;
/** Access keys kept decoded at most; past it the cache starts over. */
const CREDENTIAL_CACHE_ENTRIES_MAX = 10_000;

async function writeFileExclusive(filePath: string, contents: string): Promise<void> {
  const handle = await fs.open(filePath, "wx", 0o600);
  try {
    await handle.writeFile(contents);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

export async function loadOrCreateMasterKey(dataDirectory: string): Promise<Buffer> {
  const keyPath = path.join(dataDirectory, "master.key");
  try {
    return Buffer.from((await fs.readFile(keyPath, "utf8")).trim(), "hex");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
  }
  const key = randomBytes(32);
  await writeFileExclusive(keyPath, key.toString("hex") + "\n");
  return key;
}

export interface RootCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  generated: boolean;
}

/** From CAIRN_ROOT_ACCESS_KEY / CAIRN_ROOT_SECRET_KEY, else the saved file, else new ones. */
export async function loadOrCreateRootCredentials(dataDirectory: string, env: NodeJS.ProcessEnv): Promise<RootCredentials> {
  const fromEnvKey = env.CAIRN_ROOT_ACCESS_KEY;
  const fromEnvSecret = env.CAIRN_ROOT_SECRET_KEY;
  if (fromEnvKey && fromEnvSecret) return { accessKeyId: fromEnvKey, secretAccessKey: fromEnvSecret, generated: false };
  const filePath = path.join(dataDirectory, "root-credentials.json");
  try {
    const saved = JSON.parse(await fs.readFile(filePath, "utf8")) as { accessKeyId: string; secretAccessKey: string };
    return { ...saved, generated: false };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
  }
  const created = { accessKeyId: newAccessKeyId(), secretAccessKey: newSecretAccessKey() };
  await writeFileExclusive(filePath, JSON.stringify(created, null, 2) + "\n");
  return { ...created, generated: true };
}

/** Make sure the root user and its key exist in the metadata store. */
/**
 * Make sure the root user and its key exist in the metadata store. Several gateways sharing
 * one PostgreSQL may run this at once; losing the race to create the same user or key is fine.
 */
export async function ensureRootUser(meta: MetadataStore, masterKey: Buffer, root: RootCredentials, nowMs: number): Promise<void> {
  if ((await meta.getUser(ROOT_USER_ID)) === undefined) {
    try {
      await meta.createUser({ userId: ROOT_USER_ID, displayName: "root", createdAtMs: nowMs, isRoot: true });
    } catch (error) {
      if (!(error instanceof UserAlreadyExists)) throw error;
    }
  }
  const existing = await meta.getAccessKey(root.accessKeyId);
  if (existing !== undefined) {
    if (existing.userId === ROOT_USER_ID && unsealSecret(masterKey, existing.secretSealed) === root.secretAccessKey) return;
    await meta.removeAccessKey(root.accessKeyId);
  }
  try {
    await meta.addAccessKey({
      accessKeyId: root.accessKeyId,
      userId: ROOT_USER_ID,
      secretSealed: sealSecret(masterKey, root.secretAccessKey),
      createdAtMs: nowMs,
    });
  } catch (error) {
    if (!(error instanceof AccessKeyAlreadyExists)) throw error;
  }
}

export function credentialLookup(meta: MetadataStore, masterKey: Buffer, nowMs: () => number) {
  const cache = new Map<string, { value: { secretAccessKey: string; userId: string } | undefined; expiresAtMs: number }>();
  return async (accessKeyId: string) => {
    const cached = cache.get(accessKeyId);
    if (cached !== undefined && cached.expiresAtMs > nowMs()) return cached.value;
    const key = await meta.getAccessKey(accessKeyId);
    const value = key === undefined ? undefined : { secretAccessKey: unsealSecret(masterKey, key.secretSealed), userId: key.userId };
    // Only found keys are cached: a key added by `cairn admin key add` works at once.
    if (value === undefined) return undefined;
    setInBoundedCache(cache, accessKeyId, { value, expiresAtMs: nowMs() + CREDENTIAL_CACHE_TTL_MS }, CREDENTIAL_CACHE_ENTRIES_MAX);
    return value;
  };
}
