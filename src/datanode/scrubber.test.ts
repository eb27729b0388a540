// Proves the scrubber on a real DataNode over temporary disks with 64 KiB sealed volumes: a byte
// flipped in a live needle of a sealed volume file is found, reported once as a DamageReport
// (checksum-mismatch, with the needle's id and the node's id) and recorded locally, while a clean
// volume scrubs clean; a byte flipped between mapped needles (in a tombstone needle) fails only
// the file checksum, reports no needle and has the volume rewritten (a forced compaction); writing the needle's good bytes again (what repair
// does) rewrites it in place so the file verifies against its old footer again; a failing report is counted, not thrown; the rate
// bound holds (a lower bound on time, never a tight one) and foreground reads go on meanwhile.
import { test } from "node:test";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import assert from "node:assert/strict";
import { open, readFile } from "node:fs/promises";
import { crc32, type VolumeId } from "../base/index.js";
import { ChecksumMismatch, createRpcHandler, VolumeFull, type DamageReport } from "../cluster/index.js";
import { DataNode, HeartbeatSender, Scrubber, WriteStats } from "./index.js";
import { fillSealAndDelete, flipByte, makeNeedle, makeTemporaryDisks, SMALL_VOLUME_SIZE_BYTES, TEST_NODE_ID, volumePath, type TemporaryDisks } from "./fixtures.js";
import { decodeNeedleHeader, NEEDLE_FLAG_TOMBSTONE, NEEDLE_HEADER_SIZE_BYTES, SUPERBLOCK_SIZE_BYTES } from "./needle-codec.js";

const HIGH_RATE_BYTES_PER_SECOND = 1024 * 1024 * 1024;

function openNode(disks: TemporaryDisks): Promise<DataNode> {
  return DataNode.open({ nodeId: TEST_NODE_ID, diskDirectories: disks.disks, volumeSizeBytes: SMALL_VOLUME_SIZE_BYTES, allowVolumeSizeBelowMinimumForTests: true });
}


/** Offset of the first tombstone needle in a volume file (walking needle headers from the start). */
async function firstTombstoneOffset(path: string): Promise<number> {
  const file = await open(path, "r");
  try {
    let offsetBytes = SUPERBLOCK_SIZE_BYTES;
    for (;;) {
      const header = Buffer.alloc(NEEDLE_HEADER_SIZE_BYTES);
      await file.read(header, 0, header.length, offsetBytes);
      const decoded = decodeNeedleHeader(header);
      assert.ok(decoded.kind === "header", "walked into something that is not a needle");
      if (decoded.header.flags & NEEDLE_FLAG_TOMBSTONE) return offsetBytes;
      offsetBytes += decoded.encodedSizeBytes;
    }
  } finally {
    await file.close();
  }
}

test("a flipped byte in a live needle of a sealed volume is found, reported to placement and recorded", async () => {
  const disks = await makeTemporaryDisks(1);
  const node = await openNode(disks);
  try {
    const first = await fillSealAndDelete(node, 1 as VolumeId, 0.2);
    const second = await fillSealAndDelete(node, 2 as VolumeId, 0.2);
    await node.createVolume(3 as VolumeId); // writable: not scrubbed
    const victim = first.live[2]!;
    // Flip a byte inside the victim's payload, found by searching the file for its bytes.
    const path = volumePath(disks.disks[0]!, 1);
    const fileBytes = await readFile(path);
    const dataOffsetBytes = fileBytes.indexOf(victim.data.subarray(0, 64));
    assert.ok(dataOffsetBytes > 0);
    await flipByte(path, dataOffsetBytes + 1000, 0x20);

    const reports: DamageReport[] = [];
    const scrubber = new Scrubber({ node, rateBytesPerSecond: HIGH_RATE_BYTES_PER_SECOND, reportDamage: async (report) => void reports.push(report) });
    const results = await scrubber.runOnce();
    assert.deepEqual(results.map((result) => [result.volumeId, result.outcome]), [[1, "damaged"], [2, "clean"]]);
    assert.deepEqual(results[0]?.corruptNeedleIds, [victim.needleId]);
    assert.equal(results[0]?.fileChecksumOk, false);
    assert.equal(results[1]?.fileChecksumOk, true);
    assert.deepEqual(reports, [{ volumeId: 1, needleId: victim.needleId, nodeId: TEST_NODE_ID, reason: "checksum-mismatch" }]);
    const kinds = scrubber.findings().map((finding) => [finding.kind, finding.volumeId, finding.needleId, finding.reported]);
    assert.deepEqual(kinds, [["needle-checksum-mismatch", 1, victim.needleId, true], ["file-checksum-mismatch", 1, undefined, undefined]]);
    const stats = scrubber.stats();
    assert.equal(stats.corruptNeedleCount, 1);
    assert.equal(stats.fileChecksumMismatchCount, 1);
    assert.equal(stats.damageReportsSent, 1);
    assert.equal(stats.passCount, 1);
    assert.ok(stats.bytesScrubbed >= 2 * 60_000, `read both volumes whole (${stats.bytesScrubbed} bytes)`);
    // Others still read; the survivors of the clean volume are untouched.
    for (const needle of second.live) assert.ok((await node.readNeedle(needle)).equals(needle.data));

    // Repair writes the good bytes (from another replica) to this node: the sealed volume takes
    // them in place, the needle reads again, and the whole file verifies against its old footer.
    await assert.rejects(node.readNeedle(victim), ChecksumMismatch);
    await node.writeNeedle(victim);
    assert.ok((await node.readNeedle(victim)).equals(victim.data));
    assert.equal((await node.verifySealedVolume(1 as VolumeId)).ok, true);
    const [rescrubbed] = await scrubber.runOnce({ volumeId: 1 as VolumeId });
    assert.equal(rescrubbed?.outcome, "clean");
    assert.equal(reports.length, 1, "nothing new to report");
    // A write of an intact needle to a sealed volume is a retry: acknowledged, file untouched;
    // other bytes under an existing id, or a new needle, are refused as before.
    await node.writeNeedle(second.live[0]!);
    const impostor = { ...second.live[0]!, data: Buffer.from(second.live[0]!.data).fill(7) };
    await assert.rejects(node.writeNeedle({ ...impostor, crc32: crc32(impostor.data) }), VolumeFull);
    await assert.rejects(node.writeNeedle(makeNeedle(2 as VolumeId, 100)), VolumeFull);
    assert.equal((await node.verifySealedVolume(2 as VolumeId)).ok, true);
    await scrubber.stop();
  } finally {
    await node.close();
    await disks.cleanup();
  }
});

test("a flipped byte between mapped needles fails only the file checksum and the volume is rewritten; a failing report is counted", async () => {
  const disks = await makeTemporaryDisks(1);
  const node = await openNode(disks);
  try {
    await fillSealAndDelete(node, 1 as VolumeId, 0.2);
    const path = volumePath(disks.disks[0]!, 1);
    // The tombstone needle written while the volume was writable: no mapping row points at it.
    await flipByte(path, (await firstTombstoneOffset(path)) + 10, 0x20);
    let attempts = 0;
    const rewrites: VolumeId[] = [];
    const scrubber = new Scrubber({
      node,
      rateBytesPerSecond: HIGH_RATE_BYTES_PER_SECOND,
      reportDamage: async () => {
        attempts += 1;
        throw new Error("placement unreachable");
      },
      rewriteVolume: async (volumeId) => {
        rewrites.push(volumeId);
        assert.equal((await node.compactVolume(volumeId, { force: true })).outcome, "compacted");
      },
    });
    const [result] = await scrubber.runOnce();
    assert.equal(result?.outcome, "damaged");
    assert.deepEqual(result?.corruptNeedleIds, []);
    assert.equal(result?.fileChecksumOk, false);
    assert.equal(attempts, 0, "no needle to report");
    // Every live needle verified, so the volume was rewritten (a forced compaction) and heals.
    assert.deepEqual(rewrites, [1]);
    assert.equal((await scrubber.runOnce())[0]?.outcome, "clean");
    assert.equal((await node.verifySealedVolume(1 as VolumeId)).ok, true);

    // Now a live needle too, with placement unreachable: counted and recorded as unreported.
    const row = (node.scrubAccess(1 as VolumeId)?.needlesInFileOrder(-1, 100) ?? []).find((candidate) => (candidate.flags & NEEDLE_FLAG_TOMBSTONE) === 0);
    assert.ok(row !== undefined);
    await flipByte(path, row.offsetBytes + NEEDLE_HEADER_SIZE_BYTES + 5, 0x20);
    const [again] = await scrubber.runOnce();
    assert.deepEqual(again?.corruptNeedleIds, [row.needleId]);
    assert.equal(attempts, 1);
    assert.equal(scrubber.stats().damageReportsFailed, 1);
    assert.equal(scrubber.findings().find((finding) => finding.kind === "needle-checksum-mismatch")?.reported, false);
    assert.deepEqual(rewrites, [1], "no rewrite while a live needle is corrupt: repair fixes it in place first");
    await scrubber.stop();
  } finally {
    await node.close();
    await disks.cleanup();
  }
});

test("the scrubber keeps to its byte rate and foreground reads go on while it runs", async () => {
  const disks = await makeTemporaryDisks(1);
  const node = await openNode(disks);
  try {
    const first = await fillSealAndDelete(node, 1 as VolumeId, 0.2);
    await fillSealAndDelete(node, 2 as VolumeId, 0.2);
    const rateBytesPerSecond = 128 * 1024;
    const scrubber = new Scrubber({ node, rateBytesPerSecond });
    const startedAtMs = Date.now();
    let scrubbing = true;
    const scrub = scrubber.runOnce().finally(() => (scrubbing = false));
    let readsWhileScrubbing = 0;
    while (scrubbing) {
      for (const needle of first.live) assert.ok((await node.readNeedle(needle)).equals(needle.data));
      if (scrubbing) readsWhileScrubbing += first.live.length;
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    const results = await scrub;
    const elapsedMs = Date.now() - startedAtMs;
    const bytesRead = results.reduce((sum, result) => sum + result.bytesRead, 0);
    assert.deepEqual(results.map((result) => result.outcome), ["clean", "clean"]);
    // Two ~62 KiB volumes at 128 KiB/s take about a second. The limiter never runs ahead of the
    // rate, so the time for all but the first 64 KiB (less 10% for timer slack) is a lower bound.
    assert.ok(elapsedMs >= ((bytesRead - 64 * 1024) / rateBytesPerSecond) * 1000 * 0.9, `scrubbed ${bytesRead} bytes in ${elapsedMs} ms`);
    assert.ok(readsWhileScrubbing > 0, "reads were served during the scrub");
    await scrubber.stop();
  } finally {
    await node.close();
    await disks.cleanup();
  }
});

test("a scrub racing a compaction of the same volume reports nothing false and never fails", async () => {
  const disks = await makeTemporaryDisks(1);
  const node = await openNode(disks);
  try {
    const filled = await fillSealAndDelete(node, 1 as VolumeId, 0.7);
    const reports: DamageReport[] = [];
    const scrubber = new Scrubber({ node, rateBytesPerSecond: 64 * 1024, reportDamage: async (report) => void reports.push(report) });
    const scrub = scrubber.runOnce();
    await new Promise((resolve) => setTimeout(resolve, 100));
    const compaction = await node.compactVolume(1 as VolumeId, { garbageRatioMin: 0.3 });
    assert.equal(compaction.outcome, "compacted");
    const [result] = await scrub;
    assert.ok(result?.outcome === "superseded" || result?.outcome === "clean", JSON.stringify(result));
    assert.deepEqual(reports, []);
    const [after] = await scrubber.runOnce();
    assert.equal(after?.outcome, "clean", "the compacted file scrubs clean");
    for (const needle of filled.live) assert.ok((await node.readNeedle(needle)).equals(needle.data));
    await scrubber.stop();
  } finally {
    await node.close();
    await disks.cleanup();
  }
});

test("the data node's damage reports reach placement's reportDamage RPC, past a placement that is down", async () => {
  const received: unknown[] = [];
  const server = http.createServer(
    { noDelay: true },
    createRpcHandler({
      secret: "test-cluster-secret",
      blobSizeBytesMax: 0,
      routes: {
        json: {
          reportDamage: async (body) => {
            received.push(body);
            return null;
          },
        },
      },
    }),
  );
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const disks = await makeTemporaryDisks(1);
  const node = await openNode(disks);
  const sender = new HeartbeatSender({
    dataDirectory: disks.root,
    // Port 9 (discard) on loopback refuses connections: a placement that is down.
    placementAddresses: ["http://127.0.0.1:9", `http://127.0.0.1:${(server.address() as AddressInfo).port}`],
    secret: "test-cluster-secret",
    address: "http://127.0.0.1:9999",
    zone: "zone-a",
    rack: "rack-a",
    diskDirectories: disks.disks,
    writeCounters: new WriteStats(),
    timeoutMs: 2_000,
  });
  try {
    const filled = await fillSealAndDelete(node, 1 as VolumeId, 0.2);
    const path = volumePath(disks.disks[0]!, 1);
    const victim = filled.live[0]!;
    const dataOffsetBytes = (await readFile(path)).indexOf(victim.data.subarray(0, 64));
    await flipByte(path, dataOffsetBytes + 7, 0x20);
    const scrubber = new Scrubber({ node, rateBytesPerSecond: HIGH_RATE_BYTES_PER_SECOND, reportDamage: (report) => sender.reportDamage(report) });
    await scrubber.runOnce();
    assert.deepEqual(received, [{ volumeId: 1, needleId: victim.needleId, nodeId: TEST_NODE_ID, reason: "checksum-mismatch" }]);
    assert.equal(scrubber.stats().damageReportsSent, 1);
    await scrubber.stop();
  } finally {
    await sender.stop();
    await node.close();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await disks.cleanup();
  }
});

test("background scrubbing reads each volume when it is due, and the schedule survives a restart", async () => {
  const disks = await makeTemporaryDisks(1);
  let node = await openNode(disks);
  let nowMs = 1_000_000;
  const clock = { nowMs: () => nowMs };
  const intervalMs = 60_000;
  try {
    await fillSealAndDelete(node, 1 as VolumeId, 0.2);
    await fillSealAndDelete(node, 2 as VolumeId, 0.2);
    let scrubber = new Scrubber({ node, rateBytesPerSecond: HIGH_RATE_BYTES_PER_SECOND, intervalMs, clock });
    assert.deepEqual((await scrubber.runOnce({ dueOnly: true })).map((result) => result.volumeId), [1, 2], "never scrubbed: both due");
    assert.deepEqual(await scrubber.runOnce({ dueOnly: true }), [], "just scrubbed: none due");
    await scrubber.stop();

    await node.close();
    node = await openNode(disks);
    scrubber = new Scrubber({ node, rateBytesPerSecond: HIGH_RATE_BYTES_PER_SECOND, intervalMs, clock });
    nowMs += intervalMs / 2;
    assert.deepEqual(await scrubber.runOnce({ dueOnly: true }), [], "a restart does not make them due");
    assert.equal((await scrubber.runOnce({ volumeId: 2 as VolumeId }))[0]?.outcome, "clean", "an explicit request scrubs at once");
    nowMs += intervalMs / 2;
    assert.deepEqual((await scrubber.runOnce({ dueOnly: true })).map((result) => result.volumeId), [1], "volume 1 is due again, 2 was scrubbed later");
    await scrubber.stop();
  } finally {
    await node.close();
    await disks.cleanup();
  }
});
