/**
 * Aborts multipart uploads abandoned for longer than the configured age, so their parts'
 * needles go to the garbage queue and their space comes back.
 */
import { log, type Clock } from "../base/index.js";
import type { MetadataStore } from "../meta/index.js";

/** Uploads aborted per pass. */
export const UPLOAD_SWEEP_BATCH_COUNT_MAX = 100;

export class UploadSweeper {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<number> | undefined;

  constructor(
    private readonly meta: MetadataStore,
    private readonly clock: Clock,
    private readonly uploadAgeMsMax: number,
  ) {}

  /** Sweep every `intervalMs` (at most every minute, at least as often as the age allows). */
  start(intervalMs: number): void {
    this.timer = setInterval(() => {
      this.runOnce().catch((error: unknown) => log.warn({ error }, "upload sweep failed"));
    }, intervalMs);
    this.timer.unref();
  }

  runOnce(): Promise<number> {
    this.running ??= this.pass().finally(() => (this.running = undefined));
    return this.running;
  }

  private async pass(): Promise<number> {
    let aborted = 0;
    for (;;) {
      const cutoffMs = this.clock.nowMs() - this.uploadAgeMsMax;
      const stale = await this.meta.listMultipartUploadsInitiatedBefore(cutoffMs, UPLOAD_SWEEP_BATCH_COUNT_MAX);
      for (const upload of stale) {
        try {
          await this.meta.abortMultipartUpload(upload.bucket, upload.key, upload.uploadId);
          aborted += 1;
          log.info({ bucket: upload.bucket, uploadId: upload.uploadId }, "abandoned multipart upload aborted");
        } catch (error) {
          // Completed or aborted by a client meanwhile: nothing left to sweep.
          log.debug({ error, uploadId: upload.uploadId }, "sweep skipped an upload");
        }
      }
      if (stale.length < UPLOAD_SWEEP_BATCH_COUNT_MAX) return aborted;
    }
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.running;
  }
}
