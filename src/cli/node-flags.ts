/**
 * Node/V8 flags the long-running roles (server, gateway, datanode, placement) run with: on the
 * `#!` line of bin/cairn.js, in `npm start`, and wherever the tests and the benchmark spawn a
 * role. They cannot be set from inside a running process (V8 sizes its heap at startup) and
 * NODE_OPTIONS refuses them; a role started without them works, logs a warning, and is slower.
 *
 * --initial-old-space-size=64: node's HTTP parser hands every piece of a request body to
 * JavaScript as a new 64 KiB Buffer outside the V8 heap. A large PUT allocates them so fast that
 * V8 scavenges for "external memory pressure" every few dozen milliseconds, promoting what the
 * uploads in flight hold; and with the default initial old generation (a few MiB of slack over
 * a ~10 MiB heap) each promoted MiB started a full mark-compact: 32 of them during 16 PUTs of
 * 64 MiB, on the loop and on four marking threads, a fifth of the server's CPU. With 64 MiB of
 * initial old space the heap (about 10 MiB live) never reaches the limit: none in 60 such PUTs,
 * and the server's CPU per 64 MiB PUT fell from 310-370 ms to 250-290 ms.
 */
export const CAIRN_NODE_FLAGS: readonly string[] = ["--initial-old-space-size=64"];

/** The flags of CAIRN_NODE_FLAGS this process was not started with. */
export function missingNodeFlags(execArgv: readonly string[] = process.execArgv): string[] {
  return CAIRN_NODE_FLAGS.filter((flag) => !execArgv.includes(flag));
}
