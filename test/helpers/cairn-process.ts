/**
 * Starts a real `cairn server` child process on 127.0.0.1 with its own temporary data
 * directory, waits until it listens, and stops or kills it. Tests talk to it over HTTP only.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { readFile } from "node:fs/promises";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { S3Client, type S3ClientConfig } from "@aws-sdk/client-s3";
import { CAIRN_NODE_FLAGS } from "../../src/cli/node-flags.js";

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
export const CAIRN_BIN = path.join(REPO_ROOT, "bin", "cairn.js");
/** How a long-running role is started: its node flags, then the command (as bin/cairn.js's #! line does). */
export const CAIRN_ROLE_COMMAND: readonly string[] = [...CAIRN_NODE_FLAGS, CAIRN_BIN];

export const TEST_ACCESS_KEY_ID = "CKTESTROOTACCESSKEY1";
export const TEST_SECRET_ACCESS_KEY = "test-root-secret-key-0123456789abcdefghij";
/** How long a child gets to print its listening line before the test fails. */
const START_TIMEOUT_MS = 30_000;

export interface CairnProcess {
  port: number;
  endpoint: string;
  dataDirectory: string;
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** SIGTERM and wait for exit. */
  stop(): Promise<void>;
  /** SIGKILL and wait for exit. */
  kill(): Promise<void>;
  /** Peak resident memory (VmHWM) of the process, in bytes. */
  peakResidentBytes(): Promise<number>;
}

export function makeDataDirectory(label: string): string {
  return mkdtempSync(path.join(os.tmpdir(), `cairn-test-${label}-`));
}

export function removeDataDirectory(dataDirectory: string): void {
  rmSync(dataDirectory, { recursive: true, force: true });
}

export async function startCairn(options: {
  dataDirectory: string;
  args?: string[];
  env?: Record<string, string>;
  port?: number;
}): Promise<CairnProcess> {
  const child = spawn(
    process.execPath,
    [...CAIRN_ROLE_COMMAND, "server", "--data-dir", options.dataDirectory, "--listen", `127.0.0.1:${options.port ?? 0}`, ...(options.args ?? [])],
    {
      env: {
        ...process.env,
        CAIRN_ROOT_ACCESS_KEY: TEST_ACCESS_KEY_ID,
        CAIRN_ROOT_SECRET_KEY: TEST_SECRET_ACCESS_KEY,
        CAIRN_LOG_LEVEL: "warn",
        ...options.env,
      },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  let stderr = "";
  child.stderr!.on("data", (data: Buffer) => {
    stderr += data.toString();
    if (stderr.length > 1_000_000) stderr = stderr.slice(-500_000);
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  let stdout = "";
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`cairn did not start in time: ${stderr}`)), START_TIMEOUT_MS);
    child.stdout!.on("data", (data: Buffer) => {
      stdout += data.toString();
      for (const line of stdout.split("\n")) {
        if (!line.startsWith("{")) continue;
        try {
          const event = JSON.parse(line) as { event?: string; port?: number };
          if (event.event === "listening" && typeof event.port === "number") {
            clearTimeout(timer);
            resolve(event.port);
          }
        } catch {
          // A partial line; wait for the rest.
        }
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`cairn exited with ${code} before listening: ${stderr}`));
    });
  });
  return {
    port,
    endpoint: `http://127.0.0.1:${port}`,
    dataDirectory: options.dataDirectory,
    child,
    stdout: () => stdout,
    stderr: () => stderr,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      await exited;
    },
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      await exited;
    },
    async peakResidentBytes() {
      const status = await readFile(`/proc/${child.pid}/status`, "utf8");
      const match = /VmHWM:\s+(\d+) kB/.exec(status);
      if (match === null) throw new Error("no VmHWM in /proc status");
      return Number(match[1]) * 1024;
    },
  };
}

/** An S3 client with the SDK's current defaults; only endpoint, credentials and path style set. */
export function s3Client(endpoint: string, overrides: Partial<S3ClientConfig> = {}): S3Client {
  return new S3Client({
    endpoint,
    region: "us-east-1",
    forcePathStyle: true,
    credentials: { accessKeyId: TEST_ACCESS_KEY_ID, secretAccessKey: TEST_SECRET_ACCESS_KEY },
    maxAttempts: 1,
    ...overrides,
  });
}

/**
 * Environment for the command-line S3 clients (aws CLI, boto3, s3cmd, rclone): root keys,
 * no config files, no instance metadata. The machine's AWS_CA_BUNDLE (set for HTTPS proxying)
 * is dropped: it breaks rclone's plain-HTTP transport.
 */
export function clientEnvironment(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const { AWS_CA_BUNDLE: _caBundle, ...inherited } = process.env;
  return {
    ...inherited,
    AWS_ACCESS_KEY_ID: TEST_ACCESS_KEY_ID,
    AWS_SECRET_ACCESS_KEY: TEST_SECRET_ACCESS_KEY,
    AWS_DEFAULT_REGION: "us-east-1",
    AWS_CONFIG_FILE: "/dev/null",
    AWS_SHARED_CREDENTIALS_FILE: "/dev/null",
    AWS_EC2_METADATA_DISABLED: "true",
    AWS_PAGER: "",
    ...extra,
  };
}
