/**
 * Preloaded into every process under test (`node --import <this file>`), so the server's code is
 * untouched: it records the process's event-loop delay with perf_hooks.monitorEventLoopDelay,
 * and on SIGUSR2 writes what it saw since the previous signal to CAIRN_BENCH_LOOP_FILE (JSON,
 * written whole through a rename) and starts over. The benchmark signals before and after each
 * workload; see `loopDelaySince` in processes.ts.
 *
 * With the delay it reports how the loop's thread spent the window, from the kernel's schedstat
 * (Linux): on a core, and runnable but waiting for one. A loop that waits for a core is delayed
 * by the machine, not by the code it runs; the report tells the two apart.
 */
import { readFileSync, renameSync, writeFileSync } from "node:fs";
import { monitorEventLoopDelay } from "node:perf_hooks";

/** Timer resolution of the delay histogram: a stall shorter than this is not seen. */
const LOOP_DELAY_RESOLUTION_MS = 1;

const file = process.env.CAIRN_BENCH_LOOP_FILE;
/**
 * The main thread's time on a core and waiting in the run queue, in ns (the first two fields of
 * /proc/<pid>/task/<pid>/schedstat); undefined where the kernel does not keep them.
 */
function mainThreadSchedstat(): { onCpuNs: number; waitingNs: number } | undefined {
  try {
    const [onCpu, waiting] = readFileSync(`/proc/${process.pid}/task/${process.pid}/schedstat`, "utf8").trim().split(" ").map(Number);
    return onCpu === undefined || waiting === undefined ? undefined : { onCpuNs: onCpu, waitingNs: waiting };
  } catch {
    return undefined;
  }
}

if (file !== undefined && file !== "") {
  const histogram = monitorEventLoopDelay({ resolution: LOOP_DELAY_RESOLUTION_MS });
  histogram.enable();
  let sequence = 0;
  let windowStart = { atNs: process.hrtime.bigint(), schedstat: mainThreadSchedstat() };
  process.on("SIGUSR2", () => {
    sequence += 1;
    const nanosecondsToMs = (value: number): number => Math.round(value / 1e4) / 100;
    const now = { atNs: process.hrtime.bigint(), schedstat: mainThreadSchedstat() };
    const windowNs = Number(now.atNs - windowStart.atNs);
    const shareOf = (ns: number): number => Math.round((1000 * ns) / windowNs) / 1000;
    const before = windowStart.schedstat;
    const after = now.schedstat;
    const report = {
      sequence,
      samples: histogram.count,
      p50Ms: nanosecondsToMs(histogram.percentile(50)),
      p99Ms: nanosecondsToMs(histogram.percentile(99)),
      maxMs: nanosecondsToMs(histogram.max),
      // Shares of the window's wall time; null where schedstat is missing.
      onCpuShare: before === undefined || after === undefined ? null : shareOf(after.onCpuNs - before.onCpuNs),
      waitingForCpuShare: before === undefined || after === undefined ? null : shareOf(after.waitingNs - before.waitingNs),
    };
    windowStart = now;
    histogram.reset();
    writeFileSync(`${file}.tmp`, JSON.stringify(report));
    renameSync(`${file}.tmp`, file);
  });
}
