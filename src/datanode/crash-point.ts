/**
 * Named crash points for fault tests: `crashPoint("datanode.seal.after-footer")` kills the process
 * with SIGKILL (no exit handlers, no flushing, as a power cut or OOM kill would) when the
 * environment variable CAIRN_CRASH_POINT equals that name. Inert otherwise.
 */
const enabledCrashPoint = process.env.CAIRN_CRASH_POINT;

export type DataNodeCrashPoint =
  | "datanode.create-volume.after-rename"
  | "datanode.after-append-before-fsync"
  | "datanode.after-fsync-before-mapping"
  | "datanode.seal.after-footer"
  | "datanode.seal.after-footer-fsync"
  | "datanode.compaction.after-new-file-written"
  | "datanode.compaction.after-new-file-fsync"
  | "datanode.compaction.after-mapping-switch"
  | "datanode.compaction.after-rename";

/** Compaction's crash points in protocol order (see compaction.ts); the crash test walks them all. */
export const COMPACTION_CRASH_POINTS = [
  "datanode.compaction.after-new-file-written",
  "datanode.compaction.after-new-file-fsync",
  "datanode.compaction.after-mapping-switch",
  "datanode.compaction.after-rename",
] as const satisfies readonly DataNodeCrashPoint[];

export function crashPoint(name: DataNodeCrashPoint): void {
  if (enabledCrashPoint === undefined || enabledCrashPoint !== name) return;
  process.kill(process.pid, "SIGKILL");
}
