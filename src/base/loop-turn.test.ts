// Proves the per-turn body budget: charges within it go through at once; once it is spent,
// callers wait for a later turn of the event loop, and waiters are spread over turns (each turn
// admits charges only until the budget is spent again, the first of a turn always).
import { test } from "node:test";
import assert from "node:assert/strict";
import { chargeLoopTurn, LOOP_TURN_BODY_BYTES_MAX } from "./loop-turn.js";

/** Resolves after the loop has turned once more (its check phase ran). */
function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

test("charges within a turn's budget go through at once; past it they wait for a later turn", async () => {
  await nextTurn(); // start from a fresh turn
  const piece = LOOP_TURN_BODY_BYTES_MAX / 4;
  for (let index = 0; index < 4; index++) assert.equal(chargeLoopTurn(piece), undefined, `piece ${index} is within the budget`);
  let admitted = false;
  const waiting = chargeLoopTurn(piece);
  assert.ok(waiting !== undefined, "the budget is spent");
  void waiting.then(() => (admitted = true));
  await Promise.resolve();
  assert.equal(admitted, false, "not within the same turn");
  await waiting;
  assert.equal(admitted, true);
});

test("waiters over budget are spread over turns, one whole budget per turn", async () => {
  await nextTurn();
  assert.equal(chargeLoopTurn(LOOP_TURN_BODY_BYTES_MAX), undefined, "the first charge of a turn always goes through");
  let turn = 0;
  let turning = true;
  const countTurns = async (): Promise<void> => {
    while (turning) {
      await nextTurn();
      turn += 1;
    }
  };
  const counting = countTurns();
  const admittedAt: number[] = [];
  await Promise.all(
    Array.from({ length: 4 }, async () => {
      const waiting = chargeLoopTurn(LOOP_TURN_BODY_BYTES_MAX);
      if (waiting !== undefined) await waiting;
      admittedAt.push(turn);
    }),
  );
  turning = false;
  await counting;
  assert.equal(admittedAt.length, 4);
  assert.equal(new Set(admittedAt).size, 4, `each waiter in a turn of its own: ${admittedAt.join(", ")}`);
});
