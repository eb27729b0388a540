// Proves gateways of a cluster sharing a PostgreSQL metadata store (`cairn gateway --meta
// postgres://...`): what one gateway writes the others read and list at once; conditional
// writes racing from three gateways on one key have exactly one winner; versions stay ordered.
// Needs CAIRN_TEST_POSTGRES_URL (scripts/start-postgres.sh); skipped with the reason when it
// is absent, except under CI=true, where that fails.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import pg from "pg";
import {
  CreateBucketCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  ListObjectVersionsCommand,
  PutBucketVersioningCommand,
  PutObjectCommand,
  S3Client,
} from "@aws-sdk/client-s3";
import { s3Client, TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY } from "../helpers/cairn-process.js";
import { TestCluster } from "../helpers/cluster.js";

const postgresUrl = process.env.CAIRN_TEST_POSTGRES_URL;
const SKIP_REASON = "CAIRN_TEST_POSTGRES_URL is not set (scripts/start-postgres.sh starts a local PostgreSQL)";

if (postgresUrl === undefined) {
  if (process.env.CI === "true") {
    test("gateways on PostgreSQL run in CI", () => assert.fail(`CI must run this test, but ${SKIP_REASON}`));
  } else {
    test("gateways on PostgreSQL", { skip: SKIP_REASON }, () => {});
  }
} else {
  const schema = `gw_${randomBytes(6).toString("hex")}`;
  let cluster: TestCluster;
  let clients: S3Client[] = [];

  before(async () => {
    cluster = await TestCluster.start({
      dataNodes: [
        { name: "dn-a", zone: "zone-a", rack: "rack-1" },
        { name: "dn-b", zone: "zone-b", rack: "rack-1" },
        { name: "dn-c", zone: "zone-c", rack: "rack-1" },
      ],
      gatewayCount: 3,
      gatewayArgs: ["--meta", postgresUrl, "--meta-schema", schema],
      gatewayEnv: { CAIRN_ROOT_ACCESS_KEY: TEST_ACCESS_KEY_ID, CAIRN_ROOT_SECRET_KEY: TEST_SECRET_ACCESS_KEY },
    });
    clients = [1, 2, 3].map((index) => s3Client(cluster.endpoint(`gateway-${index}`)));
    await clients[0]!.send(new CreateBucketCommand({ Bucket: "shared" }));
  });

  after(async () => {
    for (const client of clients) client.destroy();
    await cluster?.stop();
    const admin = new pg.Client({ connectionString: postgresUrl });
    await admin.connect();
    await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await admin.end();
  });

  test("each gateway reads and lists what another wrote, at once", async () => {
    for (let index = 0; index < 12; index++) {
      const writer = clients[index % 3]!;
      const reader = clients[(index + 1) % 3]!;
      const body = randomBytes(1000 + index);
      await writer.send(new PutObjectCommand({ Bucket: "shared", Key: `k/${index}`, Body: body }));
      const got = await reader.send(new GetObjectCommand({ Bucket: "shared", Key: `k/${index}` }));
      assert.ok(Buffer.from(await got.Body!.transformToByteArray()).equals(body));
      const listed = await clients[(index + 2) % 3]!.send(new ListObjectsV2Command({ Bucket: "shared", Prefix: "k/" }));
      assert.equal(listed.KeyCount, index + 1);
    }
  });

  test("If-None-Match: * writers racing through three gateways: exactly one wins per key", async () => {
    for (let round = 0; round < 5; round++) {
      const key = `race/${round}`;
      const results = await Promise.allSettled(
        clients.flatMap((client, index) => [0, 1].map((copy) => client.send(new PutObjectCommand({ Bucket: "shared", Key: key, Body: `g${index}c${copy}`, IfNoneMatch: "*" })))),
      );
      assert.equal(results.filter((result) => result.status === "fulfilled").length, 1, key);
      for (const result of results) {
        if (result.status === "rejected") assert.equal((result.reason as { $metadata: { httpStatusCode: number } }).$metadata.httpStatusCode, 412);
      }
    }
  });

  test("versions written through different gateways list newest first", async () => {
    await clients[0]!.send(new PutBucketVersioningCommand({ Bucket: "shared", VersioningConfiguration: { Status: "Enabled" } }));
    const ids: string[] = [];
    for (let index = 0; index < 6; index++) {
      ids.push((await clients[index % 3]!.send(new PutObjectCommand({ Bucket: "shared", Key: "versioned", Body: `v${index}` }))).VersionId!);
    }
    const listed = await clients[1]!.send(new ListObjectVersionsCommand({ Bucket: "shared", Prefix: "versioned" }));
    assert.deepEqual(listed.Versions?.map((version) => version.VersionId), ids.reverse());
    const latest = await clients[2]!.send(new GetObjectCommand({ Bucket: "shared", Key: "versioned" }));
    assert.equal(await latest.Body!.transformToString(), "v5");
  });
}
