// Proves the EC backup-read delay follows recent shard latencies: the initial delay with no
// samples, three times the p90 within the bounds, and a shift in latency shows within at most
// EC_BACKUP_DELAY_RECOMPUTE_SAMPLES samples although the delay is not recomputed on every call.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  EC_BACKUP_READ_DELAY_MS_INITIAL,
  EC_BACKUP_READ_DELAY_MS_MAX,
  EC_BACKUP_READ_DELAY_MS_MIN,
  EC_BACKUP_READ_LATENCY_FACTOR,
  ShardLatency,
} from "./coded-chunks.js";

test("the backup delay starts at its initial value, then follows three times the p90 within bounds", () => {
  const latency = new ShardLatency();
  assert.equal(latency.backupDelayMs(), EC_BACKUP_READ_DELAY_MS_INITIAL);
  latency.record(1);
  assert.equal(latency.backupDelayMs(), EC_BACKUP_READ_DELAY_MS_MIN, "3 ms is below the minimum");
  for (let i = 0; i < 99; i++) latency.record(10);
  assert.equal(latency.backupDelayMs(), 10 * EC_BACKUP_READ_LATENCY_FACTOR);
  // A fifth of the reads turn slow: the p90 is theirs once the delay is recomputed, which
  // happens within 16 samples even when it is asked for after each one.
  for (let i = 0; i < 25; i++) {
    latency.record(100);
    latency.backupDelayMs();
  }
  for (let i = 0; i < 16; i++) latency.record(100);
  assert.equal(latency.backupDelayMs(), 100 * EC_BACKUP_READ_LATENCY_FACTOR);
  for (let i = 0; i < 300; i++) latency.record(5_000);
  assert.equal(latency.backupDelayMs(), EC_BACKUP_READ_DELAY_MS_MAX);
});
