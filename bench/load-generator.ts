/**
 * The load generator: forks `workerCount` load workers (dist/bench/load-worker.js), hands each
 * its share of a workload, starts them together once all have connected, and merges their
 * reports into ops/s, MiB/s, latency percentiles and errors. Server CPU time is read from
 * /proc around the measured window only, so worker start-up is not charged to the server.
 */
import { fork, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { percentiles } from "./stats.js";
import type { ParentMessage, WorkerMessage, WorkerReport, WorkloadSpec } from "./workload.js";

const WORKER_SCRIPT = path.join(path.dirname(fileURLToPath(import.meta.url)), "load-worker.js");
const MEBIBYTE = 1024 * 1024;
/** `getconf CLK_TCK`; Linux has reported 100 on every architecture Node runs on. */
const CLOCK_TICKS_PER_SECOND = 100;

export interface LoadResult {
  ops: number;
  seconds: number;
  opsPerSecond: number;
  mibPerSecond: number;
  latencyMs: { p50: number; p99: number };
  errors: number;
  notFound: number;
  errorSamples: string[];
  /** Per worker, in worker order: how many ops each completed (a PUT run's key pool). */
  opsByWorker: number[];
  /** CPU (user + system) of the given server processes during the run; null without pids. */
  serverCpuMs: number | null;
  /** CPU of all load workers together during the run. */
  clientCpuMs: number;
}

/** utime + stime of a process in milliseconds, from /proc/<pid>/stat (fields 14 and 15). */
export function processCpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // The command name (field 2) may hold spaces; fields after its closing parenthesis are fixed.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ticks = Number(fields[11]) + Number(fields[12]);
  return (ticks * 1000) / CLOCK_TICKS_PER_SECOND;
}

function totalCpuMs(pids: readonly number[]): number {
  return pids.reduce((sum, pid) => sum + processCpuMs(pid), 0);
}

/** Children still running, so the caller's cleanup can kill them if the run is torn down. */
export const liveWorkers = new Set<ChildProcess>();

export async function runLoad(options: {
  spec: WorkloadSpec;
  workerCount: number;
  serverPids?: readonly number[];
  /** Called once every worker is ready (warmed up), just before the measured window starts. */
  beforeStart?: () => Promise<void>;
}): Promise<LoadResult> {
  const { spec, workerCount } = options;
  if (spec.durationMs === null && spec.opsTotal === null) throw new Error("runLoad needs a duration or an op count");
  const workers: ChildProcess[] = [];
  const reports: WorkerReport[] = [];
  try {
    const readyAll: Promise<void>[] = [];
    const reportAll: Promise<void>[] = [];
    for (let workerIndex = 0; workerIndex < workerCount; workerIndex++) {
      const worker = fork(WORKER_SCRIPT, [], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
      workers.push(worker);
      liveWorkers.add(worker);
      worker.once("exit", () => liveWorkers.delete(worker));
      let onReady: () => void = () => {};
      readyAll.push(new Promise<void>((resolve) => (onReady = resolve)));
      reportAll.push(
        new Promise<void>((resolve, reject) => {
          worker.on("message", (message: WorkerMessage) => {
            if (message.kind === "ready") onReady();
            else if (message.kind === "report") {
              reports.push(message.report);
              resolve();
            }
          });
          // "close", not "exit": it comes after the IPC channel has delivered everything, while
          // "exit" can overtake a report the worker sent just before it disconnected.
          worker.once("close", (code) => reject(new Error(`load worker ${workerIndex} exited (${code}) without a report`)));
        }),
      );
      const assign: ParentMessage = { kind: "assign", assignment: { spec, workerIndex, workerCount } };
      worker.send(assign);
    }
    // A worker that dies before "ready" must fail the run, not hang it.
    await Promise.race([Promise.all(readyAll), Promise.all(reportAll)]);
    await options.beforeStart?.();
    const cpuBeforeMs = options.serverPids === undefined ? 0 : totalCpuMs(options.serverPids);
    const start: ParentMessage = { kind: "start" };
    for (const worker of workers) worker.send(start);
    await Promise.all(reportAll);
    const cpuAfterMs = options.serverPids === undefined ? 0 : totalCpuMs(options.serverPids);
    return merge(reports, options.serverPids === undefined ? null : cpuAfterMs - cpuBeforeMs);
  } finally {
    for (const worker of workers) if (worker.exitCode === null && worker.signalCode === null) worker.kill("SIGKILL");
  }
}

function merge(reports: WorkerReport[], serverCpuMs: number | null): LoadResult {
  reports.sort((a, b) => a.workerIndex - b.workerIndex);
  const ops = reports.reduce((sum, report) => sum + report.ops, 0);
  const bytes = reports.reduce((sum, report) => sum + report.bytes, 0);
  const startedAtMs = Math.min(...reports.map((report) => report.startedAtMs));
  const finishedAtMs = Math.max(...reports.map((report) => report.finishedAtMs));
  const seconds = Math.max(0.001, (finishedAtMs - startedAtMs) / 1000);
  const latencies = reports.flatMap((report) => report.latenciesMs);
  const [p50, p99] = percentiles(latencies, [50, 99]);
  return {
    ops,
    seconds,
    opsPerSecond: ops / seconds,
    mibPerSecond: bytes / MEBIBYTE / seconds,
    latencyMs: { p50: p50!, p99: p99! },
    errors: reports.reduce((sum, report) => sum + report.errors, 0),
    notFound: reports.reduce((sum, report) => sum + report.notFound, 0),
    errorSamples: reports.flatMap((report) => report.errorSamples).slice(0, 5),
    opsByWorker: reports.map((report) => report.ops),
    serverCpuMs,
    clientCpuMs: reports.reduce((sum, report) => sum + report.cpuMs, 0),
  };
}
