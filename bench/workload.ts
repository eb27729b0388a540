/**
 * What the load generator runs, as plain data: the parent process builds a `WorkloadSpec`, each
 * forked worker runs its share of it and answers with a `WorkerReport`. Both cross the IPC
 * channel as JSON, so nothing here may hold a function, a Buffer or a class instance.
 */

/** Where requests go and who signs them. Traffic stays on 127.0.0.1. */
export interface S3Target {
  host: "127.0.0.1";
  port: number;
  bucket: string;
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
}

export type Operation =
  | "put" // unique keys by index: worker w's j-th op writes index j * workerCount + w
  | "get" // random index in [0, keyPoolCount)
  | "mixed"; // GET 45% / HEAD 30% / PUT 15% / DELETE 10% over a random index in [0, keyPoolCount)

/** "index": `<prefix>00001234`; "prefixed": `<prefix>p0012/k034` (100 keys per prefix). */
export type KeyNaming = "index" | "prefixed";

export interface WorkloadSpec {
  target: S3Target;
  operation: Operation;
  keyPrefix: string;
  keyNaming: KeyNaming;
  objectSizeBytes: number;
  /** get / mixed: keys [0, keyPoolCount) were written before. */
  keyPoolCount: number;
  /** The run ends at whichever comes first; at least one of them is set. */
  durationMs: number | null;
  opsTotal: number | null;
  connectionsPerWorker: number;
  /**
   * Each worker first runs the same requests for this long, unmeasured, before it reports ready
   * (PUTs to keys under "warmup/"); with opsTotal set, one request per connection instead. 0: none.
   */
  warmupMs: number;
  /**
   * GETs warm up on these keys instead of the measured ones: objects whose measured GETs must
   * come from the disk. null: on the measured keys.
   */
  warmupKeys: { keyPrefix: string; keyPoolCount: number } | null;
}

export interface WorkerAssignment {
  spec: WorkloadSpec;
  workerIndex: number;
  workerCount: number;
}

export interface WorkerReport {
  workerIndex: number;
  /** Completed requests, successful or not. */
  ops: number;
  /** Body bytes sent (PUT) plus received (GET). */
  bytes: number;
  errors: number;
  /** GET/HEAD answered 404 in the mixed workload: expected after a DELETE, not an error. */
  notFound: number;
  errorSamples: string[];
  latenciesMs: number[];
  startedAtMs: number;
  finishedAtMs: number;
  /** This worker's own CPU (user + system) over the run: what the client spent. */
  cpuMs: number;
}

export type ParentMessage = { kind: "assign"; assignment: WorkerAssignment } | { kind: "start" };
export type WorkerMessage = { kind: "ready" } | { kind: "report"; report: WorkerReport };

/** Keys are fixed-width so that the listing order equals the index order. */
export function keyName(prefix: string, naming: KeyNaming, index: number): string {
  if (naming === "index") return `${prefix}${String(index).padStart(8, "0")}`;
  const group = Math.floor(index / PREFIXED_KEYS_PER_GROUP);
  const member = index % PREFIXED_KEYS_PER_GROUP;
  return `${prefix}p${String(group).padStart(4, "0")}/k${String(member).padStart(3, "0")}`;
}

/** The delimiter listing: 1,000 prefixes of 100 keys each. */
export const PREFIXED_KEYS_PER_GROUP = 100;
