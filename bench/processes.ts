/**
 * The processes under test: a `cairn server`, a cluster of `cairn placement` + `cairn datanode`s +
 * `cairn gateway`, or the null server, each a real child process on 127.0.0.1:0 that prints a
 * JSON "listening" line. Every cairn process is started with loop-probe.js preloaded, so its
 * event-loop delay can be read per workload. Every child and temporary directory is registered
 * here so that `cleanUp` removes them whatever way the run ends.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { CAIRN_NODE_FLAGS } from "../src/cli/node-flags.js";

const BENCH_DIRECTORY = path.dirname(fileURLToPath(import.meta.url)); // dist/bench
export const REPO_ROOT = path.resolve(BENCH_DIRECTORY, "../..");
/** How a cairn role is started: its node flags, then the command (as bin/cairn.js's #! line does). */
const CAIRN_COMMAND = [...CAIRN_NODE_FLAGS, path.join(REPO_ROOT, "bin", "cairn.js")];
const NULL_SERVER_SCRIPT = path.join(BENCH_DIRECTORY, "null-server.js");
const LOOP_PROBE_URL = pathToFileURL(path.join(BENCH_DIRECTORY, "loop-probe.js")).href;

export const ROOT_ACCESS_KEY_ID = "CKBENCHROOTACCESSKEY";
export const ROOT_SECRET_ACCESS_KEY = "bench-root-secret-key-0123456789abcdefghij";
const START_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 10_000;
/** How long a cluster may take until a PUT through its gateway succeeds (volumes allocated). */
const CLUSTER_READY_TIMEOUT_MS = 60_000;
/** How long a process has to answer the loop probe's signal. */
const LOOP_REPORT_TIMEOUT_MS = 3_000;
export const CLUSTER_SECRET = "bench-cluster-secret-0123456789abcdef";

export interface RunningProcess {
  name: string;
  child: ChildProcess;
  pid: number;
  port: number;
  /** Where loop-probe.js writes this process's event-loop delay (cairn processes only). */
  loopFile: string | undefined;
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

function startProcess(name: string, args: string[], env: Record<string, string>, loopFile?: string): Promise<RunningProcess> {
  const child = spawn(process.execPath, loopFile === undefined ? args : ["--import", LOOP_PROBE_URL, ...args], {
    env: { ...process.env, CAIRN_LOG_LEVEL: "warn", ...env, ...(loopFile === undefined ? {} : { CAIRN_BENCH_LOOP_FILE: loopFile }) },
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
            resolve({ name, child, pid: child.pid!, port: event.port, loopFile, stderr: () => stderr });
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

/** The null server gets the loop probe too: its loop delay under load is the machine's floor. */
export function startNullServer(): Promise<RunningProcess> {
  return startProcess("null-server", [NULL_SERVER_SCRIPT], {}, path.join(makeTemporaryDirectory("null"), "loop-delay.json"));
}

const ROOT_KEYS_ENV = { CAIRN_ROOT_ACCESS_KEY: ROOT_ACCESS_KEY_ID, CAIRN_ROOT_SECRET_KEY: ROOT_SECRET_ACCESS_KEY };

/** How a process under test is instrumented from outside; the server's code is untouched. */
export interface Instrumentation {
  /** `node --cpu-prof` into this directory (written when the process exits on SIGTERM). */
  cpuProfileDirectory?: string;
}

export function startCairnServer(dataDirectory: string, instrumentation: Instrumentation = {}, serverArgs: string[] = []): Promise<RunningProcess> {
  return startProcess(
    "cairn-server",
    [...profileArgs(instrumentation), ...CAIRN_COMMAND, "server", "--data-dir", dataDirectory, "--listen", "127.0.0.1:0", ...serverArgs],
    ROOT_KEYS_ENV,
    path.join(dataDirectory, "loop-delay.json"),
  );
}

function profileArgs(instrumentation: Instrumentation): string[] {
  return instrumentation.cpuProfileDirectory === undefined ? [] : ["--cpu-prof", "--cpu-prof-dir", instrumentation.cpuProfileDirectory];
}

export interface RunningCluster {
  gateway: RunningProcess;
  placement: RunningProcess;
  dataNodes: RunningProcess[];
  all: RunningProcess[];
}

/**
 * placement + `dataNodeCount` data nodes spread over three zones + one gateway, each its own
 * process and data directory under `root`. The gateway is profiled when asked; the others not.
 */
export async function startCairnCluster(
  root: string,
  options: { dataNodeCount: number; gatewayArgs: string[]; instrumentation?: Instrumentation },
): Promise<RunningCluster> {
  const started: RunningProcess[] = [];
  const role = async (name: string, args: (directory: string) => string[], env: Record<string, string>): Promise<RunningProcess> => {
    const directory = path.join(root, name);
    mkdirSync(directory, { recursive: true });
    const running = await startProcess(
      name,
      [...CAIRN_COMMAND, ...args(directory), "--listen", "127.0.0.1:0", "--cluster-secret", CLUSTER_SECRET],
      env,
      // No loop probe: only the gateway's delay is reported, and the probe's 1 ms timer wakes an
      // idle process a thousand times a second (about 2% of a core each, seven processes).
    );
    started.push(running);
    return running;
  };
  const args = (first: string[]) => (directory: string) => [...first, "--data-dir", directory];
  try {
    const placement = await role("placement", args(["placement"]), ROOT_KEYS_ENV);
    const placementUrl = `http://127.0.0.1:${placement.port}`;
    const zones = ["zone-a", "zone-b", "zone-c"];
    const dataNodes = await Promise.all(
      Array.from({ length: options.dataNodeCount }, (_, index) =>
        role(`datanode-${index + 1}`, args(["datanode", "--placement", placementUrl, "--zone", zones[index % zones.length]!, "--rack", `rack-${index + 1}`]), {}),
      ),
    );
    const gatewayDirectory = path.join(root, "gateway");
    mkdirSync(gatewayDirectory, { recursive: true });
    const gateway = await startProcess(
      "gateway",
      [...profileArgs(options.instrumentation ?? {}), ...CAIRN_COMMAND, "gateway", "--placement", placementUrl, "--listen", "127.0.0.1:0", "--cluster-secret", CLUSTER_SECRET, ...options.gatewayArgs],
      {},
      path.join(gatewayDirectory, "loop-delay.json"),
    );
    started.push(gateway);
    return { gateway, placement, dataNodes, all: started };
  } catch (error) {
    await Promise.all(started.map((running) => stopProcess(running)));
    throw error;
  }
}

/** Polls `attempt` until it resolves true, for at most CLUSTER_READY_TIMEOUT_MS. */
export async function waitUntil(what: string, attempt: () => Promise<boolean>): Promise<void> {
  const deadlineMs = Date.now() + CLUSTER_READY_TIMEOUT_MS;
  let lastError: unknown;
  while (Date.now() < deadlineMs) {
    try {
      if (await attempt()) return;
    } catch (error) {
      lastError = error;
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw new Error(`${what} not ready after ${CLUSTER_READY_TIMEOUT_MS} ms${lastError === undefined ? "" : `: ${String(lastError)}`}`);
}

export interface LoopDelay {
  samples: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** Of the window's wall time, the loop's thread on a core, and runnable but waiting for one. */
  onCpuShare: number | null;
  waitingForCpuShare: number | null;
  /**
   * Per tick, the delay less the loop thread's wait for a core and, in ticks where it never left
   * its core, less the time the VM's host took that core: the loop's own stall (loop-probe.ts).
   */
  ownP99Ms: number | null;
  ownMaxMs: number | null;
  /** The same with the host's stolen time left in. */
  ownWithStealP99Ms: number | null;
  /** Of the machine's cores' time in the window, the share its host took (steal). */
  machineStealShare: number | null;
  /** Major page faults of the loop's thread in the window: each blocked it on a disk read. */
  majorFaults: number | null;
}

/**
 * The event-loop delay a process saw since the previous call (loop-probe.js resets on every
 * report). Undefined when the process has no probe or did not answer in time.
 */
export async function loopDelaySince(running: RunningProcess): Promise<LoopDelay | undefined> {
  const file = running.loopFile;
  if (file === undefined || running.child.exitCode !== null) return undefined;
  const previous = readLoopFile(file)?.sequence ?? 0;
  running.child.kill("SIGUSR2");
  const deadlineMs = Date.now() + LOOP_REPORT_TIMEOUT_MS;
  while (Date.now() < deadlineMs) {
    const report = readLoopFile(file);
    if (report !== undefined && report.sequence > previous) {
      return {
        samples: report.samples,
        p50Ms: report.p50Ms,
        p99Ms: report.p99Ms,
        maxMs: report.maxMs,
        onCpuShare: report.onCpuShare ?? null,
        waitingForCpuShare: report.waitingForCpuShare ?? null,
        ownP99Ms: report.ownP99Ms ?? null,
        ownMaxMs: report.ownMaxMs ?? null,
        ownWithStealP99Ms: report.ownWithStealP99Ms ?? null,
        machineStealShare: report.machineStealShare ?? null,
        majorFaults: report.majorFaults ?? null,
      };
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return undefined;
}

function readLoopFile(file: string): (LoopDelay & { sequence: number }) | undefined {
  if (!existsSync(file)) return undefined;
  try {
    return JSON.parse(readFileSync(file, "utf8")) as LoopDelay & { sequence: number };
  } catch {
    return undefined;
  }
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
