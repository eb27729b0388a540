/**
 * Paces background reads and writes (compaction, scrubbing) to a byte rate, so they share the
 * disk with foreground requests instead of saturating it. One limiter per run: the rate is an
 * average since the run started, and a run that falls behind (slow disk) never bursts to catch up
 * by more than RATE_LIMITER_BURST_MS of work.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { assert, type Clock } from "../base/index.js";

/** How far behind schedule a run may be before its clock is reset (so it never bursts more). */
export const RATE_LIMITER_BURST_MS = 1_000;

export class RateLimiter {
  private startedAtMs: number;
  private consumedBytes = 0;

  constructor(
    private readonly bytesPerSecond: number,
    private readonly clock: Clock,
    private readonly signal?: AbortSignal,
  ) {
    assert(Number.isFinite(bytesPerSecond) && bytesPerSecond > 0, "a rate is positive");
    this.startedAtMs = clock.nowMs();
  }

  /** Accounts for `bytes` just moved and waits until the average rate is back under the limit. */
  async consume(bytes: number): Promise<void> {
    this.consumedBytes += bytes;
    const nowMs = this.clock.nowMs();
    const dueAtMs = this.startedAtMs + (this.consumedBytes / this.bytesPerSecond) * 1000;
    if (dueAtMs < nowMs - RATE_LIMITER_BURST_MS) {
      // Far behind (the disk was slower than the limit): start a fresh average from now.
      this.startedAtMs = nowMs;
      this.consumedBytes = 0;
      return;
    }
    if (dueAtMs > nowMs) await sleep(dueAtMs - nowMs, undefined, this.signal === undefined ? {} : { signal: this.signal });
  }
}
