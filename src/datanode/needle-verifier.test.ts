// A large needle read and verified on the worker thread gets exactly decodeNeedle's verdict:
// its header and data when intact; "checksum" when one data byte, the CRC or a padding byte
// changed on disk; "short" when the file ends inside it; a read error rejects. Reads at once
// spread over the threads and each gets its own needle; an idle thread keeps no process alive.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, open, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { newNeedleId } from "../base/index.js";
import { encodeNeedle, NEEDLE_HEADER_SIZE_BYTES, needleEncodedSizeBytes, type Needle } from "./needle-codec.js";
import { NEEDLE_VERIFY_OFFLOAD_SIZE_BYTES_MIN, readAndVerifyNeedle } from "./needle-verifier.js";

test("large needles are read and verified on the worker with decodeNeedle's verdicts", async (t) => {
  const directory = await mkdtemp(path.join(tmpdir(), "cairn-needle-verifier-"));
  t.after(() => rm(directory, { recursive: true, force: true }));
  const dataSizeBytes = 2 * 1024 * 1024 + 5; // padding after the CRC
  const data = randomBytes(dataSizeBytes);
  const needle: Needle = { header: { needleId: newNeedleId(), flags: 0, dataSizeBytes }, data };
  const encoded = Buffer.alloc(needleEncodedSizeBytes(needle.header));
  encodeNeedle(needle, encoded);
  assert.ok(encoded.length >= NEEDLE_VERIFY_OFFLOAD_SIZE_BYTES_MIN);
  const positionBytes = 4096; // not at the start of the file
  const file = await open(path.join(directory, "volume"), "w+");
  t.after(() => file.close());
  await file.write(encoded, 0, encoded.length, positionBytes);

  const { decoded, directReadBytes } = await readAndVerifyNeedle(file.fd, positionBytes, encoded.length);
  assert.equal(directReadBytes, 0, "no O_DIRECT descriptor offered, none used");
  assert.equal(decoded.kind, "needle");
  assert.ok(decoded.kind === "needle");
  assert.deepEqual(decoded.header, needle.header);
  assert.ok(decoded.data.equals(data), "the data comes back whole");

  for (const offset of [NEEDLE_HEADER_SIZE_BYTES + 1_234_567, NEEDLE_HEADER_SIZE_BYTES + dataSizeBytes, encoded.length - 1]) {
    const damaged = Buffer.from(encoded);
    damaged[offset] = damaged[offset]! ^ 0x01;
    await file.write(damaged, 0, damaged.length, positionBytes);
    assert.deepEqual((await readAndVerifyNeedle(file.fd, positionBytes, encoded.length)).decoded, { kind: "invalid", reason: "checksum" }, `a flipped bit at ${offset} is caught`);
  }
  await file.truncate(positionBytes + encoded.length - 100);
  assert.deepEqual((await readAndVerifyNeedle(file.fd, positionBytes, encoded.length)).decoded, { kind: "invalid", reason: "short" });
  await assert.rejects(readAndVerifyNeedle(1_000_000, 0, encoded.length), /EBADF/, "a bad descriptor's error reaches the caller");
});

test("reads at once each get their own needle, and a process whose reads are done exits", async (t) => {
  const directory = await mkdtemp(path.join(tmpdir(), "cairn-needle-verifier-"));
  t.after(() => rm(directory, { recursive: true, force: true }));
  const file = await open(path.join(directory, "volume"), "w+");
  t.after(() => file.close());
  const needles: Array<{ needle: Needle; positionBytes: number; sizeBytes: number }> = [];
  let positionBytes = 0;
  for (let index = 0; index < 6; index++) {
    const dataSizeBytes = NEEDLE_VERIFY_OFFLOAD_SIZE_BYTES_MIN + index * 777;
    const needle: Needle = { header: { needleId: newNeedleId(), flags: 0, dataSizeBytes }, data: randomBytes(dataSizeBytes) };
    const encoded = Buffer.alloc(needleEncodedSizeBytes(needle.header));
    encodeNeedle(needle, encoded);
    await file.write(encoded, 0, encoded.length, positionBytes);
    needles.push({ needle, positionBytes, sizeBytes: encoded.length });
    positionBytes += encoded.length;
  }
  const decoded = await Promise.all(needles.map(({ positionBytes, sizeBytes }) => readAndVerifyNeedle(file.fd, positionBytes, sizeBytes).then((read) => read.decoded)));
  decoded.forEach((result, index) => {
    assert.ok(result.kind === "needle", `read ${index} verifies`);
    assert.deepEqual(result.header, needles[index]!.needle.header);
    assert.ok(result.data.equals(needles[index]!.needle.data), `read ${index} has its own bytes`);
  });

  // One read in a fresh process: the reading threads (one used, the others never) must let it end.
  const verifier = path.join(path.dirname(fileURLToPath(import.meta.url)), "needle-verifier.js");
  const { needle, sizeBytes } = needles[0]!;
  const script = `
    import { openSync } from "node:fs";
    import { readAndVerifyNeedle } from ${JSON.stringify(verifier)};
    const { decoded } = await readAndVerifyNeedle(openSync(${JSON.stringify(path.join(directory, "volume"))}, "r"), 0, ${sizeBytes});
    console.log(decoded.kind, decoded.header.needleId);`;
  const scriptPath = path.join(directory, "one-read.mjs");
  await writeFile(scriptPath, script);
  const child = spawnSync(process.execPath, [scriptPath], { encoding: "utf8", timeout: 20_000 });
  assert.equal(child.error, undefined, "the process ended on its own (not killed at the timeout)");
  assert.equal(child.status, 0, child.stderr);
  assert.equal(child.stdout.trim(), `needle ${needle.header.needleId}`);
});
