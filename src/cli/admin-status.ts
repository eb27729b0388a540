/**
 * `cairn admin status`: the cluster map as placement serves it, as tables for an operator —
 * nodes, volumes, storage per layout (raw bytes on disk against the logical bytes they hold,
 * and how many lost nodes each layout survives), and a summary. Read-only.
 */
import { GIBIBYTE, KIBIBYTE, MEBIBYTE, SECOND_MS, systemClock, TEBIBYTE, type NodeId } from "../base/index.js";
import { RpcClient, type ClusterMap, type NodeRecord, type VolumeUsage } from "../cluster/index.js";
import { layoutName } from "../placement/index.js";

export async function printClusterStatus(placementUrl: string, secret: string, out: NodeJS.WritableStream): Promise<void> {
  const client = new RpcClient(placementUrl, secret);
  let map: ClusterMap;
  let usage: VolumeUsage[];
  try {
    map = await client.call<ClusterMap>("clusterMap", {});
    usage = await client.call<VolumeUsage[]>("volumeUsage", {});
  } finally {
    client.close();
  }
  out.write(formatClusterStatus(map, systemClock.nowMs(), usage));
}

/** The status report of one map, as text; pure so it can be tested and reused. */
export function formatClusterStatus(map: ClusterMap, nowMs: number, usage: readonly VolumeUsage[] = []): string {
  const nodes = new Map<NodeId, NodeRecord>(map.nodes.map((node) => [node.nodeId, node]));
  const lines: string[] = [];
  lines.push(`cluster map version ${map.version}, ${map.replicaCount} replicas per volume`, "");

  lines.push("NODES");
  const nodeRows: string[][] = [["NODE", "ZONE/RACK", "STATE", "ADDRESS", "DISKS (free / capacity)", "HEARTBEAT", "WRITES", "WRITE LATENCY"]];
  for (const node of map.nodes) {
    const disks = node.disks.length === 0 ? "-" : node.disks.map((disk) => `${disk.path} ${formatBytes(disk.freeBytes)} / ${formatBytes(disk.capacityBytes)}`).join(", ");
    nodeRows.push([
      node.nodeId,
      `${node.zone}/${node.rack}`,
      node.state,
      node.address,
      disks,
      `${formatAge(nowMs - node.lastHeartbeatAtMs)} ago`,
      String(node.writeCount),
      `${node.writeLatencyMs.toFixed(1)} ms`,
    ]);
  }
  lines.push(...(map.nodes.length === 0 ? ["  (no data nodes have heartbeated)"] : table(nodeRows)), "");

  lines.push("VOLUMES");
  const volumeRows: string[][] = [["VOLUME", "STATE", "LAYOUT", "REPLICAS OR SHARDS (node@zone)"]];
  for (const volume of map.volumes) {
    const replicas = volume.replicas.map((nodeId) => {
      const node = nodes.get(nodeId);
      if (node === undefined) return `${nodeId}@?`;
      return `${nodeId}@${node.zone}${node.state === "down" ? " (down)" : ""}`;
    });
    volumeRows.push([String(volume.volumeId), volume.state, layoutName(volume.ec ?? null), replicas.join(", ")]);
  }
  lines.push(...(map.volumes.length === 0 ? ["  (no volumes)"] : table(volumeRows)), "");

  lines.push("STORAGE CLASSES (raw: bytes in volume files on every node; logical: the data they hold)");
  lines.push(...table(storageClassRows(map, usage)), "");

  const upCount = map.nodes.filter((node) => node.state === "up").length;
  const writableCount = map.volumes.filter((volume) => volume.state === "writable").length;
  let capacityBytes = 0;
  let freeBytes = 0;
  for (const node of map.nodes) {
    for (const disk of node.disks) {
      capacityBytes += disk.capacityBytes;
      freeBytes += disk.freeBytes;
    }
  }
  lines.push(
    "SUMMARY",
    `  nodes:    ${upCount} up, ${map.nodes.length - upCount} down`,
    `  volumes:  ${writableCount} writable, ${map.volumes.length - writableCount} sealed`,
    `  raw:      ${formatBytes(capacityBytes)} capacity, ${formatBytes(freeBytes)} free`,
    "",
  );
  return lines.join("\n");
}

/**
 * Per layout: volumes, logical and raw bytes, their ratio, and the node losses it survives.
 * Logical bytes of a replicated volume are its largest copy; of a coded one, the k data shards'
 * share of its raw bytes (shards of a chunk are equal in size).
 */
function storageClassRows(map: ClusterMap, usage: readonly VolumeUsage[]): string[][] {
  const sizesByVolume = new Map<number, number[]>();
  for (const entry of usage) sizesByVolume.set(entry.volumeId, [...(sizesByVolume.get(entry.volumeId) ?? []), entry.sizeBytes]);
  const classes = new Map<string, { volumes: number; rawBytes: number; logicalBytes: number; survives: number }>();
  for (const volume of map.volumes) {
    const ec = volume.ec ?? null;
    const name = layoutName(ec);
    const entry = classes.get(name) ?? { volumes: 0, rawBytes: 0, logicalBytes: 0, survives: ec === null ? volume.replicas.length - 1 : ec.m };
    const sizes = sizesByVolume.get(volume.volumeId) ?? [];
    const rawBytes = sizes.reduce((sum, size) => sum + size, 0);
    entry.volumes += 1;
    entry.rawBytes += rawBytes;
    entry.logicalBytes += ec === null ? Math.max(0, ...sizes) : (rawBytes * ec.k) / (ec.k + ec.m);
    entry.survives = Math.min(entry.survives, ec === null ? volume.replicas.length - 1 : ec.m);
    classes.set(name, entry);
  }
  const rows = [["CLASS", "VOLUMES", "LOGICAL", "RAW", "RAW/LOGICAL", "SURVIVES"]];
  for (const [name, entry] of classes) {
    const ratio = entry.logicalBytes > 0 ? `${(entry.rawBytes / entry.logicalBytes).toFixed(2)}x` : "-";
    rows.push([name, String(entry.volumes), formatBytes(entry.logicalBytes), formatBytes(entry.rawBytes), ratio, `${entry.survives} lost nodes`]);
  }
  if (classes.size === 0) rows.push(["(none)", "0", "-", "-", "-", "-"]);
  return rows;
}

function table(rows: string[][]): string[] {
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, index) => (widths[index] = Math.max(widths[index] ?? 0, cell.length)));
  return rows.map((row) => "  " + row.map((cell, index) => (index === row.length - 1 ? cell : cell.padEnd(widths[index] ?? 0))).join("  "));
}

export function formatBytes(bytes: number): string {
  const units: Array<[number, string]> = [
    [TEBIBYTE, "TiB"],
    [GIBIBYTE, "GiB"],
    [MEBIBYTE, "MiB"],
    [KIBIBYTE, "KiB"],
  ];
  for (const [size, name] of units) if (bytes >= size) return `${(bytes / size).toFixed(1)} ${name}`;
  return `${Math.round(bytes)} B`;
}

function formatAge(ageMs: number): string {
  const seconds = Math.max(0, ageMs) / SECOND_MS;
  if (seconds < 120) return `${seconds.toFixed(1)}s`;
  if (seconds < 7200) return `${Math.floor(seconds / 60)}m`;
  return `${Math.floor(seconds / 3600)}h`;
}
