/**
 * A load worker: a child process forked by load-generator.ts. It opens its connections, says
 * "ready", and on "start" runs its share of the workload, then reports latencies and errors.
 * Several workers spread the client's signing and HTTP parsing over cores, so the client is
 * not what limits the measurement.
 */
import { randomBytes, randomInt } from "node:crypto";
import { keepAliveAgent, s3Request } from "./s3-request.js";
import { keyName, type ParentMessage, type WorkerAssignment, type WorkerMessage, type WorkerReport } from "./workload.js";

/** Samples kept per worker; beyond it a reservoir keeps a uniform sample for the percentiles. */
const LATENCY_SAMPLE_COUNT_MAX = 500_000;
const ERROR_SAMPLE_COUNT_MAX = 5;

function send(message: WorkerMessage): void {
  process.send!(message);
}

async function run(assignment: WorkerAssignment): Promise<WorkerReport> {
  const { spec, workerIndex, workerCount } = assignment;
  const agent = keepAliveAgent(spec.connectionsPerWorker);
  // Every PUT sends the same random bytes: the store neither compresses nor deduplicates.
  const body = randomBytes(spec.objectSizeBytes);
  const report: WorkerReport = {
    workerIndex,
    ops: 0,
    bytes: 0,
    errors: 0,
    notFound: 0,
    errorSamples: [],
    latenciesMs: [],
    startedAtMs: 0,
    finishedAtMs: 0,
    cpuMs: 0,
  };
  let latencySeen = 0;
  const record = (latencyMs: number): void => {
    latencySeen += 1;
    if (report.latenciesMs.length < LATENCY_SAMPLE_COUNT_MAX) report.latenciesMs.push(latencyMs);
    else {
      const slot = randomInt(latencySeen);
      if (slot < LATENCY_SAMPLE_COUNT_MAX) report.latenciesMs[slot] = latencyMs;
    }
  };
  const fail = (message: string): void => {
    report.errors += 1;
    if (report.errorSamples.length < ERROR_SAMPLE_COUNT_MAX) report.errorSamples.push(message);
  };
  /**
   * The method and object path of this worker's op number `op`, with keys under `keyPrefix`: a
   * PUT's key index interleaves the workers, GETs and the mixed draw pick from the key pool.
   */
  const requestOf = (op: number, keyPrefix: string, keyPoolCount = spec.keyPoolCount): { method: "GET" | "PUT" | "HEAD" | "DELETE"; path: string } => {
    let method: "GET" | "PUT" | "HEAD" | "DELETE";
    let index: number;
    if (spec.operation === "put") {
      method = "PUT";
      index = op * workerCount + workerIndex;
    } else if (spec.operation === "get") {
      method = "GET";
      index = randomInt(keyPoolCount);
    } else {
      const draw = randomInt(100);
      method = draw < 45 ? "GET" : draw < 75 ? "HEAD" : draw < 90 ? "PUT" : "DELETE";
      index = randomInt(spec.keyPoolCount);
    }
    return { method, path: `/${spec.target.bucket}/${keyName(keyPrefix, spec.keyNaming, index)}` };
  };

  // Ops of this worker are numbered 0, 1, 2, ...; a PUT's key index interleaves the workers so
  // that after a run the indices [0, min ops per worker * workerCount) all exist.
  let nextOp = 0;
  const opLimit = spec.opsTotal === null ? Infinity : Math.ceil((spec.opsTotal - workerIndex) / workerCount);
  // The warm-up runs in this process, so that the measured requests run in warm code on both
  // sides: a fresh worker's first thousand requests run in V8's lower tiers, and the null
  // server, which the client limits, was measured against a cold client more than Cairn was.
  if (spec.warmupMs > 0 && (spec.operation === "put" || spec.operation === "get")) {
    const warmupDeadlineMs = Date.now() + spec.warmupMs;
    // PUTs write keys of their own (the measured PUTs write new keys, as they would without it).
    const warmupKeyPrefix = spec.operation === "put" ? `warmup/${spec.keyPrefix}` : (spec.warmupKeys?.keyPrefix ?? spec.keyPrefix);
    const warmupKeyPoolCount = spec.warmupKeys?.keyPoolCount ?? spec.keyPoolCount;
    let nextWarmupOp = 0;
    const warmupConnection = async (): Promise<void> => {
      do {
        const { method, path } = requestOf(nextWarmupOp, warmupKeyPrefix, warmupKeyPoolCount);
        nextWarmupOp += 1;
        // Failures here are not the measurement's; the measured run reports its own.
        await s3Request({ agent, target: spec.target, method, path, ...(method === "PUT" ? { body } : {}) }).catch(() => undefined);
      } while (spec.opsTotal === null && Date.now() < warmupDeadlineMs);
    };
    await Promise.all(Array.from({ length: spec.connectionsPerWorker }, () => warmupConnection()));
  }
  await new Promise<void>((resolve) => {
    process.on("message", (message: ParentMessage) => {
      if (message.kind === "start") resolve();
    });
    send({ kind: "ready" });
  });
  report.startedAtMs = Date.now();
  const cpuAtStart = process.cpuUsage();
  const deadlineMs = spec.durationMs === null ? Infinity : report.startedAtMs + spec.durationMs;

  const oneOp = async (op: number): Promise<void> => {
    const { method, path } = requestOf(op, spec.keyPrefix);
    const startedAt = performance.now();
    try {
      const response = await s3Request({
        agent,
        target: spec.target,
        method,
        path,
        ...(method === "PUT" ? { body } : {}),
      });
      record(performance.now() - startedAt);
      report.bytes += method === "PUT" ? body.length : response.bodyBytes;
      if (response.statusCode === 404 && spec.operation === "mixed" && method !== "PUT") report.notFound += 1;
      else if (response.statusCode < 200 || response.statusCode >= 300) fail(`${method} ${path}: HTTP ${response.statusCode}`);
      else if (method === "GET" && response.bodyBytes !== spec.objectSizeBytes && spec.operation !== "mixed")
        fail(`GET ${path}: ${response.bodyBytes} bytes, expected ${spec.objectSizeBytes}`);
    } catch (error) {
      record(performance.now() - startedAt);
      fail(`${method} ${path}: ${(error as Error).message}`);
    }
    report.ops += 1;
  };

  const connection = async (): Promise<void> => {
    while (nextOp < opLimit && Date.now() < deadlineMs) {
      const op = nextOp;
      nextOp += 1;
      await oneOp(op);
    }
  };
  await Promise.all(Array.from({ length: spec.connectionsPerWorker }, () => connection()));
  report.finishedAtMs = Date.now();
  const cpu = process.cpuUsage(cpuAtStart);
  report.cpuMs = (cpu.user + cpu.system) / 1000;
  agent.destroy();
  return report;
}

process.on("disconnect", () => process.exit(0)); // the parent died: stop loading its server
process.once("message", (message: ParentMessage) => {
  if (message.kind !== "assign") return;
  run(message.assignment).then(
    (report) => {
      // Disconnect only once the report is written: a large report (latency samples) could be
      // cut off by a disconnect right after send, and the parent saw a worker without a report.
      const message: WorkerMessage = { kind: "report", report };
      process.send!(message, undefined, {}, (error: Error | null) => {
        if (error !== null) console.error(error);
        process.disconnect();
      });
    },
    (error: unknown) => {
      console.error(error);
      process.exit(1);
    },
  );
});
