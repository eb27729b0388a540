/**
 * Worker-thread side of wal-checkpointer.ts: one connection per registered database, and a
 * PASSIVE checkpoint of each every CHECKPOINT_INTERVAL_MS. A pass copies the frames that were in
 * the WAL when it began; while it ran the writer may have added more, so a pass that leaves
 * frames behind is followed at once by another (each shorter than the last), up to
 * CHECKPOINT_PASSES_MAX: a pass that catches up lets the writer's next write start the WAL over.
 * A WAL found longer than its limit makes it ask the writer for a checkpoint of its own.
 */
import { parentPort } from "node:worker_threads";
import Database from "better-sqlite3";
import { niceThisWorkerThread } from "./thread-priority.js";
import type { CheckpointWorkerReply, CheckpointWorkerRequest } from "./wal-checkpointer.js";

/**
 * Seldom enough that the WAL starts over about once a second: the writer's first commit after a
 * start-over fsyncs the new WAL header in its COMMIT (SQLite does, against out-of-order writes),
 * a small fsync but one on the event loop. At 100 ms, 4 KiB PUTs had 14 of them a second.
 */
const CHECKPOINT_INTERVAL_MS = 1_000;
const CHECKPOINT_PASSES_MAX = 4;
/** Each frame of a WAL is a page behind a header of this size. */
const WAL_FRAME_HEADER_BYTES = 24;

niceThisWorkerThread();
const port = parentPort!;
interface Registered {
  db: Database.Database;
  /** The WAL's size, in frames, past which the writer is asked to checkpoint so that it starts over. */
  restartFrames: number;
}
const registered = new Map<number, Registered>();
let timer: NodeJS.Timeout | undefined;

function reply(message: CheckpointWorkerReply): void {
  port.postMessage(message);
}

function checkpoint(id: number, { db, restartFrames }: Registered): void {
  let logFrames = 0;
  for (let pass = 0; pass < CHECKPOINT_PASSES_MAX; pass += 1) {
    let result: { busy: number; log: number; checkpointed: number } | undefined;
    try {
      result = (db.pragma("wal_checkpoint(PASSIVE)") as Array<{ busy: number; log: number; checkpointed: number }>)[0];
    } catch {
      // Busy or locked (the writer's own checkpoint is running): the next tick tries again.
      return;
    }
    if (result === undefined || result.busy !== 0) return;
    logFrames = result.log;
    if (result.checkpointed >= result.log) break;
  }
  // Once per tick, after this thread's passes, when the writer's checkpoint has least left to copy.
  if (logFrames > restartFrames) reply({ kind: "restart-wanted", id });
}

function checkpointAll(): void {
  for (const [id, entry] of registered) checkpoint(id, entry);
}

port.on("message", (request: CheckpointWorkerRequest) => {
  if (request.kind === "open") {
    try {
      const db = new Database(request.path, { fileMustExist: true });
      // Syncs as SQLite's own checkpoint would: the WAL before copying, the database after.
      db.pragma("synchronous = FULL");
      const frameBytes = (db.pragma("page_size", { simple: true }) as number) + WAL_FRAME_HEADER_BYTES;
      registered.set(request.id, { db, restartFrames: Math.ceil(request.walRestartBytes / frameBytes) });
      timer ??= setInterval(checkpointAll, CHECKPOINT_INTERVAL_MS);
    } catch (error) {
      reply({ kind: "open-failed", id: request.id, message: (error as Error).message });
    }
    return;
  }
  const entry = registered.get(request.id);
  registered.delete(request.id);
  try {
    entry?.db.close();
  } finally {
    if (registered.size === 0 && timer !== undefined) {
      clearInterval(timer);
      timer = undefined;
    }
    reply({ kind: "closed", id: request.id });
  }
});
