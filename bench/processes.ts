/**
 * The processes under test: a `cairn server` or the null server, each a real
 * child process on 127.0.0.1:0 that prints a JSON "listening" line. Every child and temporary
 * directory is registered here so that `cleanUp` removes them whatever way the run ends.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";

const BENCH_DIRECTORY = path.dirname(fileURLToPath(import.meta.url)); // dist/bench
export const REPO_ROOT = path.resolve(BENCH_DIRECTORY, "../..");
const CAIRN_BIN = path.join(REPO_ROOT, "bin", "cairn.js");
const NULL_SERVER_SCRIPT = path.join(BENCH_DIRECTORY, "null-server.js");

export const ROOT_ACCESS_KEY_ID = "CKBENCHROOTACCESSKEY";
export const ROOT_SECRET_ACCESS_KEY = "bench-root-secret-key-0123456789abcdefghij";
const START_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 10_000;

export interface RunningProcess {
  name: string;
  child: ChildProcess;
  pid: number;
  port: number;
  stderr(): string;
}

const children = new Set<ChildProcess>();
const directories = new Set<string>();

export function makeTemporaryDirectory(label: string): string {
  const base = process.env.CAIRN_BENCH_DIR ?? os.tmpdir();
  mkdirSync(base, { recursive: true });
  const directory = mkdtempSync(path.join(base, `cairn-bench-${label}-`));
  directories.add(directory);
  return directory;
}

export function removeTemporaryDirectory(directory: string): void {
  rmSync(directory, { recursive: true, force: true });
  directories.delete(directory);
}

function startProcess(name: string, args: string[], env: Record<string, string>): Promise<RunningProcess> {
  const child = spawn(process.execPath, args, {
    env: { ...process.env, CAIRN_LOG_LEVEL: "warn", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.add(child);
  child.once("exit", () => children.delete(child));
  let stderr = "";
  child.stderr!.on("data", (data: Buffer) => {
    stderr += data.toString();
    if (stderr.length > 200_000) stderr = stderr.slice(-100_000);
  });
  return new Promise<RunningProcess>((resolve, reject) => {
    let stdout = "";
    const timer = setTimeout(() => reject(new Error(`${name} did not start in ${START_TIMEOUT_MS} ms: ${stderr}`)), START_TIMEOUT_MS);
    child.stdout!.on("data", (data: Buffer) => {
      stdout += data.toString();
      for (const line of stdout.split("\n")) {
        if (!line.startsWith("{")) continue;
        try {
          const event = JSON.parse(line) as { event?: string; port?: number };
          if (event.event === "listening" && typeof event.port === "number") {
            clearTimeout(timer);
            resolve({ name, child, pid: child.pid!, port: event.port, stderr: () => stderr });
          }
        } catch {
          // A partial line; wait for the rest.
        }
      }
      if (stdout.length > 100_000) stdout = stdout.slice(-10_000);
    });
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited (${code ?? signal}) before listening: ${stderr}`));
    });
  });
}

export async function stopProcess(process: RunningProcess): Promise<void> {
  const { child } = process;
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), STOP_TIMEOUT_MS);
  await exited;
  clearTimeout(timer);
}

export function startNullServer(): Promise<RunningProcess> {
  return startProcess("null-server", [NULL_SERVER_SCRIPT], {});
}

const ROOT_KEYS_ENV = { CAIRN_ROOT_ACCESS_KEY: ROOT_ACCESS_KEY_ID, CAIRN_ROOT_SECRET_KEY: ROOT_SECRET_ACCESS_KEY };

/** How a process under test is instrumented from outside; the server's code is untouched. */
export interface Instrumentation {
  /** `node --cpu-prof` into this directory (written when the process exits on SIGTERM). */
  cpuProfileDirectory?: string;
}

export function startCairnServer(dataDirectory: string, instrumentation: Instrumentation = {}): Promise<RunningProcess> {
  const nodeArgs = instrumentation.cpuProfileDirectory === undefined ? [] : ["--cpu-prof", "--cpu-prof-dir", instrumentation.cpuProfileDirectory];
  return startProcess(
    "cairn-server",
    [...nodeArgs, CAIRN_BIN, "server", "--data-dir", dataDirectory, "--listen", "127.0.0.1:0"],
    ROOT_KEYS_ENV,
  );
}

/** Kills every child still running and removes every temporary directory. Never throws. */
export async function cleanUp(extraChildren: Iterable<ChildProcess> = []): Promise<void> {
  const all = [...children, ...extraChildren].filter((child) => child.exitCode === null && child.signalCode === null);
  await Promise.all(
    all.map(
      (child) =>
        new Promise<void>((resolve) => {
          child.once("exit", () => resolve());
          child.kill("SIGKILL");
          setTimeout(resolve, STOP_TIMEOUT_MS).unref();
        }),
    ),
  );
  for (const directory of [...directories]) {
    try {
      removeTemporaryDirectory(directory);
    } catch (error) {
      console.error(`bench: could not remove ${directory}: ${(error as Error).message}`);
    }
  }
}
