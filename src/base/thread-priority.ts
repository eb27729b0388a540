/**
 * Worker threads that do bulk work for the event loop (hashing, needle verification, erasure
 * coding) run niced. Linux applies a niceness to the calling thread only. On a machine with a
 * core or two such a thread would otherwise take its full share of a core the event loop also
 * needs, and every preemption of the loop is a stall of several milliseconds for every request
 * (perf sched during 1 MiB GETs: the loop waited runnable up to 12.6 ms, p99 5.9 ms, while the
 * verifying thread ran at the loop's priority); niced, the thread yields to the loop at once and
 * works whenever the loop waits.
 */
import { setPriority } from "node:os";

export const WORKER_THREAD_NICE = 5;

/** Call at the start of a worker thread. Where lowering priority is not permitted, nothing changes. */
export function niceThisWorkerThread(): void {
  try {
    setPriority(WORKER_THREAD_NICE);
  } catch {
    // Not permitted here: work at the default priority.
  }
}
