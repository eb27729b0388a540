/**
 * Assertions guard invariants of our own code, never user input. They stay on in production:
 * when one fires the process state is unknown, so we stop rather than write bad state to disk.
 */
export class AssertionError extends Error {
  override name = "AssertionError";
}

export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new AssertionError(message);
}

export function unreachable(value: never, message = "unreachable"): never {
  throw new AssertionError(`${message}: ${JSON.stringify(value)}`);
}
