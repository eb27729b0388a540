// Erasure-codec throughput on one core: encode, and decode (reconstruct after losing m data
// shards: 2 for 4+2, 4 for 8+4), at 1 MiB and 64 KiB shards, for both kernels (WebAssembly SIMD
// and plain JS), each measured for at least one second. Same-run baselines (a JS XOR loop over
// bytes and over 32-bit words, Buffer.copy, Buffer.compare) say what this machine's core and
// memory do, so numbers from a noisy or different machine can be compared.
// MB/s counts data bytes (k x shard size per operation), 1 MB = 10^6 bytes.
// Prints JSON, then a table. Run: node dist/bench/ec-bench.js  (about 30 s)
import { randomBytes } from "node:crypto";
import { type EcKernel, ReedSolomon } from "../src/ec/index.js";

const MEASURE_MS_MIN = 1000;
const WARMUP_MS = 150;
const MB = 1e6;

interface Result {
  name: string;
  kernel: EcKernel | "baseline";
  mbPerSecond: number;
  operationCount: number;
  seconds: number;
}

function measure(name: string, kernel: Result["kernel"], bytesPerOperation: number, operation: () => void): Result {
  const warmupEndMs = performance.now() + WARMUP_MS;
  while (performance.now() < warmupEndMs) operation();
  let operationCount = 0;
  const startMs = performance.now();
  let elapsedMs = 0;
  do {
    operation();
    operationCount++;
    elapsedMs = performance.now() - startMs;
  } while (elapsedMs < MEASURE_MS_MIN);
  const seconds = elapsedMs / 1000;
  return { name, kernel, mbPerSecond: (bytesPerOperation * operationCount) / seconds / MB, operationCount, seconds };
}

function xorBytes(a: Uint8Array, b: Uint8Array, out: Uint8Array): void {
  for (let i = 0; i < out.length; i++) out[i] = a[i]! ^ b[i]!;
}

function xorWords(a: Uint32Array, b: Uint32Array, out: Uint32Array): void {
  for (let i = 0; i < out.length; i++) out[i] = a[i]! ^ b[i]!;
}

const results: Result[] = [];
let sink = 0;

const kernels: EcKernel[] = new ReedSolomon(1, 1).kernel === "simd" ? ["simd", "js"] : ["js"];
for (const kernel of kernels) {
  for (const [k, m] of [[4, 2], [8, 4]] as const) {
    for (const shardSizeBytes of [1024 * 1024, 64 * 1024]) {
      const label = `${k}+${m} ${shardSizeBytes === 1024 * 1024 ? "1 MiB" : "64 KiB"}`;
      const codec = new ReedSolomon(k, m, { kernel });
      const data = Array.from({ length: k }, () => new Uint8Array(randomBytes(shardSizeBytes)));
      const parity = codec.encode(data);
      results.push(measure(`encode ${label}`, kernel, k * shardSizeBytes, () => (sink ^= codec.encode(data)[0]![0]!)));
      const damaged: Array<Uint8Array | undefined> = [...data, ...parity];
      for (let i = 0; i < m; i++) damaged[i] = undefined;
      results.push(measure(`decode ${label}, ${m} data lost`, kernel, k * shardSizeBytes, () => (sink ^= codec.reconstruct(damaged)[0]![0]!)));
    }
  }
}

{
  const sizeBytes = 1024 * 1024;
  const a = new Uint8Array(randomBytes(sizeBytes));
  const b = new Uint8Array(randomBytes(sizeBytes));
  const out = new Uint8Array(sizeBytes);
  results.push(measure("JS XOR loop, bytes, 1 MiB", "baseline", sizeBytes, () => xorBytes(a, b, out)));
  const [aWords, bWords, outWords] = [a, b, out].map((bytes) => new Uint32Array(bytes.buffer)) as [Uint32Array, Uint32Array, Uint32Array];
  results.push(measure("JS XOR loop, 32-bit words, 1 MiB", "baseline", sizeBytes, () => xorWords(aWords, bWords, outWords)));
  const source = Buffer.from(a);
  const target = Buffer.alloc(sizeBytes);
  results.push(measure("Buffer.copy, 1 MiB", "baseline", sizeBytes, () => (sink ^= source.copy(target))));
  const same = Buffer.from(a);
  results.push(measure("Buffer.compare (equal), 1 MiB", "baseline", sizeBytes, () => (sink ^= Buffer.compare(source, same))));
}

const rounded = results.map((result) => ({ ...result, mbPerSecond: Math.round(result.mbPerSecond), seconds: Number(result.seconds.toFixed(3)) }));
process.stdout.write(
  JSON.stringify({ node: process.version, arch: process.arch, unit: "MB/s of data bytes (1 MB = 10^6 bytes), one core", results: rounded, sink: sink & 0 }, null, 2) + "\n\n",
);
const nameWidth = Math.max(...results.map((result) => result.name.length));
console.log(`${"benchmark".padEnd(nameWidth)}  ${"kernel".padEnd(8)}  ${"MB/s".padStart(7)}  ${"ops".padStart(6)}`);
for (const result of results) {
  console.log(
    `${result.name.padEnd(nameWidth)}  ${result.kernel.padEnd(8)}  ${result.mbPerSecond.toFixed(0).padStart(7)}  ${String(result.operationCount).padStart(6)}`,
  );
}
