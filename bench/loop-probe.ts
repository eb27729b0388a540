/**
 * Preloaded into every process under test (`node --import <this file>`), so the server's code is
 * untouched: it records the process's event-loop delay with perf_hooks.monitorEventLoopDelay,
 * and on SIGUSR2 writes what it saw since the previous signal to CAIRN_BENCH_LOOP_FILE (JSON,
 * written whole through a rename) and starts over. The benchmark signals before and after each
 * workload; see `loopDelaySince` in processes.ts.
 *
 * With the delay it reports how the loop's thread spent the window, from the kernel's schedstat
 * (Linux): on a core, and runnable but waiting for one. A loop that waits for a core is delayed
 * by the machine, not by the code it runs; the report tells the two apart, window-wide and per
 * tick: a timer of its own (OWN_DELAY_TICK_MS) measures each tick's delay and subtracts the time
 * the thread spent waiting for a core meanwhile, which leaves the loop's own stall (running
 * callbacks, or blocked in a synchronous call).
 */
import { openSync, readSync, renameSync, writeFileSync } from "node:fs";
import { createHistogram, monitorEventLoopDelay } from "node:perf_hooks";

/** Timer resolution of the delay histogram: a stall shorter than this is not seen. */
const LOOP_DELAY_RESOLUTION_MS = 1;

const file = process.env.CAIRN_BENCH_LOOP_FILE;

interface Schedstat {
  onCpuNs: number;
  waitingNs: number;
}

/**
 * A reader of the main thread's time on a core and waiting in the run queue, in ns (the first two
 * fields of /proc/<pid>/task/<pid>/schedstat): the file stays open and is re-read at offset 0, one
 * pread a call. Undefined where the kernel does not keep them.
 */
function openMainThreadSchedstat(): (() => Schedstat) | undefined {
  let fd: number;
  try {
    fd = openSync(`/proc/${process.pid}/task/${process.pid}/schedstat`, "r");
  } catch {
    return undefined;
  }
  const buffer = Buffer.alloc(128);
  const read = (): Schedstat => {
    const [onCpuNs, waitingNs] = buffer.toString("latin1", 0, readSync(fd, buffer, 0, buffer.length, 0)).split(" ").map(Number);
    return { onCpuNs: onCpuNs ?? Number.NaN, waitingNs: waitingNs ?? Number.NaN };
  };
  return Number.isFinite(read().waitingNs) ? read : undefined;
}

/** Interval of the own-stall timer: as monitorEventLoopDelay's resolution, so the two compare. */
const OWN_DELAY_TICK_MS = LOOP_DELAY_RESOLUTION_MS;

/** Records each tick's delay minus the main thread's wait for a core during it. */
function startOwnDelayHistogram(schedstat: () => Schedstat): ReturnType<typeof createHistogram> {
  const histogram = createHistogram();
  const tickNs = OWN_DELAY_TICK_MS * 1e6;
  let last = { atNs: process.hrtime.bigint(), waitingNs: schedstat().waitingNs };
  setInterval(() => {
    const now = { atNs: process.hrtime.bigint(), waitingNs: schedstat().waitingNs };
    const lateNs = Number(now.atNs - last.atNs) - tickNs;
    // A histogram takes values >= 1; a tick on time or early is a 1 ns delay.
    histogram.record(Math.max(1, Math.round(lateNs - (now.waitingNs - last.waitingNs))));
    last = now;
  }, OWN_DELAY_TICK_MS).unref();
  return histogram;
}

if (file !== undefined && file !== "") {
  const histogram = monitorEventLoopDelay({ resolution: LOOP_DELAY_RESOLUTION_MS });
  histogram.enable();
  const schedstat = openMainThreadSchedstat();
  const ownHistogram = schedstat === undefined ? undefined : startOwnDelayHistogram(schedstat);
  let sequence = 0;
  let windowStart = { atNs: process.hrtime.bigint(), schedstat: schedstat?.() };
  process.on("SIGUSR2", () => {
    sequence += 1;
    const nanosecondsToMs = (value: number): number => Math.round(value / 1e4) / 100;
    const now = { atNs: process.hrtime.bigint(), schedstat: schedstat?.() };
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
      // The delay less the time spent waiting for a core, per tick; null where schedstat is missing.
      ownP99Ms: ownHistogram === undefined || ownHistogram.count === 0 ? null : nanosecondsToMs(ownHistogram.percentile(99)),
      ownMaxMs: ownHistogram === undefined || ownHistogram.count === 0 ? null : nanosecondsToMs(ownHistogram.max),
      // Shares of the window's wall time; null where schedstat is missing.
      onCpuShare: before === undefined || after === undefined ? null : shareOf(after.onCpuNs - before.onCpuNs),
      waitingForCpuShare: before === undefined || after === undefined ? null : shareOf(after.waitingNs - before.waitingNs),
    };
    windowStart = now;
    histogram.reset();
    ownHistogram?.reset();
    writeFileSync(`${file}.tmp`, JSON.stringify(report));
    renameSync(`${file}.tmp`, file);
  });
}
