/**
 * SQLite WAL checkpoints on a thread of their own instead of inside a COMMIT on the event loop.
 *
 * Why: by default SQLite checkpoints in the COMMIT that takes the WAL past 1,000 pages: it
 * copies those pages into the database file and fsyncs the WAL and the database, all inside a
 * synchronous better-sqlite3 call, so the event loop and every request wait for the disk. With
 * 4 KiB PUTs on this machine that was 1-2% of the loop's time (strace of the loop thread: 33
 * fsyncs, 37 ms in all, in 5 s), in stalls of up to 6 ms (14% of the loop thread's context
 * switches were waits inside walCheckpoint's fsync); on a disk with seek times, where a
 * checkpoint's random page writes take a seek each, it is seconds.
 *
 * How: the connection that writes turns automatic checkpoints off and registers its file here;
 * a worker thread holds a second connection to each registered file and runs PASSIVE
 * checkpoints, which never take the write lock, so the writer does not wait for them. Durability
 * does not change: the checkpointing connection syncs the WAL before copying and the database
 * after, as SQLite's own checkpoint does, and commits are made durable by their writer as before.
 *
 * The WAL starts over from its beginning only at a write that finds every frame copied back;
 * under steady writes the thread, which copies what was there when its pass began, seldom wins
 * that race. So when it finds more than WAL_RESTART_BYTES in the WAL it asks the writer's thread
 * to run one PASSIVE checkpoint itself: the thread has copied nearly everything by then, so that
 * one copies a few pages and the writer's next write starts the WAL over. journal_size_limit
 * then cuts the file back to that size. What stays on the writer's thread: after each start-over
 * its first COMMIT fsyncs the new WAL header (SQLite's guard against out-of-order writes), about
 * once a second, as with automatic checkpoints (which start the WAL over as often or more).
 */
import { openSync } from "node:fs";
import { Worker } from "node:worker_threads";
import type Database from "better-sqlite3";
import { MEBIBYTE } from "./units.js";
import { log } from "./log.js";

/**
 * The -wal file of an on-disk database in WAL mode, opened for fdatasync; undefined otherwise.
 * A writer that commits with synchronous=NORMAL and then fdatasyncs this file on libuv's thread
 * pool gets a durable commit without the fsync inside COMMIT, on the event loop.
 * SQLite keeps this file (same inode) while a connection is open: it only rewrites it from the
 * start after a checkpoint, or truncates it, and deletes it when the last connection closes.
 */
export function openWalFileForSync(db: Database.Database): number | undefined {
  if (db.memory) return undefined;
  if (String(db.pragma("journal_mode", { simple: true })).toLowerCase() !== "wal") return undefined;
  try {
    return openSync(`${db.name}-wal`, "r");
  } catch {
    return undefined;
  }
}

/** Past this size of WAL the writer's own thread finishes a checkpoint so that the WAL starts over. */
export const WAL_RESTART_BYTES = 32 * MEBIBYTE;

export type CheckpointWorkerRequest = { kind: "open"; id: number; path: string; walRestartBytes: number } | { kind: "close"; id: number };
export type CheckpointWorkerReply =
  | { kind: "closed"; id: number }
  | { kind: "open-failed"; id: number; message: string }
  /** The WAL is past its limit: the writer should run one checkpoint so that it starts over. */
  | { kind: "restart-wanted"; id: number };

/** The one checkpoint thread of this process, started with the first registration. */
class CheckpointThread {
  private worker: Worker | undefined;
  private nextId = 1;
  private readonly closing = new Map<number, () => void>();
  private readonly registered = new Map<number, BackgroundCheckpoints>();

  open(registration: BackgroundCheckpoints, path: string, walRestartBytes: number): number {
    const id = this.nextId++;
    this.registered.set(id, registration);
    this.started().postMessage({ kind: "open", id, path, walRestartBytes } satisfies CheckpointWorkerRequest);
    return id;
  }

  /** Resolves once the thread has closed its connection to the file (or is gone). */
  close(id: number): Promise<void> {
    this.registered.delete(id);
    const worker = this.worker;
    if (worker === undefined) return Promise.resolve();
    return new Promise<void>((resolve) => {
      this.closing.set(id, resolve);
      // Held while an answer is awaited, or a process with nothing else to do would exit first.
      worker.ref();
      worker.postMessage({ kind: "close", id } satisfies CheckpointWorkerRequest);
    });
  }

  private started(): Worker {
    if (this.worker !== undefined) return this.worker;
    const worker = new Worker(new URL("./wal-checkpoint-worker.js", import.meta.url));
    worker.on("message", (reply: CheckpointWorkerReply) => {
      if (reply.kind === "open-failed") {
        log.warn({ reason: reply.message }, "the checkpoint thread could not open a database; its WAL is not checkpointed until it closes");
        return;
      }
      if (reply.kind === "restart-wanted") {
        this.registered.get(reply.id)?.checkpointToRestart();
        return;
      }
      this.closing.get(reply.id)?.();
      this.closing.delete(reply.id);
      if (this.closing.size === 0) worker.unref();
    });
    const gone = (error: unknown) => {
      if (this.worker !== worker) return;
      if (error !== undefined) log.error({ error }, "WAL checkpoint thread failed");
      this.worker = undefined;
      // Its connections died with it: nothing is left to close.
      for (const resolve of this.closing.values()) resolve();
      this.closing.clear();
    };
    worker.on("error", gone);
    worker.on("exit", () => gone(undefined));
    // After the listeners: adding a "message" listener refs the worker again.
    worker.unref();
    this.worker = worker;
    return worker;
  }
}

const checkpointThread = new CheckpointThread();

/**
 * Background checkpoints for one connection's database (see the file comment). Returns undefined,
 * leaving SQLite's automatic checkpoints on, for an in-memory database or one not in WAL mode.
 */
export class BackgroundCheckpoints {
  private readonly id: number;
  private closed = false;

  private constructor(
    private readonly db: Database.Database,
    walRestartBytes: number,
  ) {
    db.pragma("wal_autocheckpoint = 0");
    db.pragma(`journal_size_limit = ${walRestartBytes}`);
    this.id = checkpointThread.open(this, db.name, walRestartBytes);
  }

  static start(db: Database.Database, options: { walRestartBytes?: number } = {}): BackgroundCheckpoints | undefined {
    if (db.memory || String(db.pragma("journal_mode", { simple: true })).toLowerCase() !== "wal") return undefined;
    return new BackgroundCheckpoints(db, options.walRestartBytes ?? WAL_RESTART_BYTES);
  }

  /** Call before closing the writer's connection, so that it is the last one and removes the WAL. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await checkpointThread.close(this.id);
  }

  /** On the thread's request (see the file comment); between transactions, as every callback runs. */
  checkpointToRestart(): void {
    if (this.closed || !this.db.open || this.db.inTransaction) return;
    try {
      // PASSIVE never waits (nor calls the busy handler): if the thread is mid-pass, it asks again.
      this.db.pragma("wal_checkpoint(PASSIVE)");
    } catch (error) {
      log.warn({ file: this.db.name, error }, "WAL checkpoint by the writer failed");
    }
  }
}
