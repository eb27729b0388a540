/**
 * Counts the turns of the event loop while some work runs: a setImmediate chain that re-arms
 * itself once per turn (its check phase) until the work settles. Tests of work cut into turns
 * assert with it that the loop ran between the pieces.
 */
export async function loopTurnsDuring<T>(
  work: () => Promise<T>,
  /** Runs at every counted turn, with the count so far (writes racing a read, say). */
  onTurn?: (loopTurns: number) => void,
): Promise<{ value: T; loopTurns: number }> {
  let loopTurns = 0;
  let settled = false;
  const tick = (): void => {
    if (settled) return;
    loopTurns += 1;
    onTurn?.(loopTurns);
    setImmediate(tick);
  };
  setImmediate(tick);
  try {
    return { value: await work(), loopTurns };
  } finally {
    settled = true;
  }
}
