// Erasure-codec throughput on one core: encode and decode (reconstruct after losing the maximum
// number of data shards the class tolerates) for 4+2 and 8+4 at 1 MiB and 64 KiB shards, each
// measured for at least one second, next to same-run baselines (a plain JS XOR loop and
// Buffer.copy) so numbers from different machines can be compared. MB/s counts data bytes
// (k x shard size per operation), MB = 10^6 bytes. Prints JSON, then a table.
import { randomBytes } from "node:crypto";
import { loadavg } from "node:os";
import { ReedSolomon } from "../src/ec/index.js";

const MEASURE_MS_MIN = 1000;
const WARMUP_MS = 200;
const MB = 1e6;

interface Result {
  name: string;
  mbPerSecond: number;
  operations: number;
  seconds: number;
}

function measure(name: string, bytesPerOperation: number, operation: () => void): Result {
  const warmupEnd = performance.now() + WARMUP_MS;
  while (performance.now() < warmupEnd) operation();
  let operations = 0;
  const start = performance.now();
  let elapsed = 0;
  do {
    operation();
    operations++;
    elapsed = performance.now() - start;
  } while (elapsed < MEASURE_MS_MIN);
  const seconds = elapsed / 1000;
  return { name, mbPerSecond: (bytesPerOperation * operations) / seconds / MB, operations, seconds };
}

function xorLoop(a: Uint8Array, b: Uint8Array, out: Uint8Array): void {
  for (let i = 0; i < out.length; i++) out[i] = a[i]! ^ b[i]!;
}

const results: Result[] = [];
let sink = 0;

for (const [k, m] of [[4, 2], [8, 4]] as const) {
  for (const shardSize of [1024 * 1024, 64 * 1024]) {
    const label = `${k}+${m} ${shardSize >= 1024 * 1024 ? `${shardSize / 1024 / 1024} MiB` : `${shardSize / 1024} KiB`}`;
    const codec = new ReedSolomon(k, m);
    const data = Array.from({ length: k }, () => new Uint8Array(randomBytes(shardSize)));
    const parity = codec.encode(data);
    results.push(measure(`encode ${label}`, k * shardSize, () => (sink ^= codec.encode(data)[0]![0]!)));
    const damaged: Array<Uint8Array | undefined> = [...data, ...parity];
    for (let i = 0; i < m; i++) damaged[i] = undefined;
    results.push(measure(`decode ${label} (${m} data lost)`, k * shardSize, () => (sink ^= codec.reconstruct(damaged)[0]![0]!)));
  }
}

{
  const size = 1024 * 1024;
  const a = new Uint8Array(randomBytes(size));
  const b = new Uint8Array(randomBytes(size));
  const out = new Uint8Array(size);
  results.push(measure("baseline: JS byte XOR loop, 1 MiB", size, () => xorLoop(a, b, out)));
  const source = randomBytes(size);
  const target = Buffer.alloc(size);
  results.push(measure("baseline: Buffer.copy, 1 MiB", size, () => (sink ^= source.copy(target))));
}

process.stdout.write(
  JSON.stringify({ node: process.version, loadAverage1m: Number(loadavg()[0]!.toFixed(2)), unit: "MB/s of data bytes (1 MB = 10^6 bytes), one core", results, sink: sink & 0 }, null, 2) + "\n",
);
const width = Math.max(...results.map((r) => r.name.length));
console.log("");
console.log(`${"benchmark".padEnd(width)}  ${"MB/s".padStart(9)}  ${"ops".padStart(6)}`);
for (const r of results) console.log(`${r.name.padEnd(width)}  ${r.mbPerSecond.toFixed(1).padStart(9)}  ${String(r.operations).padStart(6)}`);
