/**
 * Preloaded into every process under test (`node --import <this file>`), so the server's code is
 * untouched: it records the process's event-loop delay with perf_hooks.monitorEventLoopDelay,
 * and on SIGUSR2 writes what it saw since the previous signal to CAIRN_BENCH_LOOP_FILE (JSON,
 * written whole through a rename) and starts over. The benchmark signals before and after each
 * workload; see `loopDelaySince` in processes.ts.
 */
import { renameSync, writeFileSync } from "node:fs";
import { monitorEventLoopDelay } from "node:perf_hooks";

/** Timer resolution of the delay histogram: a stall shorter than this is not seen. */
const LOOP_DELAY_RESOLUTION_MS = 1;

const file = process.env.CAIRN_BENCH_LOOP_FILE;
if (file !== undefined && file !== "") {
  const histogram = monitorEventLoopDelay({ resolution: LOOP_DELAY_RESOLUTION_MS });
  histogram.enable();
  let sequence = 0;
  process.on("SIGUSR2", () => {
    sequence += 1;
    const nanosecondsToMs = (value: number): number => Math.round(value / 1e4) / 100;
    const report = {
      sequence,
      samples: histogram.count,
      p50Ms: nanosecondsToMs(histogram.percentile(50)),
      p99Ms: nanosecondsToMs(histogram.percentile(99)),
      maxMs: nanosecondsToMs(histogram.max),
    };
    histogram.reset();
    writeFileSync(`${file}.tmp`, JSON.stringify(report));
    renameSync(`${file}.tmp`, file);
  });
}
