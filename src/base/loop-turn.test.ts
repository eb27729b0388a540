// Proves the per-turn body budget: charges within it go through at once; once it is spent,
// callers wait for a later turn of the event loop, and waiters are spread over turns (each turn
// admits charges only until the budget is spent again, the first of a turn always); runInTurns
// cuts a generator's steps into turns of the loop.
import { test } from "node:test";
import assert from "node:assert/strict";
import { loopTurnsDuring } from "../../test/helpers/loop-turns.js";
import { chargeLoopTurn, LOOP_TURN_BODY_BYTES_MAX, runInTurns } from "./loop-turn.js";

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

test("runInTurns runs a generator's steps in turns, the loop free between them, and answers its value", async () => {
  function* steps(count: number): Generator<void, number, void> {
    let sum = 0;
    for (let index = 1; index <= count; index++) {
      sum += index;
      yield;
    }
    return sum;
  }
  // A budget of 0 and a clock check every 4 steps: a turn every 4 steps.
  const turns: number[] = [];
  const { value, loopTurns } = await loopTurnsDuring(() =>
    runInTurns(steps(40), {
      budgetMs: 0,
      stepsPerClockCheck: 4,
      turn: async (runSteps) => {
        turns.push(turns.length);
        return runSteps();
      },
    }),
  );
  assert.equal(value, 820);
  // 40 steps and the return: 11 turns of at most 4 steps each.
  assert.equal(turns.length, 11);
  assert.ok(loopTurns >= 10, `the loop turned ${loopTurns} times between the walk's turns`);
  // A budget no walk reaches: one turn, no wrapper needed.
  assert.equal(await runInTurns(steps(1000), { budgetMs: 60_000, stepsPerClockCheck: 4 }), 500_500);
});
