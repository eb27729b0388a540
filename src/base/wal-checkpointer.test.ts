import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import Database from "better-sqlite3";
import { BackgroundCheckpoints } from "./wal-checkpointer.js";

function newDatabase(t: { after: (fn: () => void) => void }): { db: Database.Database; path: string } {
  const directory = mkdtempSync(join(tmpdir(), "cairn-checkpoint-"));
  t.after(() => rmSync(directory, { recursive: true, force: true }));
  const path = join(directory, "db.sqlite");
  const db = new Database(path);
  db.pragma("journal_mode = WAL");
  db.pragma("synchronous = NORMAL");
  db.exec("CREATE TABLE rows (id INTEGER PRIMARY KEY, payload BLOB NOT NULL)");
  return { db, path };
}

/** Commits of random rows, each of its own transaction, as a data node's group commits are. */
function writeRows(db: Database.Database, commitCount: number, firstId: number): void {
  const insert = db.prepare("INSERT INTO rows (id, payload) VALUES (?, randomblob(3000))");
  for (let commit = 0; commit < commitCount; commit += 1) insert.run(firstId + commit);
}

async function until(condition: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!condition()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting until ${what}`);
    await sleep(20);
  }
}

test("the checkpoint thread copies the WAL into the database while the writer's own checkpoints are off", async (t) => {
  const { db, path } = newDatabase(t);
  const databaseBytesBefore = statSync(path).size;
  const checkpoints = BackgroundCheckpoints.start(db);
  assert.ok(checkpoints !== undefined);
  assert.equal(db.pragma("wal_autocheckpoint", { simple: true }), 0);
  // About 3,000 pages: SQLite's own threshold (1,000) would have checkpointed three times.
  writeRows(db, 3_000, 0);
  // Only a checkpoint writes pages into the database file; this connection runs none.
  await until(() => statSync(path).size > databaseBytesBefore + 4 * 1024 * 1024, "the database file holds the rows");
  await checkpoints.close();
  db.close();
  // The writer was the last connection: the checkpoint thread had let go of the file.
  assert.equal(existsSync(`${path}-wal`), false);
  const reopened = new Database(path, { readonly: true });
  assert.equal((reopened.prepare("SELECT COUNT(*) AS n FROM rows").get() as { n: number }).n, 3_000);
  reopened.close();
});

test("under writes that never pause the WAL still starts over, cut back to its size limit", async (t) => {
  const { db, path } = newDatabase(t);
  const limitBytes = 1024 * 1024;
  const checkpoints = BackgroundCheckpoints.start(db, { walRestartBytes: limitBytes });
  assert.ok(checkpoints !== undefined);
  let nextId = 0;
  let walBytesMax = 0;
  let shrankFromBytes: number | undefined;
  // Commits in short bursts between turns of the event loop, for three and a half seconds (the
  // thread checkpoints once a second), until the WAL has started over at least once.
  const deadline = Date.now() + 3_500;
  while (Date.now() < deadline) {
    writeRows(db, 5, nextId);
    nextId += 5;
    const walBytes = statSync(`${path}-wal`).size;
    // Only a start-over shrinks the file (journal_size_limit cuts it); appends only grow it.
    if (walBytes < walBytesMax && walBytesMax > limitBytes) shrankFromBytes ??= walBytesMax;
    walBytesMax = Math.max(walBytesMax, walBytes);
    await sleep(1);
  }
  await checkpoints.close();
  assert.ok(shrankFromBytes !== undefined, `the WAL never started over (it grew to ${walBytesMax} bytes, ${nextId} rows written)`);
  db.close();
});

test("an in-memory database keeps SQLite's own checkpoints", () => {
  const db = new Database(":memory:");
  assert.equal(BackgroundCheckpoints.start(db), undefined);
  db.close();
});

test("a process that registered a database exits by itself (the checkpoint thread does not hold it)", (t) => {
  const directory = mkdtempSync(join(tmpdir(), "cairn-checkpoint-exit-"));
  t.after(() => rmSync(directory, { recursive: true, force: true }));
  const script = `
    import Database from "better-sqlite3";
    import { BackgroundCheckpoints } from ${JSON.stringify(new URL("./wal-checkpointer.js", import.meta.url).href)};
    const db = new Database(${JSON.stringify(join(directory, "db.sqlite"))});
    db.pragma("journal_mode = WAL");
    db.exec("CREATE TABLE t (x)");
    BackgroundCheckpoints.start(db);
    db.exec("INSERT INTO t VALUES (1)");
  `;
  const result = spawnSync(process.execPath, ["--input-type=module", "-e", script], { timeout: 15_000, encoding: "utf8", cwd: process.cwd() });
  assert.equal(result.signal, null, "the process exited before the timeout");
  assert.equal(result.status, 0, result.stderr);
});
