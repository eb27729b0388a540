/**
 * A budget of request-body bytes the event loop handles per turn, shared by all requests.
 *
 * Why: libuv reads a readable socket up to 32 times per turn, so with many large uploads one turn
 * could copy and dispatch several MiB of bodies (perf sched: the server's main thread ran up to
 * 5 ms without a break during 1 MiB PUTs), and every timer and every other request waited behind
 * it. A body loop that finds the turn's budget spent waits for a later turn (setImmediate); its
 * stream then fills and stops reading the socket until it goes on.
 */
import { MEBIBYTE } from "./units.js";

/**
 * How long a piece of synchronous work that can be cut (a listing's rows, its XML) runs before it
 * gives the event loop back (setImmediate) and goes on in a later turn.
 */
export const LOOP_TURN_BUDGET_MS = 1;

/** Body bytes per turn for all requests together: about a third of a millisecond of copying and hashing dispatch. */
export const LOOP_TURN_BODY_BYTES_MAX = 1 * MEBIBYTE;

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
