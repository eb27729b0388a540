// Runs the MetadataStore contract on the SQLite engine over temporary database files, then
// proves what is SQLite's own: durable settings and the schema version survive close and reopen,
// and a delimiter listing of a big bucket seeks past common prefixes instead of reading every
// key (counted in rows SQLite returned, not in time).
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Worker } from "node:worker_threads";
import Database from "better-sqlite3";
import { loopTurnsDuring } from "../../../test/helpers/loop-turns.js";
import { makeBucket, makeVersion, runMetadataStoreContract } from "../metadata-store.contract.js";
import { NULL_VERSION_ID } from "../metadata-store.js";
import { SCHEMA_VERSION_LATEST } from "./schema.js";
import { SqliteMetadataStore } from "./sqlite-metadata-store.js";

const directory = mkdtempSync(join(tmpdir(), "cairn-meta-"));
after(() => rmSync(directory, { recursive: true, force: true }));
let databaseCount = 0;

function newDatabasePath(): string {
  databaseCount += 1;
  return join(directory, `metadata-${databaseCount}.sqlite`);
}

runMetadataStoreContract("sqlite (temp file)", async () => SqliteMetadataStore.open(newDatabasePath()));

test("committed metadata survives close and reopen, with WAL synced before every ack and the schema version", async () => {
  const path = newDatabasePath();
  const first = SqliteMetadataStore.open(path);
  await first.createBucket({ name: "bucket-a", ownerId: "owner", createdAtMs: 1, region: "r", versioning: "Enabled", acl: "private", tags: {} });
  const version = { ...makeVersion("bucket-a", "key", NULL_VERSION_ID), versionId: "0190a1b2c3d4e5f60718293a4b5c6d7e" };
  await first.putObjectVersion(version);
  await first.close();

  const second = SqliteMetadataStore.open(path);
  assert.deepEqual(await second.getObjectVersion("bucket-a", "key"), version);
  assert.equal((await second.getBucket("bucket-a"))?.versioning, "Enabled");
  await second.close();

  const third = SqliteMetadataStore.open(path);
  // NORMAL only because the store fdatasyncs the WAL itself before any write resolves.
  // Checkpoints (and their fsyncs) run on the checkpoint thread, never inside a COMMIT.
  assert.deepEqual(third.durabilitySettings(), {
    journalMode: "wal",
    synchronous: "NORMAL",
    walSyncedBeforeAck: true,
    checkpointsInBackground: true,
    walAutocheckpointPages: 0,
    schemaVersion: SCHEMA_VERSION_LATEST,
  });
  await third.close();
});

test("a read that sees a committed write answers only once that write is durable", async () => {
  const path = newDatabasePath();
  const store = SqliteMetadataStore.open(path);
  await store.createBucket({ name: "bucket-b", ownerId: "owner", createdAtMs: 1, region: "r", versioning: "Unversioned", acl: "private", tags: {} });
  const settled: string[] = [];
  const version = makeVersion("bucket-b", "key", NULL_VERSION_ID);
  const write = store.putObjectVersion(version).then(() => settled.push("write"));
  // The batch commits on the next turn; the read runs right after the COMMIT, before the fsync.
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(settled.length, 0, "the write is not acknowledged before its WAL fsync");
  const read = store.getObjectVersion("bucket-b", "key").then((found) => {
    settled.push("read");
    return found;
  });
  const [, found] = await Promise.all([write, read]);
  assert.deepEqual(found, version, "the read saw the committed write");
  assert.deepEqual(settled, ["write", "read"], "and answered no earlier than the write was acknowledged");
  await store.close();
});

test("a bucket or key read before a write's commit answers without waiting for that write's fsync", async () => {
  const store = SqliteMetadataStore.open(newDatabasePath());
  await store.createBucket({ name: "bucket-c", ownerId: "owner", createdAtMs: 1, region: "r", versioning: "Unversioned", acl: "private", tags: {} });
  const hot = makeVersion("bucket-c", "hot", NULL_VERSION_ID);
  await store.putObjectVersion(hot);
  // Read once: from here they are answered from memory.
  await store.getBucket("bucket-c");
  await store.getObjectVersion("bucket-c", "hot");
  const settled: string[] = [];
  const write = store.putObjectVersion(makeVersion("bucket-c", "other", NULL_VERSION_ID)).then(() => settled.push("write"));
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(settled.length, 0, "the other key's write is committed, its WAL fsync in flight");
  const bucketRead = store.getBucket("bucket-c").then(() => settled.push("bucket"));
  const keyRead = store.getObjectVersion("bucket-c", "hot").then((found) => {
    settled.push("key");
    return found;
  });
  const [, , found] = await Promise.all([write, bucketRead, keyRead]);
  assert.deepEqual(found, hot);
  // Every PUT looks its bucket up first: it should not wait for the fsync of other PUTs.
  assert.deepEqual(settled, ["bucket", "key", "write"]);
  await store.close();
});

test("a value read while the write that made it is being fsynced is answered no earlier than that write", async () => {
  const store = SqliteMetadataStore.open(newDatabasePath());
  await store.createBucket({ name: "bucket-d", ownerId: "owner", createdAtMs: 1, region: "r", versioning: "Unversioned", acl: "private", tags: {} });
  const version = makeVersion("bucket-d", "key", NULL_VERSION_ID);
  const settled: string[] = [];
  const write = store.putObjectVersion(version).then(() => settled.push("write"));
  await new Promise((resolve) => setImmediate(resolve));
  // The first read fills the cache with the not yet durable row; the second is answered from it.
  const reads = [1, 2].map((index) => store.getObjectVersion("bucket-d", "key").then(() => settled.push(`read ${index}`)));
  await Promise.all([write, ...reads]);
  assert.deepEqual(settled, ["write", "read 1", "read 2"]);
  await store.close();
});

test("a database from before inline_crc32 migrates: its inline rows read back without a CRC32, new ones with one", async () => {
  const path = newDatabasePath();
  const first = SqliteMetadataStore.open(path);
  await first.createBucket(makeBucket("bucket-a"));
  const data = Buffer.from("inline bytes from an older build");
  const older = makeVersion("bucket-a", "older", NULL_VERSION_ID, { sizeBytes: data.length, chunks: [], inlineData: data });
  await first.putObjectVersion(older);
  await first.close();
  // Back to schema version 2, as that build left it.
  const raw = new Database(path);
  raw.exec("ALTER TABLE object_versions DROP COLUMN inline_crc32");
  raw.pragma("user_version = 2");
  raw.close();

  const second = SqliteMetadataStore.open(path);
  assert.equal(SCHEMA_VERSION_LATEST, 3);
  assert.equal(second.durabilitySettings().schemaVersion, SCHEMA_VERSION_LATEST);
  assert.deepEqual(await second.getObjectVersion("bucket-a", "older"), older);
  const newer = makeVersion("bucket-a", "newer", NULL_VERSION_ID, { sizeBytes: data.length, chunks: [], inlineData: data, inlineCrc32: 1234 });
  await second.putObjectVersion(newer);
  assert.deepEqual(await second.getObjectVersion("bucket-a", "newer"), newer);
  await second.close();
});

test("the latest-version cache keeps inline bytes in shared slabs, not a buffer each", async () => {
  const store = SqliteMetadataStore.open(":memory:");
  await store.createBucket(makeBucket("bucket-a"));
  const versions = ["one", "two", "three"].map((key, index) => {
    const data = Buffer.alloc(3000, index + 1);
    return makeVersion("bucket-a", key, NULL_VERSION_ID, { sizeBytes: data.length, chunks: [], inlineData: data, inlineCrc32: index });
  });
  for (const version of versions) await store.putObjectVersion(version);
  const read = await Promise.all(versions.map((version) => store.getObjectVersion("bucket-a", version.key)));
  read.forEach((version, index) => assert.deepEqual(version, versions[index]));
  assert.equal(new Set(read.map((version) => version!.inlineData!.buffer)).size, 1, "one slab holds the three");
  const again = await store.getObjectVersion("bucket-a", "two");
  assert.equal(again!.inlineData, read[1]!.inlineData, "a hit answers the cached copy");
  await store.close();
});

test("a database from a newer build is refused rather than misread", () => {
  const path = newDatabasePath();
  const raw = new Database(path);
  raw.pragma(`user_version = ${SCHEMA_VERSION_LATEST + 1}`);
  raw.close();
  assert.throws(() => SqliteMetadataStore.open(path), /newer than this build/);
});

test("listing seeks the newest-first index: no full scan, no sort", () => {
  const store = SqliteMetadataStore.open(":memory:");
  const plan = store.explainListingPlan().join("\n");
  assert.match(plan, /SEARCH object_versions USING (COVERING )?INDEX object_versions_newest_first \(bucket=\? AND key>\?\)/);
  assert.doesNotMatch(plan, /TEMP B-TREE/);
  assert.doesNotMatch(plan, /SCAN/);
});

test("a delimiter listing of 20,000 keys under 200 prefixes reads about one row per prefix", async () => {
  const store = SqliteMetadataStore.open(":memory:");
  await store.createBucket({ name: "big", ownerId: "owner", createdAtMs: 1, region: "r", versioning: "Unversioned", acl: "private", tags: {} });
  const prefixCount = 200;
  const keysPerPrefix = 100;
  for (let prefixIndex = 0; prefixIndex < prefixCount; prefixIndex += 1) {
    for (let keyIndex = 0; keyIndex < keysPerPrefix; keyIndex += 1) {
      const prefix = `tenant-${String(prefixIndex).padStart(3, "0")}/`;
      await store.putObjectVersion(makeVersion("big", `${prefix}object-${String(keyIndex).padStart(5, "0")}`, NULL_VERSION_ID));
    }
  }
  const rowsBefore = store.counters.listRowsRead;
  const statementsBefore = store.counters.listStatementsRun;
  const page = await store.listObjects({ bucket: "big", prefix: "", delimiter: "/", startAfter: undefined, maxKeys: 1000 });
  const rowsRead = store.counters.listRowsRead - rowsBefore;
  const statementsRun = store.counters.listStatementsRun - statementsBefore;
  assert.equal(page.commonPrefixes.length, prefixCount);
  assert.equal(page.objects.length, 0);
  assert.equal(page.isTruncated, false);
  // One seek lands on the first key of each prefix, plus the seek that finds the end.
  assert.equal(rowsRead, prefixCount);
  assert.equal(statementsRun, prefixCount + 1);

  // A page of 10 prefixes in the middle reads 12 rows wherever it starts: the first key of the
  // prefix named by startAfter (skipped), the 10 listed, and one more that proves truncation.
  const middleBefore = store.counters.listRowsRead;
  const middle = await store.listObjects({ bucket: "big", prefix: "", delimiter: "/", startAfter: "tenant-100/", maxKeys: 10 });
  assert.deepEqual(middle.commonPrefixes[0], "tenant-101/");
  assert.equal(middle.isTruncated, true);
  assert.equal(store.counters.listRowsRead - middleBefore, 12);

  // Inside one prefix, a page of 5 keys reads 6 rows (the sixth proves truncation).
  const insideBefore = store.counters.listRowsRead;
  const inside = await store.listObjects({ bucket: "big", prefix: "tenant-007/", delimiter: "/", startAfter: undefined, maxKeys: 5 });
  assert.equal(inside.objects.length, 5);
  assert.equal(store.counters.listRowsRead - insideBefore, 6);
  await store.close();
});

test("a 1,000-key page is read in turns: the event loop runs between them, and writes landing meanwhile keep the page in order", async () => {
  // A budget of 0: a turn every few rows, however fast the machine (the default is 1 ms a turn).
  const store = SqliteMetadataStore.open(":memory:", { listTurnBudgetMs: 0 });
  await store.createBucket({ name: "turns", ownerId: "owner", createdAtMs: 1, region: "r", versioning: "Unversioned", acl: "private", tags: {} });
  const keyOf = (index: number) => `key-${String(index).padStart(5, "0")}`;
  for (let index = 0; index < 6000; index += 2) await store.putObjectVersion(makeVersion("turns", keyOf(index), NULL_VERSION_ID));
  const { value: page, loopTurns: turnsOfTheLoop } = await loopTurnsDuring(
    () => store.listObjects({ bucket: "turns", prefix: "", delimiter: undefined, startAfter: undefined, maxKeys: 1000 }),
    (turn) => {
      // Keys written while the page is being read: before and after the cursor.
      void store.putObjectVersion(makeVersion("turns", keyOf(2 * turn + 1), NULL_VERSION_ID));
      void store.putObjectVersion(makeVersion("turns", keyOf(1800 - 2 * turn + 1), NULL_VERSION_ID));
    },
  );
  assert.ok(turnsOfTheLoop >= 20, `the loop ran ${turnsOfTheLoop} times while 1,000 keys were listed`);
  assert.equal(page.objects.length, 1000);
  assert.equal(page.isTruncated, true);
  const keys = page.objects.map((object) => object.key);
  for (let index = 1; index < keys.length; index++) assert.ok(keys[index - 1]! < keys[index]!, `${keys[index - 1]} then ${keys[index]}`);
  assert.equal(page.nextStartAfter, keys[keys.length - 1]);
  await store.close();
});

test("a page of versions and a page of uploads are read in turns as well, and come out as in one piece", async () => {
  const path = newDatabasePath();
  const inTurns = SqliteMetadataStore.open(path, { listTurnBudgetMs: 0 });
  await inTurns.createBucket({ name: "versions", ownerId: "owner", createdAtMs: 1, region: "r", versioning: "Enabled", acl: "private", tags: {} });
  const keyOf = (index: number) => `dir-${index % 7}/key-${String(index).padStart(4, "0")}`;
  for (let index = 0; index < 600; index += 1) {
    const version = { ...makeVersion("versions", keyOf(index % 300), "unset"), versionId: `0190a1b2c3d4e5f6${String(index).padStart(16, "0")}` };
    await inTurns.putObjectVersion(version);
    if (index % 3 === 0) {
      await inTurns.createMultipartUpload({
        uploadId: `upload-${String(index).padStart(4, "0")}`,
        bucket: "versions",
        key: keyOf(index),
        initiatedAtMs: index,
        ownerId: "owner",
        storageClass: "STANDARD",
        contentType: undefined,
        systemMetadata: {},
        userMetadata: {},
        tags: {},
        checksumAlgorithm: undefined,
      });
    }
  }
  const {
    value: [versions, uploads],
    loopTurns: turnsOfTheLoop,
  } = await loopTurnsDuring(async () => [
    await inTurns.listObjectVersions({ bucket: "versions", prefix: "", delimiter: undefined, keyMarker: undefined, versionIdMarker: undefined, maxKeys: 1000 }),
    await inTurns.listMultipartUploads({ bucket: "versions", prefix: "", delimiter: undefined, keyMarker: undefined, uploadIdMarker: undefined, maxUploads: 1000 }),
  ] as const);
  assert.ok(turnsOfTheLoop >= 20, `the loop ran ${turnsOfTheLoop} times while the two pages were listed`);
  assert.equal(versions.versions.length, 600);
  assert.equal(uploads.uploads.length, 200);
  await assert.rejects(
    inTurns.listObjectVersions({ bucket: "missing", prefix: "", delimiter: undefined, keyMarker: undefined, versionIdMarker: undefined, maxKeys: 10 }),
    { name: "NoSuchBucket" },
  );

  // The same pages read by a store whose budget fits a whole page in one turn.
  const pages = async (store: SqliteMetadataStore) => {
    const found = [];
    for (const { maxKeys, delimiter } of [
      { maxKeys: 1000, delimiter: undefined },
      { maxKeys: 250, delimiter: "/" },
      { maxKeys: 3, delimiter: "/" },
      { maxKeys: 7, delimiter: undefined },
    ]) {
      found.push(await store.listObjectVersions({ bucket: "versions", prefix: "", delimiter, keyMarker: undefined, versionIdMarker: undefined, maxKeys }));
      found.push(await store.listObjectVersions({ bucket: "versions", prefix: "dir-3/", delimiter, keyMarker: "dir-3/key-0010", versionIdMarker: undefined, maxKeys }));
      found.push(await store.listMultipartUploads({ bucket: "versions", prefix: "", delimiter, keyMarker: undefined, uploadIdMarker: undefined, maxUploads: maxKeys }));
    }
    return found;
  };
  const turned = await pages(inTurns);
  await inTurns.close();
  const whole = SqliteMetadataStore.open(path, { listTurnBudgetMs: 60_000 });
  assert.deepEqual(turned, await pages(whole));
  await whole.close();
});

/**
 * Two threads with their own connections race If-None-Match: * writes on the same keys. Each
 * write is a BEGIN IMMEDIATE transaction, so one waits (busy_timeout) while the other checks and
 * writes; exactly one writer wins each key and no write fails with SQLITE_BUSY.
 */
test("two connections racing If-None-Match: * on the same keys: one winner per key", async (t) => {
  const path = newDatabasePath();
  const setup = SqliteMetadataStore.open(path);
  await setup.createBucket({ name: "race", ownerId: "owner", createdAtMs: 1, region: "r", versioning: "Enabled", acl: "private", tags: {} });
  await setup.close();
  const keyCount = 300;
  const storeUrl = new URL("./sqlite-metadata-store.js", import.meta.url).href;
  const workerSource = `
    const { workerData, parentPort } = require("node:worker_threads");
    (async () => {
      const { SqliteMetadataStore } = await import(workerData.storeUrl);
      const store = SqliteMetadataStore.open(workerData.path);
      // Start together: each thread announces itself, then waits until both have.
      const barrier = new Int32Array(workerData.barrier);
      Atomics.add(barrier, 0, 1);
      Atomics.notify(barrier, 0);
      while (Atomics.load(barrier, 0) < 2) Atomics.wait(barrier, 0, 1, 10);
      const outcomes = { won: [], lost: 0, other: [] };
      // One thread walks the keys up, the other down: they meet, and contend, in the middle.
      for (let step = 0; step < workerData.keyCount; step += 1) {
        const index = workerData.worker === "left" ? step : workerData.keyCount - 1 - step;
        const version = { ...workerData.version, key: "key-" + index, versionId: workerData.worker + "-" + index };
        try {
          await store.putObjectVersion(version, { ifNoneMatchAny: true });
          outcomes.won.push(index);
        } catch (error) {
          if (error.name === "PreconditionFailed") outcomes.lost += 1;
          else outcomes.other.push(String(error));
        }
      }
      await store.close();
      parentPort.postMessage(outcomes);
    })();
  `;
  const barrier = new SharedArrayBuffer(4);
  const runWorker = (worker: string) =>
    new Promise<{ won: number[]; lost: number; other: string[] }>((resolve, reject) => {
      const thread = new Worker(workerSource, {
        eval: true,
        workerData: { storeUrl, path, keyCount, worker, barrier, version: makeVersion("race", "", NULL_VERSION_ID) },
      });
      thread.once("message", resolve);
      thread.once("error", reject);
    });
  const [left, right] = await Promise.all([runWorker("left"), runWorker("right")]);
  t.diagnostic(`wins: left ${left.won.length}, right ${right.won.length}`);
  assert.deepEqual([left.other, right.other], [[], []]);
  const winners = [...left.won, ...right.won].sort((a, b) => a - b);
  assert.deepEqual(winners, Array.from({ length: keyCount }, (_, index) => index));
  assert.equal(left.lost + right.lost, keyCount);
  const check = SqliteMetadataStore.open(path);
  const page = await check.listObjectVersions({ bucket: "race", prefix: "", delimiter: undefined, keyMarker: undefined, versionIdMarker: undefined, maxKeys: 1000 });
  assert.equal(page.versions.length, keyCount);
  await check.close();
});

test("concurrent writes share one durable commit, and a failing write fails alone", async () => {
  const store = SqliteMetadataStore.open(newDatabasePath());
  try {
    await store.createBucket(makeBucket("group"));
    await store.putObjectVersion(makeVersion("group", "taken", NULL_VERSION_ID));
    const commitsBefore = store.counters.writeCommits;
    const writes = Array.from({ length: 100 }, (_, index) => store.putObjectVersion(makeVersion("group", `key-${index}`, NULL_VERSION_ID)));
    const conflicting = store.putObjectVersion(makeVersion("group", "taken", NULL_VERSION_ID), { ifNoneMatchAny: true });
    await Promise.all(writes);
    await assert.rejects(conflicting, (error: unknown) => (error as Error).name === "PreconditionFailed");
    const commits = store.counters.writeCommits - commitsBefore;
    assert.ok(commits >= 1 && commits <= 2, `101 writes took ${commits} commits`);
    const listed = await store.listObjects({ bucket: "group", prefix: "key-", delimiter: undefined, startAfter: undefined, maxKeys: 1000 });
    assert.equal(listed.objects.length, 100);
  } finally {
    await store.close();
  }
});

test("a write that fails inside a batch undoes only itself; the writes before and after it commit", async () => {
  const store = SqliteMetadataStore.open(newDatabasePath());
  await store.createBucket(makeBucket("bucket-c"));
  const commitsBefore = store.counters.writeCommits;
  // Issued in one turn, so they form one batch: a put, a failing put (no such bucket), a
  // duplicate create (fails after its own reads), and two puts after them.
  const results = await Promise.allSettled([
    store.putObjectVersion(makeVersion("bucket-c", "first", NULL_VERSION_ID)),
    store.putObjectVersion(makeVersion("missing-bucket", "key", NULL_VERSION_ID)),
    store.createBucket(makeBucket("bucket-c")),
    store.putObjectVersion(makeVersion("bucket-c", "second", NULL_VERSION_ID)),
    store.updateBucket("bucket-c", { tags: { kept: "yes" } }),
  ]);
  assert.deepEqual(results.map((result) => result.status), ["fulfilled", "rejected", "rejected", "fulfilled", "fulfilled"]);
  assert.equal(store.counters.writeCommits, commitsBefore + 1, "the batch committed once");
  assert.ok(await store.getObjectVersion("bucket-c", "first"));
  assert.ok(await store.getObjectVersion("bucket-c", "second"));
  assert.equal(await store.getObjectVersion("missing-bucket", "key"), undefined);
  assert.deepEqual((await store.getBucket("bucket-c"))?.tags, { kept: "yes" });
  await store.close();
});
