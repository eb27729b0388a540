// Runs the MetadataStore contract on the PostgreSQL engine, each store in a fresh schema that is
// dropped on close, then proves what is PostgreSQL's own: conditional writes stay atomic across
// two pools (two gateways), concurrent opens migrate once, a newer schema is refused, commits
// stay durable, and a delimiter listing visits about one index row per common prefix in one
// statement (counted by EXPLAIN ANALYZE, not by time).
//
// Needs CAIRN_TEST_POSTGRES_URL, e.g. postgres://cairn:cairn@127.0.0.1:5432/cairn_test
// (`bash scripts/start-postgres.sh` starts a local server and prints it). Without it the tests
// are reported as skipped with the reason, except under CI=true, where that is a failure.
import { test, after, describe } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import pg from "pg";
import { BucketNotEmpty, NoSuchBucket, PreconditionFailed } from "../errors.js";
import { makeBucket, makeChunk, makeVersion, runMetadataStoreContract } from "../metadata-store.contract.js";
import { NULL_VERSION_ID } from "../metadata-store.js";
import type { ObjectVersion } from "../metadata-store.js";
import { MIGRATIONS_TABLE, POSTGRES_SCHEMA_VERSION_LATEST } from "./schema.js";
import { PostgresMetadataStore } from "./postgres-metadata-store.js";

const connectionString = process.env["CAIRN_TEST_POSTGRES_URL"] ?? "";
const SKIP_REASON = "CAIRN_TEST_POSTGRES_URL is not set (bash scripts/start-postgres.sh starts a local PostgreSQL and prints it)";

function newSchemaName(): string {
  return `t_${randomBytes(6).toString("hex")}`;
}

/** Finds the first plan node of `nodeType` in an EXPLAIN (FORMAT JSON) tree. */
function findPlanNode(node: unknown, nodeType: string): Record<string, unknown> | undefined {
  if (typeof node !== "object" || node === null) return undefined;
  const record = node as Record<string, unknown>;
  if (record["Node Type"] === nodeType) return record;
  const children = [record["Plan"], ...((record["Plans"] as unknown[] | undefined) ?? [])];
  for (const child of Array.isArray(node) ? node : children) {
    const found = findPlanNode(child, nodeType);
    if (found !== undefined) return found;
  }
  return undefined;
}

if (connectionString === "") {
  if (process.env["CI"] === "true") {
    test("PostgreSQL metadata store runs in CI", () => {
      assert.fail(`CI must run the PostgreSQL contract, but ${SKIP_REASON}`);
    });
  } else {
    test("PostgreSQL metadata store", { skip: SKIP_REASON }, () => {});
  }
} else {
  // Creates rows behind the stores' backs and drops the schemas the tests created.
  const admin = new pg.Pool({ connectionString, max: 2 });
  admin.on("error", () => undefined); // an idle admin connection dropping is no test failure
  after(() => admin.end());
  const dropSchema = (schema: string) => admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);

  runMetadataStoreContract(
    "postgres (fresh schema per store)",
    async () => PostgresMetadataStore.open(connectionString, { schema: newSchemaName(), poolSize: 4 }),
    async (store) => {
      assert.ok(store instanceof PostgresMetadataStore);
      await store.close();
      await dropSchema(store.schemaName);
    },
  );

  describe("PostgreSQL engine", () => {
    test("two stores (two pools) racing If-None-Match: * on the same keys: exactly one winner per key", async () => {
      const schema = newSchemaName();
      // Opening both at once also races the migrations: the advisory lock makes one apply them.
      const [storeA, storeB] = await Promise.all([
        PostgresMetadataStore.open(connectionString, { schema, poolSize: 8 }),
        PostgresMetadataStore.open(connectionString, { schema, poolSize: 8 }),
      ]);
      try {
        // Enabled: racing writers carry different version ids, so no unique index can save us;
        // only the per-key lock around check-and-insert does.
        await storeA.createBucket(makeBucket("race", "Enabled"));
        const keyCount = 100;
        const writersPerStore = 2;
        const attempts: Array<Promise<{ key: string; etag: string; won: boolean }>> = [];
        for (let keyIndex = 0; keyIndex < keyCount; keyIndex += 1) {
          const key = `key-${keyIndex}`;
          for (const [storeIndex, store] of [storeA, storeB].entries()) {
            for (let writer = 0; writer < writersPerStore; writer += 1) {
              const etag = `${storeIndex}${writer}`.padEnd(32, "0");
              const version = makeVersion("race", key, NULL_VERSION_ID, { versionId: randomBytes(16).toString("hex"), etag });
              attempts.push(
                store.putObjectVersion(version, { ifNoneMatchAny: true }).then(
                  () => ({ key, etag, won: true }),
                  (error: unknown) => {
                    assert.ok(error instanceof PreconditionFailed, `a loser fails with PreconditionFailed, got ${String(error)}`);
                    return { key, etag, won: false };
                  },
                ),
              );
            }
          }
        }
        const outcomes = await Promise.all(attempts);
        const page = await storeB.listObjectVersions({
          bucket: "race",
          prefix: "",
          delimiter: undefined,
          keyMarker: undefined,
          versionIdMarker: undefined,
          maxKeys: 1000,
        });
        assert.equal(page.versions.length, keyCount, "one version per key, the winner's");
        for (let keyIndex = 0; keyIndex < keyCount; keyIndex += 1) {
          const key = `key-${keyIndex}`;
          const winners = outcomes.filter((outcome) => outcome.key === key && outcome.won);
          assert.equal(winners.length, 1, `exactly one writer wins ${key}`);
          assert.equal(page.versions.find((version) => version.key === key)?.etag, winners[0]?.etag);
        }
        const applied = await admin.query(`SELECT version FROM "${schema}".${MIGRATIONS_TABLE} ORDER BY version`);
        assert.deepEqual(
          applied.rows.map((row: { version: number }) => row.version),
          Array.from({ length: POSTGRES_SCHEMA_VERSION_LATEST }, (_, index) => index + 1),
          "each migration recorded once",
        );
      } finally {
        await storeA.close();
        await storeB.close();
        await dropSchema(schema);
      }
    });

    test("two stores racing plain overwrites of null versions: no errors, one version left, every loser queued as garbage", async () => {
      const schema = newSchemaName();
      const storeA = await PostgresMetadataStore.open(connectionString, { schema, poolSize: 8 });
      const storeB = await PostgresMetadataStore.open(connectionString, { schema, poolSize: 8 });
      try {
        await storeA.createBucket(makeBucket("race", "Unversioned"));
        const keyCount = 50;
        const writesPerKey = 4;
        const writes: Array<Promise<{ removed: ObjectVersion[] }>> = [];
        for (let keyIndex = 0; keyIndex < keyCount; keyIndex += 1) {
          for (let writer = 0; writer < writesPerKey; writer += 1) {
            const store = writer % 2 === 0 ? storeA : storeB;
            // One chunk per version, so the garbage queue counts overwritten versions.
            writes.push(store.putObjectVersion(makeVersion("race", `key-${keyIndex}`, NULL_VERSION_ID, { chunks: [makeChunk()] })));
          }
        }
        const results = await Promise.all(writes);
        const removedCount = results.reduce((sum, result) => sum + result.removed.length, 0);
        assert.equal(removedCount, keyCount * (writesPerKey - 1), "every overwritten version is reported removed once");
        const garbage = await storeA.takeGarbageChunks(10_000);
        assert.equal(garbage.length, keyCount * (writesPerKey - 1), "and its chunk queued once");
        const page = await storeB.listObjects({ bucket: "race", prefix: "", delimiter: undefined, startAfter: undefined, maxKeys: 1000 });
        assert.equal(page.objects.length, keyCount);
      } finally {
        await storeA.close();
        await storeB.close();
        await dropSchema(schema);
      }
    });

    test("deleteBucket racing puts from another store never leaves versions in a deleted bucket", async () => {
      const schema = newSchemaName();
      const storeA = await PostgresMetadataStore.open(connectionString, { schema, poolSize: 8 });
      const storeB = await PostgresMetadataStore.open(connectionString, { schema, poolSize: 8 });
      try {
        const outcomes = { deleted: 0, notEmpty: 0 };
        for (let round = 0; round < 20; round += 1) {
          const bucket = `bucket-${round}`;
          await storeA.createBucket(makeBucket(bucket, "Unversioned"));
          const puts = Array.from({ length: 4 }, (_, index) =>
            storeA.putObjectVersion(makeVersion(bucket, `key-${index}`, NULL_VERSION_ID)).then(
              () => "put",
              (error: unknown) => {
                assert.ok(error instanceof NoSuchBucket, `a put into a deleted bucket fails with NoSuchBucket, got ${String(error)}`);
                return "no bucket";
              },
            ),
          );
          const deletion = storeB.deleteBucket(bucket).then(
            () => "deleted",
            (error: unknown) => {
              assert.ok(error instanceof BucketNotEmpty, `got ${String(error)}`);
              return "not empty";
            },
          );
          const [deleted] = await Promise.all([deletion, ...puts]);
          const rows = await admin.query(`SELECT count(*)::int AS count FROM "${schema}".object_versions WHERE bucket = $1`, [bucket]);
          const versionCount = (rows.rows[0] as { count: number }).count;
          if (deleted === "deleted") {
            outcomes.deleted += 1;
            assert.equal(versionCount, 0, `${bucket} was deleted, so it holds no versions`);
            assert.equal(await storeA.getBucket(bucket), undefined);
          } else {
            outcomes.notEmpty += 1;
            assert.ok(versionCount > 0);
          }
        }
        assert.equal(outcomes.deleted + outcomes.notEmpty, 20);
      } finally {
        await storeA.close();
        await storeB.close();
        await dropSchema(schema);
      }
    });

    test("reopening keeps data and schema version; commits are durable; BIGINT and crc32 round-trip", async () => {
      const schema = newSchemaName();
      try {
        const first = await PostgresMetadataStore.open(connectionString, { schema });
        await first.createBucket(makeBucket("keep", "Unversioned"));
        const version = makeVersion("keep", "k", NULL_VERSION_ID, { sizeBytes: 5 * 2 ** 40 });
        await first.putObjectVersion(version);
        await first.close();
        const second = await PostgresMetadataStore.open(connectionString, { schema });
        try {
          assert.deepEqual(await second.durabilitySettings(), {
            synchronousCommit: "on",
            fsync: "on",
            schemaVersion: POSTGRES_SCHEMA_VERSION_LATEST,
          });
          assert.deepEqual(await second.getObjectVersion("keep", "k"), version);
        } finally {
          await second.close();
        }
      } finally {
        await dropSchema(schema);
      }
    });

    test("a schema from a newer build is refused rather than misread", async () => {
      const schema = newSchemaName();
      try {
        await (await PostgresMetadataStore.open(connectionString, { schema })).close();
        await admin.query(`INSERT INTO "${schema}".${MIGRATIONS_TABLE} (version, description) VALUES ($1, 'from the future')`, [
          POSTGRES_SCHEMA_VERSION_LATEST + 1,
        ]);
        await assert.rejects(PostgresMetadataStore.open(connectionString, { schema }), /newer than this build/);
      } finally {
        await dropSchema(schema);
      }
    });

    test("a schema name that is not a plain identifier is refused", async () => {
      await assert.rejects(PostgresMetadataStore.open(connectionString, { schema: 'x"; DROP TABLE y; --' }), /schema name/);
    });

    test("a delimiter listing of 20,000 keys under 200 prefixes visits about one index row per prefix, in one statement", async () => {
      const schema = newSchemaName();
      const store = await PostgresMetadataStore.open(connectionString, { schema });
      try {
        await store.createBucket(makeBucket("big", "Unversioned"));
        const prefixCount = 200;
        const keysPerPrefix = 100;
        // Rows straight into the table: 20,000 committed puts would only test the disk.
        await admin.query(
          `INSERT INTO "${schema}".object_versions (bucket, key, version_id, is_delete_marker, size_bytes, etag,
             last_modified_ms, owner_id, storage_class, system_metadata_json, user_metadata_json, tags_json, chunks_json)
           SELECT 'big', format('tenant-%s/object-%s', lpad(p::text, 3, '0'), lpad(k::text, 5, '0')), 'null', false, 1,
             repeat('0', 32), 1, 'owner', 'STANDARD', '{}', '{}', '{}', '[]'
           FROM generate_series(0, $1::int - 1) AS p, generate_series(0, $2::int - 1) AS k`,
          [prefixCount, keysPerPrefix],
        );
        await admin.query(`ANALYZE "${schema}".object_versions`);

        const full = { bucket: "big", prefix: "", delimiter: "/", startAfter: undefined, maxKeys: 1000 };
        const statementsBefore = store.counters.listStatementsRun;
        const page = await store.listObjects(full);
        assert.equal(page.commonPrefixes.length, prefixCount);
        assert.equal(page.objects.length, 0);
        assert.equal(page.isTruncated, false);
        assert.equal(store.counters.listStatementsRun - statementsBefore, 1, "one statement per page");
        // The recursive walk: one row per prefix (its first key), then the seek that finds the end.
        const plan = await store.explainListObjects(full);
        const walk = findPlanNode(plan, "Recursive Union");
        assert.ok(walk !== undefined, JSON.stringify(plan));
        assert.equal(walk["Actual Rows"], prefixCount);
        const planText = JSON.stringify(plan);
        assert.match(planText, /"Index Name":"object_versions_newest_first"/);
        assert.doesNotMatch(planText, /"Node Type":"(Seq Scan|Sort)"/);

        // A page of 10 prefixes in the middle visits 12 rows wherever it starts: the key after
        // startAfter (its prefix was on an earlier page), the 10 listed, one that proves truncation.
        const middleInput = { ...full, startAfter: "tenant-100/", maxKeys: 10 };
        const middle = await store.listObjects(middleInput);
        assert.equal(middle.commonPrefixes[0], "tenant-101/");
        assert.equal(middle.nextStartAfter, "tenant-110/");
        assert.equal(middle.isTruncated, true);
        assert.equal(findPlanNode(await store.explainListObjects(middleInput), "Recursive Union")?.["Actual Rows"], 12);

        // Inside one prefix, a page of 5 keys visits 6 rows (the sixth proves truncation).
        const insideInput = { ...full, prefix: "tenant-007/", maxKeys: 5 };
        assert.equal((await store.listObjects(insideInput)).objects.length, 5);
        assert.equal(findPlanNode(await store.explainListObjects(insideInput), "Recursive Union")?.["Actual Rows"], 6);
      } finally {
        await store.close();
        await dropSchema(schema);
      }
    });
  });
}
