/**
 * Background passes that never overlap (the compactor's, the scrubber's): a pass asked for while
 * one runs starts after it, whether the earlier one succeeded or failed.
 */
export class SerialPasses<T> {
  private running: Promise<T> | undefined;

  /** Run `pass` once every pass already asked for has settled; its own outcome is returned. */
  run(pass: () => Promise<T>): Promise<T> {
    const previous = this.running ?? Promise.resolve();
    const tracked = previous
      .catch(() => undefined)
      .then(pass)
      .finally(() => {
        if (this.running === tracked) this.running = undefined;
      });
    this.running = tracked;
    return tracked;
  }

  /** Resolves once the passes asked for so far have settled (never rejects). */
  async settled(): Promise<void> {
    await this.running?.catch(() => undefined);
  }
}
