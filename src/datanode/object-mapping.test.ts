import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { NeedleId, VolumeId } from "../base/index.js";
import { NEEDLE_FLAG_TOMBSTONE } from "./needle-codec.js";
import { ObjectMapping } from "./object-mapping.js";

/** Opens the mapping at `path` in a fresh process and prints "opened" or the error's name. */
function openInAnotherProcess(path: string): string {
  const script = `
    import { ObjectMapping } from ${JSON.stringify(new URL("./object-mapping.js", import.meta.url).href)};
    try {
      const mapping = ObjectMapping.open(${JSON.stringify(path)});
      await mapping.close();
      console.log("opened");
    } catch (error) {
      console.log(error.name);
    }
  `;
  const result = spawnSync(process.execPath, ["--input-type=module", "-e", script], { timeout: 15_000, encoding: "utf8" });
  assert.equal(result.status, 0, result.stderr);
  return result.stdout.trim();
}

test("a second process cannot open a data node's mapping while one holds it, and can once it is closed", async (t) => {
  const directory = mkdtempSync(join(tmpdir(), "cairn-mapping-"));
  t.after(() => rmSync(directory, { recursive: true, force: true }));
  const path = join(directory, "mapping.sqlite");
  const mapping = ObjectMapping.open(path);
  assert.equal(openInAnotherProcess(path), "MappingInUse");
  await mapping.close();
  assert.equal(openInAnotherProcess(path), "opened");
});

test("lookups find every row whatever its id's place: above, at and below the newest id, after inserts and after reopening", async (t) => {
  const directory = mkdtempSync(join(tmpdir(), "cairn-mapping-"));
  t.after(() => rmSync(directory, { recursive: true, force: true }));
  const path = join(directory, "mapping.sqlite");
  const volumeId = 7 as VolumeId;
  const otherVolumeId = 8 as VolumeId;
  const id = (last: string) => ("0".repeat(31) + last) as NeedleId;
  let mapping = ObjectMapping.open(path);
  mapping.insertVolume({ volumeId, state: "writable", mappedUpToBytes: 0, fileCrc32UpTo: 0 });
  mapping.insertVolume({ volumeId: otherVolumeId, state: "writable", mappedUpToBytes: 0, fileCrc32UpTo: 0 });
  const progress = (upTo: number) => ({ mappedUpToBytes: upTo, fileCrc32UpTo: 0, state: "writable" as const });
  // An id no row has, in an empty volume.
  assert.equal(mapping.lookup(volumeId, id("5")), undefined);
  mapping.applyAppends(volumeId, [{ needleId: id("5"), offsetBytes: 32, dataSizeBytes: 10, flags: 0 }], progress(64));
  assert.equal(mapping.lookup(volumeId, id("5"))?.offsetBytes, 32);
  // A newer id after that lookup, then an older one: both found.
  mapping.applyAppends(volumeId, [{ needleId: id("9"), offsetBytes: 64, dataSizeBytes: 10, flags: 0 }], progress(96));
  mapping.applyAppends(volumeId, [{ needleId: id("2"), offsetBytes: 96, dataSizeBytes: 10, flags: 0 }], progress(128));
  assert.equal(mapping.lookup(volumeId, id("9"))?.offsetBytes, 64);
  assert.equal(mapping.lookup(volumeId, id("2"))?.offsetBytes, 96);
  // A tombstone of an id newer than every row (recorded only in the mapping) is found.
  await mapping.recordTombstonesDurably([{ volumeId, needleId: id("f") }]);
  // NORMAL (1): the tombstone's commit was made durable by an fdatasync of the WAL on libuv's
  // thread pool, not by an fsync inside COMMIT on the event loop.
  assert.deepEqual(mapping.durabilitySettings(), { synchronous: 1, tombstonesSyncedOnThreadPool: true });
  assert.equal(mapping.lookup(volumeId, id("f"))?.flags, NEEDLE_FLAG_TOMBSTONE);
  assert.equal(mapping.lookup(volumeId, id("e")), undefined);
  // Another volume's ids say nothing about this one.
  mapping.applyAppends(otherVolumeId, [{ needleId: id("a"), offsetBytes: 32, dataSizeBytes: 1, flags: 0 }], progress(64));
  assert.equal(mapping.lookup(volumeId, id("a")), undefined);
  await mapping.close();

  mapping = ObjectMapping.open(path);
  t.after(() => mapping.close());
  assert.equal(mapping.lookup(volumeId, id("f"))?.flags, NEEDLE_FLAG_TOMBSTONE);
  assert.equal(mapping.lookup(volumeId, id("9"))?.offsetBytes, 64);
  assert.equal(mapping.lookup(otherVolumeId, id("a"))?.offsetBytes, 32);
  assert.equal(mapping.lookup(otherVolumeId, id("b")), undefined);
});
