/**
 * Keeping the event loop's thread on its core. On a machine with a core or two every thread of
 * the process competes with the loop for it, and a preempted loop stalls every request.
 *
 * Worker threads that do bulk work for the loop (hashing, needle verification, erasure coding)
 * run niced: Linux applies a niceness to the calling thread only. Such a thread would otherwise
 * take its full share of a core the loop also needs (perf sched during 1 MiB GETs: the loop
 * waited runnable up to 12.6 ms, p99 5.9 ms, while the verifying thread ran at the loop's
 * priority); niced, it yields to the loop at once and works whenever the loop waits.
 *
 * The helper threads the process starts with (libuv's thread pool, which runs every fsync and
 * file read, and V8's garbage-collection and compiler helpers) run SCHED_BATCH: the kernel does
 * not let a batch thread it wakes preempt the thread that woke it. Handing an fsync to the pool
 * wakes a pool thread, and without this the woken thread took the loop's core mid-turn: in
 * `--cpu-prof` of 4 KiB PUTs a tenth of the loop's wall time sat in the call that hands an
 * fsync to the pool. Eight alternated pairs of 4 KiB PUT runs: the loop waited runnable for a
 * core 21-27% as long as it ran, against 31-40%; ops/s ratio per pair median 1.08 (0.73-1.52,
 * this machine's speed swings that much between runs); five pairs of 4 KiB GETs, median 1.10.
 * The price: a pool thread woken by a finished fsync also waits for a core, so an fsync as the
 * loop sees it takes longer under load (p50 0.67-0.75 ms against 0.27-0.44). Batch threads keep
 * their fair share of the CPU (unlike SCHED_IDLE or a high niceness); they run at the next tick
 * or when a core goes idle. Node has no call for a scheduling policy, so util-linux's `chrt`
 * sets it; where `chrt` is missing or not permitted, nothing changes.
 */
import { execFile } from "node:child_process";
import { stat } from "node:fs/promises";
import { setPriority } from "node:os";
import { promisify } from "node:util";
import { log } from "./log.js";

export const WORKER_THREAD_NICE = 5;

/** Call at the start of a worker thread. Where lowering priority is not permitted, nothing changes. */
export function niceThisWorkerThread(): void {
  try {
    setPriority(WORKER_THREAD_NICE);
  } catch {
    // Not permitted here: work at the default priority.
  }
}

const execFileAsync = promisify(execFile);

/** How long `chrt` may take before the process goes on without it. */
const CHRT_TIMEOUT_MS = 5_000;

/**
 * Call from the main thread once, before serving: every other thread the process has then runs
 * SCHED_BATCH, the main thread stays SCHED_OTHER. Threads started later by the main thread
 * (worker threads) inherit SCHED_OTHER and nice themselves. Resolves whether or not it could.
 */
export async function keepHelperThreadsFromPreemptingTheLoop(): Promise<void> {
  // libuv starts every thread of its pool on the first request to it.
  await stat(".");
  const pid = String(process.pid);
  try {
    await execFileAsync("chrt", ["--batch", "--all-tasks", "--pid", "0", pid], { timeout: CHRT_TIMEOUT_MS });
  } catch (error) {
    log.debug({ error }, "helper threads keep the default scheduling policy (chrt failed)");
    return;
  }
  try {
    await execFileAsync("chrt", ["--other", "--pid", "0", pid], { timeout: CHRT_TIMEOUT_MS });
  } catch (error) {
    // The loop itself would start no preemption on waking: still correct, only slower to answer.
    log.warn({ error }, "the event loop's thread was left SCHED_BATCH (chrt failed)");
  }
}
