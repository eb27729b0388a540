// The bench's event-loop probe (bench/loop-probe.ts) judges the loop target: its own-stall figure
// leaves out time the machine took from the loop's thread (waiting for a core, the VM host's
// steal). These check that what is left out never hides a stall of the process's own: a loop
// blocked running code, or blocked in a call, for 20 ms every 50 ms shows a 20 ms own stall.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { promisify } from "node:util";

const PROBE_URL = pathToFileURL(path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../bench/loop-probe.js")).href;
const STALL_MS = 20;

/** A process under the probe that stalls its loop STALL_MS every 50 ms for 2 s ("busy": running; "blocked": in Atomics.wait; "none"), then reports. */
const SCRIPT = `
const mode = process.argv[1];
const cell = new Int32Array(new SharedArrayBuffer(4));
const timer = setInterval(() => {
  if (mode === "busy") { const end = performance.now() + ${STALL_MS}; while (performance.now() < end); }
  else if (mode === "blocked") Atomics.wait(cell, 0, 0, ${STALL_MS});
}, 50);
setTimeout(() => {
  clearInterval(timer);
  process.kill(process.pid, "SIGUSR2");
  setTimeout(() => {}, 200);
}, 2000);
`;

interface Report {
  p99Ms: number;
  ownP99Ms: number | null;
  ownWithStealP99Ms: number | null;
  machineStealShare: number | null;
}

async function probed(mode: "busy" | "blocked" | "none"): Promise<Report> {
  const directory = mkdtempSync(path.join(tmpdir(), "cairn-loop-probe-"));
  try {
    const file = path.join(directory, "loop.json");
    await promisify(execFile)(process.execPath, ["--import", PROBE_URL, "--input-type=module", "--eval", SCRIPT, mode], {
      env: { ...process.env, CAIRN_BENCH_LOOP_FILE: file },
      timeout: 30_000,
    });
    return JSON.parse(readFileSync(file, "utf8")) as Report;
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
}

for (const mode of ["busy", "blocked"] as const) {
  test(`a loop ${mode} for ${STALL_MS} ms shows a ${STALL_MS} ms own stall, with or without the host's steal`, async () => {
    const report = await probed(mode);
    assert.ok(report.ownP99Ms !== null && report.ownWithStealP99Ms !== null, "schedstat is read on Linux");
    // Busy, the thread may wait for a core part of the time (left out, rightly); blocked, it cannot.
    assert.ok(report.ownP99Ms >= STALL_MS * (mode === "busy" ? 0.5 : 0.9), `own stall p99 ${report.ownP99Ms} ms`);
    assert.ok(report.ownWithStealP99Ms >= report.ownP99Ms);
    assert.ok(report.p99Ms >= STALL_MS * 0.9);
    assert.ok(report.machineStealShare !== null && report.machineStealShare >= 0 && report.machineStealShare <= 1);
  });
}

test("a loop that never stalls shows an own stall of a few milliseconds at most", async () => {
  const report = await probed("none");
  assert.ok(report.ownP99Ms !== null && report.ownP99Ms < STALL_MS / 2, `own stall p99 ${report.ownP99Ms} ms`);
});
