/**
 * `npm run bench`: the benchmark suite of issue 8 (measure, don't optimize). Runs baselines
 * (MD5, disk, a null HTTP server), then workloads against a real `cairn server` process, and
 * prints one JSON document on stdout followed by a short table (also on stdout; progress goes
 * to stderr). Cluster and erasure-coded workloads are reported as "not run" in this version.
 * Everything is bounded by CAIRN_BENCH_SECONDS per workload and by op and time caps; all
 * traffic goes to 127.0.0.1; every child process and temporary directory is removed at the
 * end, also on error or Ctrl-C.
 *
 * Settings (environment):
 *   CAIRN_BENCH_SECONDS=4             seconds per timed workload
 *   CAIRN_BENCH_WORKERS=2             load-generator processes (forked workers)
 *   CAIRN_BENCH_CONNECTIONS=16        concurrent connections for 4 KiB, 1 MiB and mixed
 *   CAIRN_BENCH_CONNECTIONS_64M=2     ... for 64 MiB objects
 *   CAIRN_BENCH_OPS_64M_MAX=16        cap on 64 MiB PUTs (disk space, time)
 *   CAIRN_BENCH_LIST_KEYS=20000       keys in the listing bucket (the issue asks 100000)
 *   CAIRN_BENCH_LIST_POPULATE_SECONDS=150 stop populating after this long (count reported)
 *   CAIRN_BENCH_DISK_MIB=256          sequential write baseline size
 *   CAIRN_BENCH_CPU_PROF=<dir>        run the server under `node --cpu-prof`
 *   CAIRN_BENCH_ONLY=a,b              run only workloads whose name starts with one of these
 *   CAIRN_BENCH_DIR=<dir>             where temporary data directories go (default os.tmpdir());
 *                                     the disk baselines run in the server's data directory
 */
import * as os from "node:os";
import { measureDisk, measureMd5, type DiskBaseline, type Md5Baseline } from "./baselines.js";
import { liveWorkers, processCpuMs, runLoad, type LoadResult } from "./load-generator.js";
import {
  cleanUp,
  makeTemporaryDirectory,
  ROOT_ACCESS_KEY_ID,
  ROOT_SECRET_ACCESS_KEY,
  startCairnServer,
  startNullServer,
  stopProcess,
} from "./processes.js";
import { keepAliveAgent, s3Request, uriEncodeComponent } from "./s3-request.js";
import { percentiles, round } from "./stats.js";
import { PREFIXED_KEYS_PER_GROUP, type KeyNaming, type Operation, type S3Target, type WorkloadSpec } from "./workload.js";

const KIBIBYTE = 1024;
const MEBIBYTE = 1024 * KIBIBYTE;

function envNumber(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < 0) throw new Error(`${name} must be a non-negative number, got ${raw}`);
  return value;
}

const config = {
  seconds: envNumber("CAIRN_BENCH_SECONDS", 4),
  workers: Math.max(1, Math.floor(envNumber("CAIRN_BENCH_WORKERS", 2))),
  connections: Math.max(1, envNumber("CAIRN_BENCH_CONNECTIONS", 16)),
  connections64m: Math.max(1, envNumber("CAIRN_BENCH_CONNECTIONS_64M", 2)),
  ops64mMax: Math.max(1, envNumber("CAIRN_BENCH_OPS_64M_MAX", 16)),
  listKeys: Math.max(1, Math.floor(envNumber("CAIRN_BENCH_LIST_KEYS", 20_000))),
  listPopulateSeconds: envNumber("CAIRN_BENCH_LIST_POPULATE_SECONDS", 150),
  diskMib: Math.max(4, envNumber("CAIRN_BENCH_DISK_MIB", 256)),
  cpuProfileDirectory: process.env.CAIRN_BENCH_CPU_PROF,
  only: (process.env.CAIRN_BENCH_ONLY ?? "").split(",").filter((name) => name !== ""),
};

/** The listing size the issue asks for; the default run uses fewer keys to stay short. */
const LIST_KEYS_REQUESTED_BY_ISSUE = 100_000;

/** Targets of issue 8. */
const TARGET_GET_4K_TO_NULL_MIN = 0.5;
const TARGET_PUT_4K_TO_NULL_MIN = 0.25;
const TARGET_PUT_64M_TO_MD5_MIN = 0.7;
const TARGET_GET_64M_MIB_PER_SECOND_MIN = 800;
const TARGET_LIST_KEYS_PER_SECOND_MIN = 50_000;

interface Result {
  workload: string;
  system: "null-server" | "cairn-server";
  objectSizeBytes: number | null;
  connections: number;
  ops: number;
  seconds: number;
  opsPerSecond: number;
  mibPerSecond: number;
  latencyMs: { p50: number; p99: number };
  errors: number;
  serverCpuMsPerOp: number | null;
  /** CPU of the load-generator processes per op (SigV4 signing, HTTP client). */
  clientCpuMsPerOp: number | null;
  notes?: string[];
  errorSamples?: string[];
}

interface Failure {
  workload: string;
  error: string;
}

interface Listing {
  keysRequestedByIssue: number;
  keysRequested: number;
  keysWritten: number;
  prefixesExpected: number;
  full: { passes: number; keysPerSecond: number; pages: number } | null;
  delimiter: { seconds: number; commonPrefixes: number; keys: number; pages: number } | null;
}

const results: Result[] = [];
const failures: Failure[] = [];
let md5: Md5Baseline | undefined;
let disk: DiskBaseline | undefined;
let listing: Listing | undefined;

function progress(message: string): void {
  process.stderr.write(`bench: ${message}\n`);
}

/** A group of workloads runs if any of its names and any CAIRN_BENCH_ONLY prefix overlap. */
function sectionWanted(names: readonly string[]): boolean {
  return config.only.length === 0 || names.some((name) => config.only.some((prefix) => name.startsWith(prefix) || prefix.startsWith(name)));
}

function find(workload: string): Result | undefined {
  return results.find((result) => result.workload === workload);
}

function recordFailure(workload: string, error: unknown): void {
  progress(`${workload} FAILED: ${(error as Error).stack ?? String(error)}`);
  failures.push({ workload, error: (error as Error).message ?? String(error) });
}

/** One workload (or group) whose failure is recorded and does not stop the others. */
async function attempt(workload: string, body: () => Promise<void>, names: readonly string[] = [workload]): Promise<void> {
  if (!sectionWanted(names)) return;
  try {
    await body();
  } catch (error) {
    recordFailure(workload, error);
  }
}

function target(port: number, bucket: string): S3Target {
  return { host: "127.0.0.1", port, bucket, accessKeyId: ROOT_ACCESS_KEY_ID, secretAccessKey: ROOT_SECRET_ACCESS_KEY, region: "us-east-1" };
}

async function createBucket(s3: S3Target): Promise<void> {
  const agent = keepAliveAgent(1);
  try {
    const response = await s3Request({ agent, target: s3, method: "PUT", path: `/${s3.bucket}`, keepBodyText: true });
    if (response.statusCode !== 200) throw new Error(`CreateBucket ${s3.bucket}: HTTP ${response.statusCode} ${response.bodyText ?? ""}`);
  } finally {
    agent.destroy();
  }
}

interface System {
  kind: Result["system"];
  port: number;
  /** The processes whose CPU time is charged to the workload. */
  pids: number[];
}

function cpuMs(system: System): number {
  return system.pids.reduce((sum, pid) => sum + processCpuMs(pid), 0);
}

async function measure(options: {
  workload: string;
  system: System;
  bucket: string;
  operation: Operation;
  objectSizeBytes: number;
  connections: number;
  keyPrefix: string;
  keyNaming?: KeyNaming;
  keyPoolCount?: number;
  durationMs?: number | null;
  opsTotal?: number | null;
  record?: boolean;
}): Promise<{ load: LoadResult; result: Result }> {
  const { system } = options;
  const workers = Math.min(config.workers, options.connections);
  const connectionsPerWorker = Math.max(1, Math.ceil(options.connections / workers));
  const spec: WorkloadSpec = {
    target: target(system.port, options.bucket),
    operation: options.operation,
    keyPrefix: options.keyPrefix,
    keyNaming: options.keyNaming ?? "index",
    objectSizeBytes: options.objectSizeBytes,
    keyPoolCount: options.keyPoolCount ?? 0,
    durationMs: options.durationMs === undefined ? config.seconds * 1000 : options.durationMs,
    opsTotal: options.opsTotal ?? null,
    connectionsPerWorker,
  };
  progress(`${options.workload} on ${system.kind} (${connectionsPerWorker * workers} connections in ${workers} worker process(es))...`);
  const load = await runLoad({ spec, workerCount: workers, serverPids: system.pids });
  const result: Result = {
    workload: options.workload,
    system: system.kind,
    objectSizeBytes: options.objectSizeBytes,
    connections: connectionsPerWorker * workers,
    ops: load.ops,
    seconds: round(load.seconds, 3),
    opsPerSecond: round(load.opsPerSecond, 1),
    mibPerSecond: round(load.mibPerSecond, 2),
    latencyMs: { p50: round(load.latencyMs.p50, 3), p99: round(load.latencyMs.p99, 3) },
    errors: load.errors,
    serverCpuMsPerOp: load.serverCpuMs === null || load.ops === 0 ? null : round(load.serverCpuMs / load.ops, 3),
    clientCpuMsPerOp: load.ops === 0 ? null : round(load.clientCpuMs / load.ops, 3),
    ...(load.notFound > 0 ? { notes: [`${load.notFound} GET/HEAD answered 404 (key deleted earlier in the run; not an error)`] } : {}),
    ...(load.errorSamples.length > 0 ? { errorSamples: load.errorSamples } : {}),
  };
  if (options.record !== false) results.push(result);
  progress(
    `  ${load.ops} ops in ${result.seconds} s: ${result.opsPerSecond} ops/s, ${result.mibPerSecond} MiB/s, ` +
      `p50 ${result.latencyMs.p50} ms, p99 ${result.latencyMs.p99} ms, ${load.errors} errors, cpu ms/op server ${result.serverCpuMsPerOp} client ${result.clientCpuMsPerOp}`,
  );
  for (const sample of load.errorSamples) progress(`  error: ${sample}`);
  return { load, result };
}

function addNote(result: Result, note: string): void {
  result.notes = [...(result.notes ?? []), note];
}

/** Keys [0, pool) exist after a PUT run that interleaved its key indices over the workers. */
function keyPoolAfterPut(load: LoadResult): number {
  return Math.min(...load.opsByWorker) * load.opsByWorker.length;
}

// ---- listing ----------------------------------------------------------------------------

interface ListingPass {
  pages: number;
  keys: number;
  commonPrefixes: number;
  bytes: number;
  seconds: number;
  pageLatenciesMs: number[];
}

function unescapeXml(text: string): string {
  return text.replace(/&(amp|lt|gt|quot|apos|#\d+);/g, (_, entity: string) => {
    switch (entity) {
      case "amp": return "&";
      case "lt": return "<";
      case "gt": return ">";
      case "quot": return '"';
      case "apos": return "'";
      default: return String.fromCodePoint(Number(entity.slice(1)));
    }
  });
}

/** One complete ListObjectsV2 listing, page after page, as a client walks a bucket. */
async function listOnce(s3: S3Target, query: string): Promise<ListingPass> {
  const agent = keepAliveAgent(1);
  const pass: ListingPass = { pages: 0, keys: 0, commonPrefixes: 0, bytes: 0, seconds: 0, pageLatenciesMs: [] };
  const startedAt = performance.now();
  try {
    let token: string | undefined;
    do {
      const path = `/${s3.bucket}?list-type=2&${query}${token === undefined ? "" : `&continuation-token=${uriEncodeComponent(token)}`}`;
      const pageStartedAt = performance.now();
      const response = await s3Request({ agent, target: s3, method: "GET", path, keepBodyText: true });
      pass.pageLatenciesMs.push(performance.now() - pageStartedAt);
      const body = response.bodyText ?? "";
      if (response.statusCode !== 200) throw new Error(`ListObjectsV2: HTTP ${response.statusCode} ${body.slice(0, 300)}`);
      pass.pages += 1;
      pass.bytes += response.bodyBytes;
      pass.keys += body.split("<Contents>").length - 1;
      pass.commonPrefixes += body.split("<CommonPrefixes>").length - 1;
      const truncated = /<IsTruncated>true<\/IsTruncated>/.test(body);
      const next = /<NextContinuationToken>([^<]*)<\/NextContinuationToken>/.exec(body)?.[1];
      if (truncated && next === undefined) throw new Error("ListObjectsV2: truncated page without NextContinuationToken");
      token = truncated ? unescapeXml(next!) : undefined;
    } while (token !== undefined);
  } finally {
    agent.destroy();
  }
  pass.seconds = (performance.now() - startedAt) / 1000;
  return pass;
}

async function listingWorkloads(system: System): Promise<void> {
  const bucket = "bench-list";
  const s3 = target(system.port, bucket);
  await createBucket(s3);
  const requested = config.listKeys;
  // Keys p0000/k000 ... : 100 keys per prefix, so 20,000 keys span 200 prefixes.
  const { load: populate, result: populateResult } = await measure({
    workload: "list-populate",
    system,
    bucket,
    operation: "put",
    objectSizeBytes: 64,
    connections: Math.max(32, config.connections),
    keyPrefix: "",
    keyNaming: "prefixed",
    durationMs: config.listPopulateSeconds * 1000,
    opsTotal: requested,
  });
  const written = populate.ops - populate.errors;
  const prefixesExpected = Math.ceil(written / PREFIXED_KEYS_PER_GROUP);
  addNote(populateResult, `${written} of ${requested} requested keys written (64-byte objects, keys p0000/k000 .. across ${prefixesExpected} prefixes)`);
  listing = { keysRequestedByIssue: LIST_KEYS_REQUESTED_BY_ISSUE, keysRequested: requested, keysWritten: written, prefixesExpected, full: null, delimiter: null };

  // Full listing, max-keys 1000, repeated within the time budget (at least once).
  progress(`list-v2-full over ${written} keys...`);
  const passes: ListingPass[] = [];
  const cpuBeforeMs = cpuMs(system);
  const fullStartedAt = performance.now();
  do passes.push(await listOnce(s3, "max-keys=1000"));
  while (performance.now() - fullStartedAt < config.seconds * 1000);
  const cpuFullMs = cpuMs(system) - cpuBeforeMs;
  const fullSeconds = passes.reduce((sum, pass) => sum + pass.seconds, 0);
  const fullKeys = passes.reduce((sum, pass) => sum + pass.keys, 0);
  const fullPages = passes.reduce((sum, pass) => sum + pass.pages, 0);
  const [pageP50, pageP99] = percentiles(passes.flatMap((pass) => pass.pageLatenciesMs), [50, 99]);
  const keysPerSecond = fullKeys / fullSeconds;
  const listingErrors = passes.filter((pass) => pass.keys !== written).length;
  results.push({
    workload: "list-v2-full",
    system: system.kind,
    objectSizeBytes: null,
    connections: 1,
    ops: fullPages,
    seconds: round(fullSeconds, 3),
    opsPerSecond: round(fullPages / fullSeconds, 1),
    mibPerSecond: round(passes.reduce((sum, pass) => sum + pass.bytes, 0) / MEBIBYTE / fullSeconds, 2),
    latencyMs: { p50: round(pageP50!, 3), p99: round(pageP99!, 3) },
    errors: listingErrors,
    serverCpuMsPerOp: round(cpuFullMs / fullPages, 3),
    clientCpuMsPerOp: null,
    notes: [
      `${round(keysPerSecond, 0)} keys/s: ${passes.length} full listing(s) of ${written} keys, max-keys 1000, one connection; ops are pages, latency is per page, mibPerSecond is XML`,
      ...(listingErrors > 0 ? [`${listingErrors} listing(s) did not return exactly ${written} keys`] : []),
    ],
  });
  listing.full = { passes: passes.length, keysPerSecond: round(keysPerSecond, 0), pages: fullPages };
  progress(`  ${round(keysPerSecond, 0)} keys/s, page p50 ${round(pageP50!, 2)} ms, p99 ${round(pageP99!, 2)} ms`);

  // One delimiter listing of the root: every prefix comes back as a CommonPrefix.
  progress(`list-v2-delimiter over ${prefixesExpected} prefixes...`);
  const cpuDelimiterBeforeMs = cpuMs(system);
  const pass = await listOnce(s3, "delimiter=%2F&max-keys=1000");
  const cpuDelimiterMs = cpuMs(system) - cpuDelimiterBeforeMs;
  const delimiterOk = pass.commonPrefixes === prefixesExpected && pass.keys === 0;
  results.push({
    workload: "list-v2-delimiter",
    system: system.kind,
    objectSizeBytes: null,
    connections: 1,
    ops: 1,
    seconds: round(pass.seconds, 4),
    opsPerSecond: round(1 / pass.seconds, 1),
    mibPerSecond: round(pass.bytes / MEBIBYTE / pass.seconds, 2),
    latencyMs: { p50: round(pass.seconds * 1000, 3), p99: round(pass.seconds * 1000, 3) },
    errors: delimiterOk ? 0 : 1,
    serverCpuMsPerOp: round(cpuDelimiterMs, 3),
    clientCpuMsPerOp: null,
    notes: [
      `one listing of the root with delimiter "/": ${pass.commonPrefixes} common prefixes, ${pass.keys} keys, ${pass.pages} page(s) of max-keys 1000 in ${round(pass.seconds * 1000, 1)} ms`,
      ...(delimiterOk ? [] : [`expected ${prefixesExpected} prefixes and no keys`]),
    ],
  });
  listing.delimiter = { seconds: round(pass.seconds, 4), commonPrefixes: pass.commonPrefixes, keys: pass.keys, pages: pass.pages };
  progress(`  ${pass.commonPrefixes} prefixes in ${round(pass.seconds * 1000, 1)} ms`);
}

// ---- systems -------------------------------------------------------------------------

async function nullServerBaselines(): Promise<void> {
  const server = await startNullServer();
  try {
    const system: System = { kind: "null-server", port: server.port, pids: [server.pid] };
    for (const operation of ["get", "put"] as const) {
      await attempt(`null-${operation}-4k`, async () => {
        await measure({ workload: `null-${operation}-4k`, system, bucket: "null", operation, objectSizeBytes: 4 * KIBIBYTE, connections: config.connections, keyPrefix: "k", keyPoolCount: 1000 });
      });
    }
  } finally {
    await stopProcess(server);
  }
}

/** PUT then GET of one object size; the GET reads the keys the PUT wrote. */
async function putThenGet(system: System, bucket: string, label: string, sizeBytes: number, connections: number, opsMax: number | null): Promise<void> {
  let pool = 0;
  await attempt(`put-${label}`, async () => {
    const { load } = await measure({ workload: `put-${label}`, system, bucket, operation: "put", objectSizeBytes: sizeBytes, connections, keyPrefix: `${label}/`, opsTotal: opsMax });
    pool = keyPoolAfterPut(load);
  });
  await attempt(`get-${label}`, async () => {
    if (pool === 0) {
      // GET alone (CAIRN_BENCH_ONLY=get-...): write a small pool first.
      const { load } = await measure({ workload: `populate-${label}`, system, bucket, operation: "put", objectSizeBytes: sizeBytes, connections, keyPrefix: `${label}/`, durationMs: null, opsTotal: Math.max(config.workers, Math.min(opsMax ?? 200, 200)), record: false });
      pool = keyPoolAfterPut(load);
    }
    await measure({ workload: `get-${label}`, system, bucket, operation: "get", objectSizeBytes: sizeBytes, connections, keyPrefix: `${label}/`, keyPoolCount: pool });
  });
}

const SERVER_WORKLOADS = ["put-4k", "get-4k", "put-1m", "get-1m", "put-64m", "get-64m", "mixed-4k", "list-populate", "list-v2-full", "list-v2-delimiter"];

async function serverWorkloads(): Promise<void> {
  const dataDirectory = makeTemporaryDirectory("server");
  // The disk baselines run in the data directory (same filesystem), before the server owns it.
  await attempt("baseline-disk", async () => {
    disk = measureDisk(dataDirectory, { sequentialBytes: config.diskMib * MEBIBYTE });
    progress(`disk: ${round(disk.sequential.mibPerSecond, 1)} MiB/s sequential, ${round(disk.smallFsync.writesPerSecond, 0)} fsync'd 4 KiB writes/s`);
  });
  if (!sectionWanted(SERVER_WORKLOADS)) return;
  const server = await startCairnServer(dataDirectory, config.cpuProfileDirectory !== undefined ? { cpuProfileDirectory: config.cpuProfileDirectory } : {});
  try {
    const system: System = { kind: "cairn-server", port: server.port, pids: [server.pid] };
    const bucket = "bench";
    await createBucket(target(server.port, bucket));
    await putThenGet(system, bucket, "4k", 4 * KIBIBYTE, config.connections, null);
    await putThenGet(system, bucket, "1m", MEBIBYTE, config.connections, null);
    await putThenGet(system, bucket, "64m", 64 * MEBIBYTE, config.connections64m, config.ops64mMax);
    await attempt("mixed-4k", async () => {
      const pool = 1000;
      await measure({ workload: "populate-mixed", system, bucket, operation: "put", objectSizeBytes: 4 * KIBIBYTE, connections: config.connections, keyPrefix: "mixed/", durationMs: null, opsTotal: pool, record: false });
      const { result } = await measure({ workload: "mixed-4k", system, bucket, operation: "mixed", objectSizeBytes: 4 * KIBIBYTE, connections: config.connections, keyPrefix: "mixed/", keyPoolCount: pool });
      addNote(result, "45% GET, 30% HEAD, 15% PUT, 10% DELETE over 1,000 keys of 4 KiB; mibPerSecond counts GET and PUT bodies");
    });
    await attempt("list-v2", () => listingWorkloads(system), ["list-populate", "list-v2-full", "list-v2-delimiter"]);
  } finally {
    await stopProcess(server);
    if (config.cpuProfileDirectory !== undefined) progress(`cpu profile of the server written under ${config.cpuProfileDirectory}`);
  }
}

// ---- targets, output -------------------------------------------------------------------

interface TargetVerdict {
  target: string;
  /** The measured quantity, in `unit`. */
  value: number | null;
  unit: string;
  /** What `value` is compared with (the null server, MD5, or the absolute target). */
  baseline: number | null;
  baselineName: string;
  ratio: number | null;
  requiredRatio: number;
  met: boolean;
  note?: string;
}

function verdict(
  targetName: string,
  value: number | undefined,
  unit: string,
  baseline: number | undefined,
  baselineName: string,
  requiredRatio: number,
): TargetVerdict {
  if (value === undefined || baseline === undefined || baseline <= 0) {
    return { target: targetName, value: value ?? null, unit, baseline: baseline ?? null, baselineName, ratio: null, requiredRatio, met: false, note: "not measured in this run" };
  }
  const ratio = round(value / baseline, 3);
  return { target: targetName, value: round(value, 1), unit, baseline: round(baseline, 1), baselineName, ratio, requiredRatio, met: value / baseline >= requiredRatio };
}

function computeTargets(): TargetVerdict[] {
  return [
    verdict("4 KiB GET ops/s >= 50% of the null server's GET ops/s", find("get-4k")?.opsPerSecond, "ops/s", find("null-get-4k")?.opsPerSecond, "null-get-4k ops/s", TARGET_GET_4K_TO_NULL_MIN),
    verdict("4 KiB PUT ops/s >= 25% of the null server's PUT ops/s", find("put-4k")?.opsPerSecond, "ops/s", find("null-put-4k")?.opsPerSecond, "null-put-4k ops/s", TARGET_PUT_4K_TO_NULL_MIN),
    verdict("64 MiB PUT MiB/s >= 70% of single-core MD5", find("put-64m")?.mibPerSecond, "MiB/s", md5?.mibPerSecond, "single-core MD5 MiB/s", TARGET_PUT_64M_TO_MD5_MIN),
    verdict("64 MiB GET >= 800 MiB/s", find("get-64m")?.mibPerSecond, "MiB/s", find("get-64m") === undefined ? undefined : TARGET_GET_64M_MIB_PER_SECOND_MIN, "800 MiB/s", 1),
    verdict("ListObjectsV2 full listing >= 50,000 keys/s", listing?.full?.keysPerSecond, "keys/s", listing?.full == null ? undefined : TARGET_LIST_KEYS_PER_SECOND_MIN, "50,000 keys/s", 1),
  ];
}

const NOT_RUN = [
  { workload: "cluster (3-replica PUT/GET through a gateway)", result: "not run", reason: "out of scope for this first version of the benchmark: single-server workloads only" },
  { workload: "erasure coding (EC PUT/GET, degraded reads)", result: "not run", reason: "out of scope for this first version of the benchmark; codec throughput alone is measured by bench/ec-bench.ts" },
];

function formatTable(targets: TargetVerdict[]): string {
  const header = ["workload", "ops", "s", "ops/s", "MiB/s", "p50 ms", "p99 ms", "err", "srv cpu ms/op", "cli cpu ms/op"];
  const rows = results.map((result) => [
    result.workload,
    String(result.ops),
    String(result.seconds),
    String(result.opsPerSecond),
    String(result.mibPerSecond),
    String(result.latencyMs.p50),
    String(result.latencyMs.p99),
    String(result.errors),
    result.serverCpuMsPerOp === null ? "-" : String(result.serverCpuMsPerOp),
    result.clientCpuMsPerOp === null ? "-" : String(result.clientCpuMsPerOp),
  ]);
  const widths = header.map((name, column) => Math.max(name.length, ...rows.map((row) => row[column]!.length)));
  const line = (cells: string[]): string => cells.map((cell, column) => (column === 0 ? cell.padEnd(widths[column]!) : cell.padStart(widths[column]!))).join("  ").trimEnd();
  const out: string[] = ["", line(header), ...rows.map(line), ""];
  if (md5 !== undefined) out.push(`baseline md5, 1 core, 64 MiB: ${round(md5.mibPerSecond, 1)} MiB/s`);
  if (disk !== undefined) {
    out.push(`baseline disk, ${disk.sequential.totalBytes / MEBIBYTE} MiB sequential write + fsync: ${round(disk.sequential.mibPerSecond, 1)} MiB/s`);
    out.push(`baseline disk, serial 4 KiB write + fsync: ${round(disk.smallFsync.writesPerSecond, 0)}/s (${round(disk.smallFsync.latencyMsMean, 3)} ms each)`);
  }
  if (listing !== undefined) {
    out.push(`listing: ${listing.keysWritten} keys (issue asks ${listing.keysRequestedByIssue}), ${listing.full?.keysPerSecond ?? "-"} keys/s full; delimiter listing ${listing.delimiter === null ? "-" : `${listing.delimiter.commonPrefixes} prefixes in ${round(listing.delimiter.seconds * 1000, 1)} ms`}`);
  }
  out.push("");
  for (const target of targets) {
    const state = target.ratio === null ? "NO DATA" : target.met ? "MET    " : "NOT MET";
    out.push(`${state} ${target.target}: ${target.value ?? "-"} ${target.unit}, ratio ${target.ratio ?? "-"} (need >= ${target.requiredRatio})${target.note === undefined ? "" : ` (${target.note})`}`);
  }
  for (const notRun of NOT_RUN) out.push(`not run ${notRun.workload}: ${notRun.reason}`);
  for (const failure of failures) out.push(`FAILED ${failure.workload}: ${failure.error}`);
  return out.join("\n") + "\n";
}

async function main(): Promise<number> {
  const startedAtMs = Date.now();
  const loadAverageAtStart = os.loadavg();
  progress(`config ${JSON.stringify(config)}`);
  await attempt("baseline-md5", async () => {
    md5 = measureMd5();
    progress(`md5: ${round(md5.mibPerSecond, 1)} MiB/s`);
  });
  await attempt("null-server", nullServerBaselines, ["null-get-4k", "null-put-4k"]);
  await attempt("cairn-server", serverWorkloads, ["baseline-disk", ...SERVER_WORKLOADS]);

  const targets = computeTargets();
  const loadAverage = os.loadavg();
  const document = {
    benchmark: "cairn",
    version: 1,
    startedAt: new Date(startedAtMs).toISOString(),
    durationSeconds: round((Date.now() - startedAtMs) / 1000, 1),
    machine: {
      cpus: os.availableParallelism(),
      cpuModel: os.cpus()[0]?.model ?? "unknown",
      memoryBytes: os.totalmem(),
      node: process.version,
      platform: `${os.platform()} ${os.release()}`,
      loadAverageAtStart: loadAverageAtStart.map((value) => round(value, 2)),
      loadAverageAtEnd: loadAverage.map((value) => round(value, 2)),
      note: "other work on this machine shares its cores with the server and the load generator; compare ratios measured in the same run",
    },
    config: {
      secondsPerWorkload: config.seconds,
      loadGeneratorProcesses: config.workers,
      concurrency: config.connections,
      concurrency64MiB: config.connections64m,
      ops64MiBMax: config.ops64mMax,
      listKeys: config.listKeys,
      listKeysRequestedByIssue: LIST_KEYS_REQUESTED_BY_ISSUE,
      diskSequentialMiB: config.diskMib,
      signing: "SigV4 header auth, x-amz-content-sha256: UNSIGNED-PAYLOAD for PUT bodies",
      only: config.only,
    },
    baselines: {
      md5: md5 === undefined ? null : { ...md5, mibPerSecond: round(md5.mibPerSecond, 1) },
      disk:
        disk === undefined
          ? null
          : {
              directory: "the server's data directory (before the server starts)",
              sequential: { ...disk.sequential, seconds: round(disk.sequential.seconds, 3), mibPerSecond: round(disk.sequential.mibPerSecond, 1) },
              smallFsync: { ...disk.smallFsync, seconds: round(disk.smallFsync.seconds, 3), writesPerSecond: round(disk.smallFsync.writesPerSecond, 1), latencyMsMean: round(disk.smallFsync.latencyMsMean, 3) },
            },
      nullServer: {
        description: "node:http in its own process, 200 with a 4 KiB body, request body drained; same load generator, connections and SigV4 signing",
        get: find("null-get-4k") ?? null,
        put: find("null-put-4k") ?? null,
      },
    },
    results: results.filter((result) => result.system !== "null-server"),
    listing: listing ?? null,
    targets,
    notRun: NOT_RUN,
    failures,
  };
  process.stdout.write(JSON.stringify(document, null, 2) + "\n");
  process.stdout.write(formatTable(targets));
  return failures.length === 0 ? 0 : 1;
}

let exiting = false;
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    if (exiting) return;
    exiting = true;
    progress(`${signal}: cleaning up`);
    void cleanUp(liveWorkers).finally(() => process.exit(130));
  });
}

let exitCode = 1;
try {
  exitCode = await main();
} catch (error) {
  progress(`fatal: ${(error as Error).stack ?? String(error)}`);
} finally {
  await cleanUp(liveWorkers);
}
process.exit(exitCode);
