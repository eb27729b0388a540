/**
 * A budget of body bytes the event loop handles per turn, shared by all requests: request bodies
 * read and response bodies written (in 256 KiB slices, see object-ops.ts).
 *
 * Why: libuv reads a readable socket up to 32 times per turn, so with many large uploads one turn
 * could copy and dispatch several MiB of bodies (perf sched: the server's main thread ran up to
 * 5 ms without a break during 1 MiB PUTs), and every timer and every other request waited behind
 * it. A body loop that finds the turn's budget spent waits for a later turn (setImmediate); its
 * stream then fills and stops reading the socket until it goes on.
 */
import { setImmediate as setImmediatePromise } from "node:timers/promises";
import { KIBIBYTE } from "./units.js";

/**
 * How long a piece of synchronous work that can be cut (a listing's rows, its XML) runs before it
 * gives the event loop back (setImmediate) and goes on in a later turn: see runInTurns. A young-
 * generation GC that lands in a turn stretches it (1-3 ms here during a full listing), so the
 * turn is kept short: with 1 ms the full listing's own loop stall p99 was 6.1-6.5 ms in two runs,
 * with 0.5 ms 4.5-4.6 ms in the same hour, at 78k-103k against 90k-96k keys/s.
 */
export const LOOP_TURN_BUDGET_MS = 0.5;

/**
 * Runs synchronous work written as a generator (it yields between its steps) in turns of the
 * event loop of about `budgetMs`, reading the clock every `stepsPerClockCheck` steps, the loop
 * free between turns. `turn`, when given, wraps each turn's steps (in a read transaction, say)
 * and may answer later than they ran. Resolves with the generator's return value.
 */
export async function runInTurns<T>(
  steps: Generator<void, T, void>,
  options: {
    budgetMs: number;
    stepsPerClockCheck: number;
    turn?: (runSteps: () => IteratorResult<void, T>) => IteratorResult<void, T> | Promise<IteratorResult<void, T>>;
  },
): Promise<T> {
  const runSteps = (): IteratorResult<void, T> => {
    const deadlineMs = performance.now() + options.budgetMs;
    for (let count = 1; ; count++) {
      const next = steps.next();
      if (next.done === true || (count % options.stepsPerClockCheck === 0 && performance.now() >= deadlineMs)) return next;
    }
  };
  for (;;) {
    const step = options.turn === undefined ? runSteps() : await options.turn(runSteps);
    if (step.done === true) return step.value;
    await setImmediatePromise();
  }
}

/**
 * Body bytes per turn for all requests together: well under a millisecond of copying and hashing
 * dispatch. Bench, alternated with 1 MiB (two pairs), loop delay p99: put-1m 6.4-6.8 vs 7.8-8.5 ms,
 * get-1m 6.1-6.8 vs 7.1-7.2, put-64m 3.3-4.0 vs 5.1-5.6; throughput within the noise (put-64m
 * 485-527 vs 369-479 MiB/s).
 */
export const LOOP_TURN_BODY_BYTES_MAX = 256 * KIBIBYTE;

let spentBytes = 0;
let resetScheduled = false;
let nextTurn: Promise<void> | undefined;
let releaseNextTurn: (() => void) | undefined;

/**
 * Charges `bytes` to this turn once it has budget left: at once (undefined) while it has, else
 * after waiting for a turn that has. The first charge of a turn always goes through, however
 * large, so a single large piece is never held back for long.
 */
export function chargeLoopTurn(bytes: number): Promise<void> | undefined {
  if (spentBytes < LOOP_TURN_BODY_BYTES_MAX) {
    charge(bytes);
    return undefined;
  }
  return chargeInALaterTurn(bytes);
}

async function chargeInALaterTurn(bytes: number): Promise<void> {
  do {
    nextTurn ??= new Promise<void>((resolve) => (releaseNextTurn = resolve));
    await nextTurn;
  } while (spentBytes >= LOOP_TURN_BODY_BYTES_MAX);
  charge(bytes);
}

function charge(bytes: number): void {
  spentBytes += bytes;
  if (!resetScheduled) {
    resetScheduled = true;
    setImmediate(startTurn);
  }
}

function startTurn(): void {
  spentBytes = 0;
  resetScheduled = false;
  const release = releaseNextTurn;
  nextTurn = undefined;
  releaseNextTurn = undefined;
  release?.();
}
