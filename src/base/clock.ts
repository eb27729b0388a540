/** Time comes in through this seam so tests can drive heartbeats and expiries without sleeping. */
export interface Clock {
  nowMs(): number;
}

export const systemClock: Clock = { nowMs: () => Date.now() };
