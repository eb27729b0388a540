/**
 * A real Cairn cluster on 127.0.0.1: one placement process (which also serves the metadata
 * store), data nodes spread over zones, and gateways, each its own `cairn` process with its
 * own data directory and port. Tests kill, stop and restart its processes.
 *
 * With `etcd`, several placement instances ("placement", "placement-2", ...) elect a leader
 * through etcd under a prefix of their own, and data nodes and gateways find the leader there
 * (no --placement); gateways then need a metadata store of their own (--meta postgres://...).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync } from "node:fs";
import * as path from "node:path";
import { randomBytes } from "node:crypto";
import { EtcdClient, RpcClient, type ClusterMap } from "../../src/cluster/index.js";
import { CAIRN_ROLE_COMMAND, makeDataDirectory, removeDataDirectory, TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY } from "./cairn-process.js";

export const CLUSTER_SECRET = "cluster-test-secret-0123456789";
const START_TIMEOUT_MS = 30_000;

export interface RoleProcess {
  role: "placement" | "datanode" | "gateway";
  name: string;
  args: string[];
  child: ChildProcess;
  port: number;
  /** The node id a data node printed when it started. */
  nodeId: string | undefined;
  stderr(): string;
}

function spawnRole(role: RoleProcess["role"], name: string, args: string[], env: Record<string, string>): Promise<RoleProcess> {
  const child = spawn(process.execPath, [...CAIRN_ROLE_COMMAND, role, ...args], {
    env: { ...process.env, CAIRN_LOG_LEVEL: "warn", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr!.on("data", (data: Buffer) => {
    stderr += data.toString();
    if (stderr.length > 1_000_000) stderr = stderr.slice(-500_000);
  });
  return new Promise<RoleProcess>((resolve, reject) => {
    let stdout = "";
    const timer = setTimeout(() => reject(new Error(`${name} did not start in time: ${stderr}`)), START_TIMEOUT_MS);
    child.stdout!.on("data", (data: Buffer) => {
      stdout += data.toString();
      for (const line of stdout.split("\n")) {
        if (!line.startsWith("{")) continue;
        try {
          const event = JSON.parse(line) as { event?: string; port?: number; nodeId?: string };
          if (event.event === "listening" && typeof event.port === "number") {
            clearTimeout(timer);
            resolve({ role, name, args, child, port: event.port, nodeId: event.nodeId, stderr: () => stderr });
          }
        } catch {
          // A partial line; wait for the rest.
        }
      }
    });
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited (${code ?? signal}) before listening: ${stderr}`));
    });
  });
}

export interface DataNodeSpec {
  name: string;
  zone: string;
  rack: string;
}

export class TestCluster {
  readonly processes = new Map<string, RoleProcess>();
  private readonly placementClients = new Map<string, RpcClient>();
  /** Set when the cluster runs on etcd: its client and this cluster's key prefix there. */
  readonly etcd: { client: EtcdClient; url: string; prefix: string } | undefined;

  private constructor(
    readonly root: string,
    private readonly options: {
      nodeDownAfterMs: number;
      ack: string;
      gatewayArgs: string[];
      gatewayEnv: Record<string, string>;
      placementFlags: string[];
      volumeSizeBytes: number | undefined;
    },
    etcdUrl: string | undefined,
  ) {
    if (etcdUrl !== undefined) this.etcd = { client: new EtcdClient(etcdUrl), url: etcdUrl, prefix: `/cairn-test-${randomBytes(6).toString("hex")}` };
  }

  static async start(options: {
    dataNodes: DataNodeSpec[];
    gatewayCount: number;
    nodeDownAfterMs?: number;
    ack?: "all" | "majority" | "one";
    volumeSizeBytes?: number;
    /** Extra gateway flags, e.g. --meta postgres://... */
    gatewayArgs?: string[];
    gatewayEnv?: Record<string, string>;
    /** etcd client URL: placement instances elect a leader there; others follow it. */
    etcdUrl?: string;
    /** Extra placement flags, e.g. --node-out-after-ms 15000 */
    placementFlags?: string[];
    /** Placement instances (more than one needs etcdUrl). */
    placementCount?: number;
  }): Promise<TestCluster> {
    const placementCount = options.placementCount ?? 1;
    if (placementCount > 1 && options.etcdUrl === undefined) throw new Error("several placement instances need etcd");
    const cluster = new TestCluster(
      makeDataDirectory("cluster"),
      {
        nodeDownAfterMs: options.nodeDownAfterMs ?? 5_000,
        ack: options.ack ?? "all",
        gatewayArgs: options.gatewayArgs ?? [],
        gatewayEnv: options.gatewayEnv ?? {},
        placementFlags: options.placementFlags ?? [],
        volumeSizeBytes: options.volumeSizeBytes,
      },
      options.etcdUrl,
    );
    try {
      await Promise.all(Array.from({ length: placementCount }, (_unused, index) => cluster.startPlacement(index === 0 ? "placement" : `placement-${index + 1}`)));
      await Promise.all(options.dataNodes.map((spec) => cluster.startDataNode(spec, options.volumeSizeBytes)));
      for (let index = 0; index < options.gatewayCount; index++) await cluster.startGateway(`gateway-${index + 1}`);
      await cluster.waitFor((map) => map.nodes.filter((node) => node.state === "up").length === options.dataNodes.length, "all data nodes up");
      return cluster;
    } catch (error) {
      await cluster.stop();
      throw error;
    }
  }

  get placementUrl(): string {
    return `http://127.0.0.1:${this.processes.get("placement")!.port}`;
  }

  endpoint(gatewayName: string): string {
    return `http://127.0.0.1:${this.get(gatewayName).port}`;
  }

  get(name: string): RoleProcess {
    const process = this.processes.get(name);
    if (process === undefined) throw new Error(`no process ${name}`);
    return process;
  }

  /** Flags that point a role at this cluster's placement: etcd when it has it, else the URL. */
  private placementArgs(): string[] {
    return this.etcd !== undefined ? ["--etcd", this.etcd.url, "--etcd-prefix", this.etcd.prefix] : ["--placement", this.placementUrl];
  }

  private async startPlacement(name: string): Promise<void> {
    const dataDirectory = path.join(this.root, name);
    mkdirSync(dataDirectory, { recursive: true });
    const args = ["--data-dir", dataDirectory, "--listen", "127.0.0.1:0", "--cluster-secret", CLUSTER_SECRET, "--node-down-after-ms", String(this.options.nodeDownAfterMs)];
    args.push(...this.options.placementFlags);
    if (this.etcd !== undefined) args.push("--etcd", this.etcd.url, "--etcd-prefix", this.etcd.prefix);
    const placement = await spawnRole("placement", name, args, {
      CAIRN_ROOT_ACCESS_KEY: TEST_ACCESS_KEY_ID,
      CAIRN_ROOT_SECRET_KEY: TEST_SECRET_ACCESS_KEY,
    });
    this.processes.set(name, placement);
  }

  /** The placement processes, first started first. */
  placements(): RoleProcess[] {
    return [...this.processes.values()].filter((process) => process.role === "placement");
  }

  /** The name of the placement process etcd names leader now, undefined while there is none. */
  async leaderName(): Promise<string | undefined> {
    if (this.etcd === undefined) return "placement";
    const leader = await this.etcd.client.get(`${this.etcd.prefix}/placement/leader`);
    if (leader === undefined) return undefined;
    return this.placements().find((process) => `http://127.0.0.1:${process.port}` === leader.value)?.name;
  }

  private async startDataNode(spec: DataNodeSpec, volumeSizeBytes: number | undefined): Promise<void> {
    const dataDirectory = path.join(this.root, spec.name);
    mkdirSync(dataDirectory, { recursive: true });
    const args = [
      "--data-dir", dataDirectory,
      "--listen", "127.0.0.1:0",
      ...this.placementArgs(),
      "--cluster-secret", CLUSTER_SECRET,
      "--zone", spec.zone,
      "--rack", spec.rack,
      ...(volumeSizeBytes !== undefined ? ["--volume-size-bytes", String(volumeSizeBytes)] : []),
    ];
    this.processes.set(spec.name, await spawnRole("datanode", spec.name, args, {}));
  }

  /** Add a data node to the running cluster (a new machine joining). */
  async addDataNode(spec: DataNodeSpec): Promise<RoleProcess> {
    await this.startDataNode(spec, this.options.volumeSizeBytes);
    return this.get(spec.name);
  }

  /** Start a gateway of this cluster; `args` replaces the flags the cluster would pass (e.g. --config). */
  async startGateway(name: string, options: { args?: string[] } = {}): Promise<RoleProcess> {
    const args = options.args ?? ["--listen", "127.0.0.1:0", ...this.placementArgs(), "--cluster-secret", CLUSTER_SECRET, "--ack", this.options.ack, ...this.options.gatewayArgs];
    const gateway = await spawnRole("gateway", name, args, this.options.gatewayEnv);
    this.processes.set(name, gateway);
    return gateway;
  }

  /** Restart a killed data node with its data directory (and its listen port freshly chosen). */
  async restart(name: string): Promise<RoleProcess> {
    const previous = this.get(name);
    const restarted = await spawnRole(previous.role, name, previous.args, {});
    this.processes.set(name, restarted);
    return restarted;
  }

  async kill(name: string): Promise<void> {
    const child = this.get(name).child;
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    child.kill("SIGKILL");
    await exited;
  }

  pause(name: string): void {
    this.get(name).child.kill("SIGSTOP");
  }

  resume(name: string): void {
    this.get(name).child.kill("SIGCONT");
  }

  /** The map as the placement leader serves it (standbys answer NotLeader; the leader is asked). */
  async clusterMap(): Promise<ClusterMap> {
    let lastError: unknown = new Error("no placement process is running");
    for (const process of this.placements()) {
      if (process.child.exitCode !== null || process.child.signalCode !== null) continue;
      const url = `http://127.0.0.1:${process.port}`;
      let client = this.placementClients.get(url);
      if (client === undefined) {
        client = new RpcClient(url, CLUSTER_SECRET);
        this.placementClients.set(url, client);
      }
      try {
        return await client.call<ClusterMap>("clusterMap", {});
      } catch (error) {
        lastError = error;
      }
    }
    throw lastError;
  }

  /** Poll the cluster map until `predicate` holds (bounded). */
  async waitFor(predicate: (map: ClusterMap) => boolean, what: string, timeoutMs = 30_000): Promise<ClusterMap> {
    const deadline = Date.now() + timeoutMs;
    let last: ClusterMap | undefined;
    while (Date.now() < deadline) {
      try {
        last = await this.clusterMap();
        if (predicate(last)) return last;
      } catch {
        // Placement restarting; poll again.
      }
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    throw new Error(`timed out waiting for ${what}; last map: ${JSON.stringify(last)}`);
  }

  async stop(): Promise<void> {
    for (const client of this.placementClients.values()) client.close();
    for (const process of this.processes.values()) {
      if (process.child.exitCode === null && process.child.signalCode === null) {
        process.child.kill("SIGCONT");
        process.child.kill("SIGKILL");
      }
    }
    await Promise.all(
      [...this.processes.values()].map(
        (process) => new Promise<void>((resolve) => (process.child.exitCode !== null || process.child.signalCode !== null ? resolve() : process.child.once("exit", () => resolve()))),
      ),
    );
    removeDataDirectory(this.root);
    if (this.etcd !== undefined) {
      await this.etcd.client.deleteRange(this.etcd.prefix, { prefix: true }).catch(() => undefined);
      this.etcd.client.close();
    }
  }
}
