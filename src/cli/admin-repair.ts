/**
 * `cairn admin repair status` and `cairn admin node drain <node-id>`: repair and drain as
 * placement sees them, over its RPC. Wiring and formatting only; the work is in
 * placement/repair.ts.
 */
import { systemClock } from "../base/index.js";
import { RemoteError, RpcClient, type RepairStatus } from "../cluster/index.js";
import { formatBytes } from "./admin-status.js";
import { UsageError } from "./config.js";

async function callPlacement<T>(placementUrl: string, secret: string, method: string, body: unknown): Promise<T> {
  const client = new RpcClient(placementUrl, secret);
  try {
    return await client.call<T>(method, body);
  } finally {
    client.close();
  }
}

export async function printRepairStatus(placementUrl: string, secret: string, out: NodeJS.WritableStream): Promise<void> {
  const status = await callPlacement<RepairStatus>(placementUrl, secret, "repairStatus", {});
  out.write(formatRepairStatus(status, systemClock.nowMs()));
}

export async function drainNode(placementUrl: string, secret: string, nodeId: string | undefined, out: NodeJS.WritableStream): Promise<void> {
  if (nodeId === undefined || nodeId === "") throw new UsageError("node drain needs a node id (see cairn admin status)");
  let status: RepairStatus;
  try {
    status = await callPlacement<RepairStatus>(placementUrl, secret, "drainNode", { nodeId });
  } catch (error) {
    // Placement refuses an unknown or malformed node id: the operator's mistake, not a crash.
    if (error instanceof RemoteError && error.remoteName === "InvalidPlacementRequest") throw new UsageError(error.message);
    throw error;
  }
  out.write(`node ${nodeId} is draining: it takes no new volumes, and each of its replicas is copied to another node before it leaves the replica set\n\n`);
  out.write(formatRepairStatus(status, systemClock.nowMs()));
}

/** The repair report as text; pure so it can be tested. */
export function formatRepairStatus(status: RepairStatus, nowMs: number): string {
  const lines: string[] = [];
  const outMinutes = status.nodeOutAfterMs / 60_000;
  lines.push(`a node down for ${outMinutes >= 1 ? `${outMinutes.toFixed(1)} min` : `${status.nodeOutAfterMs} ms`} is out: its replicas are re-created elsewhere`, "");
  lines.push("NODES");
  const nodeRows = [["NODE", "ZONE", "STATE", "VOLUMES"]];
  for (const node of status.nodes) {
    const state = node.out ? "out" : node.draining ? (node.volumeCount === 0 ? `${node.state}, drained` : `${node.state}, draining`) : node.state;
    nodeRows.push([node.nodeId, node.zone, state, String(node.volumeCount)]);
  }
  lines.push(...table(nodeRows), "");
  lines.push("UNDER-REPLICATED OR MOVING");
  if (status.volumes.length === 0) lines.push("  (none: every volume has all its replicas up)");
  else {
    const rows = [["VOLUME", "MISSING", "TASK", "PHASE", "COPIED", "TOMBSTONES", "AGE"]];
    for (const volume of status.volumes) {
      const task = volume.task;
      rows.push([
        String(volume.volumeId),
        volume.missing.length === 0 ? "-" : volume.missing.join(","),
        task === undefined ? "(waiting for out-timeout or a target)" : `${task.kind} ${task.fromNodeId} -> ${task.toNodeId}`,
        task?.phase ?? "-",
        task === undefined ? "-" : `${task.needlesCopied} needles, ${formatBytes(task.bytesCopied)}`,
        task === undefined ? "-" : String(task.tombstonesCopied),
        task === undefined ? "-" : `${Math.round((nowMs - task.createdAtMs) / 1000)}s`,
      ]);
    }
    lines.push(...table(rows));
  }
  lines.push("");
  const totals = status.totals;
  lines.push(
    "SINCE PLACEMENT STARTED",
    `  replicas re-created: ${totals.replicasReplaced}`,
    `  needles copied:      ${totals.needlesCopied} (${formatBytes(totals.bytesCopied)})`,
    `  needles rewritten:   ${totals.needlesRewritten} (damage reports pending: ${status.damagedNeedlesPending})`,
    `  tombstones carried:  ${totals.tombstonesPropagated}`,
    `  needles lost:        ${totals.needlesLost}`,
  );
  if (status.lastProblem !== undefined) lines.push(`  last problem:        ${status.lastProblem}`);
  lines.push("");
  return lines.join("\n");
}

function table(rows: string[][]): string[] {
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, index) => (widths[index] = Math.max(widths[index] ?? 0, cell.length)));
  return rows.map((row) => "  " + row.map((cell, index) => (index === row.length - 1 ? cell : cell.padEnd(widths[index] ?? 0))).join("  "));
}
