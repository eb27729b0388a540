/**
 * Drains the metadata store's garbage queue: chunks of overwritten, deleted and aborted
 * objects are mark-deleted on their data nodes, then dropped from the queue. A crash between
 * the two repeats the delete, which is idempotent.
 */
import { log } from "../base/index.js";
import type { MetadataStore } from "../meta/index.js";
import type { DataRouter } from "./data-router.js";

/** Garbage entries handled per pass; bounds one pass's memory and latency. */
export const GARBAGE_BATCH_COUNT_MAX = 256;
/** Pause between passes when the queue was empty. */
export const GARBAGE_IDLE_INTERVAL_MS = 2_000;

export class GarbageCollector {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<number> | undefined;
  private stopped = false;

  constructor(
    private readonly meta: MetadataStore,
    private readonly dataRouter: DataRouter,
  ) {}

  start(): void {
    const loop = async (): Promise<void> => {
      if (this.stopped) return;
      let handled = 0;
      try {
        handled = await this.runOnce();
      } catch (error) {
        log.warn({ error }, "garbage collection pass failed");
      }
      if (!this.stopped) this.timer = setTimeout(loop, handled > 0 ? 0 : GARBAGE_IDLE_INTERVAL_MS);
    };
    this.timer = setTimeout(loop, GARBAGE_IDLE_INTERVAL_MS);
  }

  /** One pass; returns how many chunks were deleted. Passes never overlap. */
  runOnce(): Promise<number> {
    this.running ??= this.pass().finally(() => (this.running = undefined));
    return this.running;
  }

  private async pass(): Promise<number> {
    const garbage = await this.meta.takeGarbageChunks(GARBAGE_BATCH_COUNT_MAX);
    if (garbage.length === 0) return 0;
    const done: number[] = [];
    for (const entry of garbage) {
      if (await this.dataRouter.deleteChunks([entry.chunk])) done.push(entry.garbageId);
    }
    await this.meta.removeGarbageChunks(done);
    return done.length;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running;
  }
}
