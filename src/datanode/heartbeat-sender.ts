/**
 * Heartbeats from a data node to placement: every HEARTBEAT_INTERVAL_MS the node reports its
 * address, zone and rack, each disk's capacity and free space, its volumes, and its write count
 * and latency. Placement marks a node that stays quiet for NODE_DOWN_AFTER_MS as down.
 *
 * Node identity: a node's first heartbeat carries no id; placement answers with one, which the
 * node persists in `<data-dir>/node-id` before using it. Every later heartbeat, and every later
 * start with the same data directory, uses that id, so a restarted node rejoins as itself and
 * placement finds its replicas where it left them.
 *
 * Failures are logged (rate-limited) and retried; a heartbeat never crashes the node, as a
 * placement outage must not take the data path down with it.
 */
import { open, readdir, readFile, rename, stat, statfs } from "node:fs/promises";
import { join } from "node:path";
import { log, SECOND_MS, type NodeId } from "../base/index.js";
import {
  HEARTBEAT_INTERVAL_MS,
  RpcClient,
  type DamageReport,
  type DiskReport,
  type HeartbeatRequest,
  type HeartbeatResponse,
  type VolumeStatus,
} from "../cluster/index.js";

export const NODE_ID_FILE_NAME = "node-id";
/** Deadline of one heartbeat call: an answer later than the next beat is no use. */
export const HEARTBEAT_TIMEOUT_MS = HEARTBEAT_INTERVAL_MS;
/** First wait before re-trying a registration that placement did not answer; doubles per try. */
export const REGISTRATION_RETRY_DELAY_MS_MIN = 100;
/** Longest wait between registration tries: a fresh node joins within this of placement coming up. */
export const REGISTRATION_RETRY_DELAY_MS_MAX = 5 * SECOND_MS;
/** A failing heartbeat is logged at most this often (with a count of the ones in between). */
export const HEARTBEAT_WARNING_INTERVAL_MS = 30 * SECOND_MS;
/** Node ids are placement's to choose; we accept printable ids that cannot break the one-line file. */
const NODE_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;
/** Volume file names, as data-node.ts writes them. */
const VOLUME_FILE_PATTERN = /^[1-9][0-9]*\.vol$/;
const VOLUMES_DIRECTORY_NAME = "volumes";

/** Where a heartbeat's volume list comes from: the opened DataNode. */
export interface VolumeSource {
  volumeStatuses(): Promise<VolumeStatus[]>;
}

/** Write counters the data node's RPC service keeps (WriteStats in datanode-service.ts). */
export interface WriteCounters {
  readonly writeCount: number;
  readonly writeLatencyMs: number;
}

export interface HeartbeatSenderOptions {
  /** Holds the node-id file. */
  dataDirectory: string;
  /** Base URLs of placement's RPC API, tried in order until one answers (after the leader). */
  placementAddresses: readonly string[];
  /** The placement leader's URL as etcd names it now (undefined while none); tried first. */
  leaderAddress?: () => string | undefined;
  secret: string;
  /** Base URL peers reach this node's internal API at. */
  address: string;
  zone: string;
  rack: string;
  diskDirectories: readonly string[];
  writeCounters: WriteCounters;
  intervalMs?: number;
  timeoutMs?: number;
  retryDelayMsMax?: number;
  nowMs?: () => number;
}

/** The node-id file holds something that is not a node id: refuse to guess who we are. */
export class NodeIdFileInvalid extends Error {
  override name = "NodeIdFileInvalid";
  constructor(readonly path: string) {
    super(`${path} does not hold a valid node id; fix or remove it (removing makes this a new node)`);
  }
}

export async function readNodeIdFile(dataDirectory: string): Promise<NodeId | undefined> {
  const path = join(dataDirectory, NODE_ID_FILE_NAME);
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
  const nodeId = text.trim();
  if (!NODE_ID_PATTERN.test(nodeId)) throw new NodeIdFileInvalid(path);
  return nodeId as NodeId;
}

/**
 * Persist protocol: write `node-id.tmp`, fsync it, rename it over `node-id`, fsync the
 * directory. A crash before the rename leaves no id (the node registers again, and placement's
 * first id is orphaned: it goes down and out, holding no data); a crash after it leaves the id.
 */
export async function writeNodeIdFile(dataDirectory: string, nodeId: NodeId): Promise<void> {
  if (!NODE_ID_PATTERN.test(nodeId)) throw new RangeError(`placement assigned an invalid node id ${JSON.stringify(nodeId)}`);
  const path = join(dataDirectory, NODE_ID_FILE_NAME);
  const temporaryPath = `${path}.tmp`;
  const file = await open(temporaryPath, "w", 0o600);
  try {
    await file.writeFile(`${nodeId}\n`);
    await file.sync();
  } finally {
    await file.close();
  }
  await rename(temporaryPath, path);
  const directory = await open(dataDirectory, "r");
  try {
    await directory.sync();
  } finally {
    await directory.close();
  }
}

/** Logs the first failure of a streak, then at most once per interval; says when it recovers. */
class RateLimitedWarning {
  private lastWarnedAtMs = -Infinity;
  private suppressedCount = 0;
  private failing = false;

  constructor(
    private readonly message: string,
    private readonly nowMs: () => number,
    private readonly level: "warn" | "error" = "warn",
  ) {}

  fail(fields: Record<string, unknown>): void {
    this.failing = true;
    const nowMs = this.nowMs();
    if (nowMs - this.lastWarnedAtMs < HEARTBEAT_WARNING_INTERVAL_MS) {
      this.suppressedCount += 1;
      return;
    }
    log[this.level]({ ...fields, suppressedCount: this.suppressedCount }, this.message);
    this.lastWarnedAtMs = nowMs;
    this.suppressedCount = 0;
  }

  succeed(fields: Record<string, unknown>): void {
    if (!this.failing) return;
    log.info({ ...fields, suppressedCount: this.suppressedCount }, `${this.message}: recovered`);
    this.failing = false;
    this.suppressedCount = 0;
    this.lastWarnedAtMs = -Infinity;
  }
}

export class HeartbeatSender {
  private readonly options: HeartbeatSenderOptions;
  private readonly clients = new Map<string, RpcClient>();
  private readonly intervalMs: number;
  private readonly timeoutMs: number;
  private readonly retryDelayMsMax: number;
  private readonly nowMs: () => number;
  private readonly heartbeatWarning: RateLimitedWarning;
  private readonly diskWarning: RateLimitedWarning;
  private readonly nodeIdWarning: RateLimitedWarning;
  /** The placement that answered last; tried first next time (the leader, usually). */
  private preferredAddress: string | undefined;
  private currentNodeId: NodeId | undefined;
  private volumeSource: VolumeSource | undefined;
  private timer: NodeJS.Timeout | undefined;
  private inFlight: Promise<void> | undefined;
  /** Wakes a registration backoff sleep when the sender stops. */
  private wakeSleeper: (() => void) | undefined;
  private stopped = false;
  private lastMapVersion = 0;

  constructor(options: HeartbeatSenderOptions) {
    if (options.placementAddresses.length === 0 && options.leaderAddress === undefined) throw new RangeError("at least one placement address is needed");
    this.options = options;
    this.intervalMs = options.intervalMs ?? HEARTBEAT_INTERVAL_MS;
    this.timeoutMs = options.timeoutMs ?? HEARTBEAT_TIMEOUT_MS;
    this.retryDelayMsMax = options.retryDelayMsMax ?? REGISTRATION_RETRY_DELAY_MS_MAX;
    this.nowMs = options.nowMs ?? (() => Date.now());
    this.heartbeatWarning = new RateLimitedWarning("heartbeat to placement failed", this.nowMs);
    this.diskWarning = new RateLimitedWarning("disk could not be measured for the heartbeat", this.nowMs);
    this.nodeIdWarning = new RateLimitedWarning("placement answered with a different node id; keeping ours", this.nowMs, "error");
  }

  get nodeId(): NodeId | undefined {
    return this.currentNodeId;
  }

  /** Newest cluster map version placement has answered with (0 before any answer). */
  get mapVersion(): number {
    return this.lastMapVersion;
  }

  /**
   * This node's id: from `<data-dir>/node-id` when present; otherwise from placement, asked
   * with id-less heartbeats (retried with backoff until one answers, or the sender stops) and
   * persisted before it is returned.
   */
  async ensureNodeId(): Promise<NodeId> {
    if (this.currentNodeId !== undefined) return this.currentNodeId;
    const persisted = await readNodeIdFile(this.options.dataDirectory);
    if (persisted !== undefined) {
      this.currentNodeId = persisted;
      return persisted;
    }
    let delayMs = REGISTRATION_RETRY_DELAY_MS_MIN;
    for (;;) {
      if (this.stopped) throw new Error("heartbeat sender stopped before placement assigned a node id");
      try {
        const response = await this.send(await this.buildRequest());
        const nodeId = response.nodeId;
        await writeNodeIdFile(this.options.dataDirectory, nodeId);
        this.currentNodeId = nodeId;
        log.info({ nodeId, address: this.options.address }, "placement assigned this data node its id");
        return nodeId;
      } catch (error) {
        if (error instanceof RangeError) throw error; // placement answered nonsense: retrying will not help
        this.heartbeatWarning.fail({ error, placement: this.options.placementAddresses, registering: true });
      }
      await this.sleep(delayMs);
      delayMs = Math.min(delayMs * 2, this.retryDelayMsMax);
    }
  }

  /** Starts periodic heartbeats (the first one now); needs the node id first. */
  start(volumeSource: VolumeSource): void {
    if (this.currentNodeId === undefined) throw new Error("start() needs a node id: call ensureNodeId() first");
    if (this.stopped || this.timer !== undefined || this.inFlight !== undefined) return;
    this.volumeSource = volumeSource;
    this.tick();
  }

  /** Sends one heartbeat now (outside the schedule); rejects if no placement answers. */
  async beat(): Promise<HeartbeatResponse> {
    const response = await this.send(await this.buildRequest());
    if (this.currentNodeId !== undefined && response.nodeId !== this.currentNodeId) {
      // Our id names the data on our disks; it cannot change under a running node. Placement
      // that lost its state must learn the id from us, not the other way round.
      this.nodeIdWarning.fail({ nodeId: this.currentNodeId, assignedNodeId: response.nodeId });
    } else {
      this.nodeIdWarning.succeed({ nodeId: this.currentNodeId });
    }
    return response;
  }

  /** Sends a damage report (the scrubber's) to placement, trying each as a heartbeat does. */
  async reportDamage(report: DamageReport): Promise<void> {
    await this.callPlacement("reportDamage", report);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.wakeSleeper?.();
    await this.inFlight;
    for (const client of this.clients.values()) client.close();
  }

  private tick(): void {
    this.timer = undefined;
    if (this.stopped) return;
    this.inFlight = this.beat().then(
      () => this.heartbeatWarning.succeed({ nodeId: this.currentNodeId }),
      (error: unknown) => this.heartbeatWarning.fail({ error, nodeId: this.currentNodeId, placement: this.options.placementAddresses }),
    );
    void this.inFlight.finally(() => {
      this.inFlight = undefined;
      // One beat at a time: a slow placement delays the next beat rather than piling them up.
      if (!this.stopped) this.timer = setTimeout(() => this.tick(), this.intervalMs);
    });
  }

  /** Tries each placement once: the leader etcd names, the one that answered last, the rest. */
  private async send(request: HeartbeatRequest): Promise<HeartbeatResponse> {
    const response = await this.callPlacement<HeartbeatResponse>("heartbeat", request, (answer, baseUrl) => {
      if (typeof answer !== "object" || answer === null || typeof answer.nodeId !== "string") {
        throw new Error(`placement ${baseUrl} answered a heartbeat without a node id`);
      }
    });
    if (typeof response.mapVersion === "number" && response.mapVersion > this.lastMapVersion) this.lastMapVersion = response.mapVersion;
    return response;
  }

  /**
   * Call placement: the leader first when one is known, then the last that answered, then each
   * configured address. `check` throws on an answer that is no use (tried as a failure).
   */
  private async callPlacement<T>(method: string, body: unknown, check?: (answer: T, baseUrl: string) => void): Promise<T> {
    let lastError: unknown = new Error("no placement leader is known");
    const addresses = [this.options.leaderAddress?.(), this.preferredAddress, ...this.options.placementAddresses];
    for (const address of new Set(addresses.filter((value): value is string => value !== undefined && value !== ""))) {
      let client = this.clients.get(address);
      if (client === undefined) {
        client = new RpcClient(address, this.options.secret);
        this.clients.set(address, client);
      }
      try {
        const answer = await client.call<T>(method, body, { timeoutMs: this.timeoutMs });
        check?.(answer, client.baseUrl);
        this.preferredAddress = address;
        return answer;
      } catch (error) {
        // A standby placement, or one that is down: the next may be the leader.
        lastError = error;
      }
    }
    throw lastError;
  }

  private async buildRequest(): Promise<HeartbeatRequest> {
    const volumes = this.volumeSource !== undefined ? await this.volumeSource.volumeStatuses() : [];
    return {
      nodeId: this.currentNodeId,
      address: this.options.address,
      zone: this.options.zone,
      rack: this.options.rack,
      disks: await this.diskReports(),
      volumes,
      writeCount: this.options.writeCounters.writeCount,
      writeLatencyMs: this.options.writeCounters.writeLatencyMs,
    };
  }

  private async diskReports(): Promise<DiskReport[]> {
    const reports: DiskReport[] = [];
    for (const path of this.options.diskDirectories) {
      try {
        const stats = await statfs(path);
        reports.push({
          path,
          capacityBytes: stats.blocks * stats.bsize,
          freeBytes: stats.bavail * stats.bsize, // what we may use, not counting root's reserve
          usedBytes: await volumeBytesOnDisk(path),
        });
      } catch (error) {
        // Leave the disk out rather than report made-up numbers: placement stops counting on
        // its space, and the failure is in our log.
        this.diskWarning.fail({ error, disk: path });
      }
    }
    return reports;
  }

  private sleep(delayMs: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.wakeSleeper = undefined;
        resolve();
      };
      const timer = setTimeout(done, delayMs);
      this.wakeSleeper = done;
    });
  }
}

/** Sum of the sizes of the volume files on one disk. */
async function volumeBytesOnDisk(diskDirectory: string): Promise<number> {
  const directory = join(diskDirectory, VOLUMES_DIRECTORY_NAME);
  let names: string[];
  try {
    names = await readdir(directory);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return 0; // before DataNode.open creates it
    throw error;
  }
  let totalBytes = 0;
  for (const name of names) {
    if (!VOLUME_FILE_PATTERN.test(name)) continue;
    try {
      totalBytes += (await stat(join(directory, name))).size;
    } catch (error) {
      // Compaction may swap a file between our readdir and stat.
      if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
    }
  }
  return totalBytes;
}
