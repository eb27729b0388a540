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
 *
 * A virtual machine's cores are themselves taken away by its host (steal time): the guest kernel
 * sees its thread running, but does not count the stolen time as run time (schedstat's first
 * field leaves it out) nor as waiting. In a tick where the thread never left its core (schedstat's
 * count of timeslices did not move: it neither slept nor was preempted), the delay that is neither
 * run time nor waiting was stolen, and the own stall leaves it out too; in any other tick it stays
 * in (it may have been a blocking call), except the time the loop sat idle in its poll for events
 * beyond the tick's own length (performance.eventLoopUtilization): that came after the tick was due,
 * with the thread asleep, woken late. Both figures are reported, and the machine's steal share.
 */
import { openSync, readFileSync, readSync, renameSync, writeFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { createHistogram, monitorEventLoopDelay, performance } from "node:perf_hooks";

/** Timer resolution of the delay histogram: a stall shorter than this is not seen. */
const LOOP_DELAY_RESOLUTION_MS = 1;

const file = process.env.CAIRN_BENCH_LOOP_FILE;

interface Schedstat {
  onCpuNs: number;
  waitingNs: number;
  /** Times the thread was put on a core. */
  timeslices: number;
}

/**
 * A reader of the main thread's time on a core and waiting in the run queue, in ns, and its count
 * of timeslices (the three fields of /proc/<pid>/task/<pid>/schedstat): the file stays open and is
 * re-read at offset 0, one pread a call. Undefined where the kernel does not keep them.
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
    const [onCpuNs, waitingNs, timeslices] = buffer.toString("latin1", 0, readSync(fd, buffer, 0, buffer.length, 0)).split(" ").map(Number);
    return { onCpuNs: onCpuNs ?? Number.NaN, waitingNs: waitingNs ?? Number.NaN, timeslices: timeslices ?? Number.NaN };
  };
  return Number.isFinite(read().waitingNs) ? read : undefined;
}

/** Interval of the own-stall timer: as monitorEventLoopDelay's resolution, so the two compare. */
const OWN_DELAY_TICK_MS = LOOP_DELAY_RESOLUTION_MS;

interface OwnDelayHistograms {
  /** Each tick's delay less the thread's wait for a core and, where it never left its core, less the stolen time. */
  own: ReturnType<typeof createHistogram>;
  /** Each tick's delay less the thread's wait for a core only. */
  withSteal: ReturnType<typeof createHistogram>;
}

function startOwnDelayHistograms(schedstat: () => Schedstat): OwnDelayHistograms {
  const histograms = { own: createHistogram(), withSteal: createHistogram() };
  const tickNs = OWN_DELAY_TICK_MS * 1e6;
  let last = { atNs: process.hrtime.bigint(), idleMs: performance.eventLoopUtilization().idle, ...schedstat() };
  setInterval(() => {
    const now = { atNs: process.hrtime.bigint(), idleMs: performance.eventLoopUtilization().idle, ...schedstat() };
    const lateNs = Number(now.atNs - last.atNs) - tickNs;
    const withStealNs = lateNs - (now.waitingNs - last.waitingNs);
    const stayedOnCore = now.timeslices === last.timeslices;
    // Time idle in the loop's poll past the tick's own length can only have come after the tick was
    // due: the thread was asleep waiting for events and woke late (a core stolen by the host).
    const idleLateNs = Math.max(0, (now.idleMs - last.idleMs) * 1e6 - tickNs);
    // Two bounds of the loop's own part of the delay, each leaving out one way the host delays it.
    const notStolenWhileOnCoreNs = stayedOnCore ? Math.min(withStealNs, now.onCpuNs - last.onCpuNs) : withStealNs;
    const notIdleLateNs = lateNs - idleLateNs;
    const ownNs = Math.min(notStolenWhileOnCoreNs, notIdleLateNs);
    // A histogram takes values >= 1; a tick on time or early is a 1 ns delay.
    histograms.withSteal.record(Math.max(1, Math.round(withStealNs)));
    histograms.own.record(Math.max(1, Math.round(ownNs)));
    last = now;
  }, OWN_DELAY_TICK_MS).unref();
  return histograms;
}

/** The machine's steal time so far, in ticks of all its cores (the 8th value of /proc/stat's "cpu" line); undefined where missing. */
function machineStealTicks(): number | undefined {
  try {
    const fields = readFileSync("/proc/stat", "latin1").slice(0, 256).split("\n")[0]!.trim().split(/\s+/);
    const steal = Number(fields[8]);
    return Number.isFinite(steal) ? steal : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The main thread's major page faults so far (field 12 of /proc/<pid>/task/<pid>/stat): each one
 * blocked the loop on a disk read (a memory-mapped file's page, SQLite's among them); undefined
 * where missing.
 */
function mainThreadMajorFaults(): number | undefined {
  try {
    const stat = readFileSync(`/proc/${process.pid}/task/${process.pid}/stat`, "latin1");
    const faults = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[9]);
    return Number.isFinite(faults) ? faults : undefined;
  } catch {
    return undefined;
  }
}

/** /proc/stat counts in USER_HZ, 100 on Linux. */
const PROC_STAT_TICKS_PER_SECOND = 100;

if (file !== undefined && file !== "") {
  const histogram = monitorEventLoopDelay({ resolution: LOOP_DELAY_RESOLUTION_MS });
  histogram.enable();
  const schedstat = openMainThreadSchedstat();
  const ownHistograms = schedstat === undefined ? undefined : startOwnDelayHistograms(schedstat);
  let sequence = 0;
  let windowStart = { atNs: process.hrtime.bigint(), schedstat: schedstat?.(), stealTicks: machineStealTicks(), majorFaults: mainThreadMajorFaults() };
  process.on("SIGUSR2", () => {
    sequence += 1;
    const nanosecondsToMs = (value: number): number => Math.round(value / 1e4) / 100;
    const now = { atNs: process.hrtime.bigint(), schedstat: schedstat?.(), stealTicks: machineStealTicks(), majorFaults: mainThreadMajorFaults() };
    const windowNs = Number(now.atNs - windowStart.atNs);
    const shareOf = (ns: number): number => Math.round((1000 * ns) / windowNs) / 1000;
    const percentileOf = (recorded: ReturnType<typeof createHistogram> | undefined, percentile: number): number | null =>
      recorded === undefined || recorded.count === 0 ? null : nanosecondsToMs(recorded.percentile(percentile));
    const before = windowStart.schedstat;
    const after = now.schedstat;
    const report = {
      sequence,
      samples: histogram.count,
      p50Ms: nanosecondsToMs(histogram.percentile(50)),
      p99Ms: nanosecondsToMs(histogram.percentile(99)),
      maxMs: nanosecondsToMs(histogram.max),
      // Per tick, the delay less the time spent waiting for a core and stolen by the host (see the
      // file comment); null where schedstat is missing.
      ownP99Ms: percentileOf(ownHistograms?.own, 99),
      ownMaxMs: ownHistograms === undefined || ownHistograms.own.count === 0 ? null : nanosecondsToMs(ownHistograms.own.max),
      // The same with the stolen time left in.
      ownWithStealP99Ms: percentileOf(ownHistograms?.withSteal, 99),
      // Shares of the window's wall time; null where schedstat is missing.
      onCpuShare: before === undefined || after === undefined ? null : shareOf(after.onCpuNs - before.onCpuNs),
      waitingForCpuShare: before === undefined || after === undefined ? null : shareOf(after.waitingNs - before.waitingNs),
      // Disk reads the loop's thread waited for in page faults.
      majorFaults: windowStart.majorFaults === undefined || now.majorFaults === undefined ? null : now.majorFaults - windowStart.majorFaults,
      // Of all the machine's cores' time, the share its host took.
      machineStealShare:
        windowStart.stealTicks === undefined || now.stealTicks === undefined
          ? null
          : shareOf(((now.stealTicks - windowStart.stealTicks) * 1e9) / PROC_STAT_TICKS_PER_SECOND / availableParallelism()),
    };
    windowStart = now;
    histogram.reset();
    ownHistograms?.own.reset();
    ownHistograms?.withSteal.reset();
    writeFileSync(`${file}.tmp`, JSON.stringify(report));
    renameSync(`${file}.tmp`, file);
  });
}
