// Proves Cairn as a cluster of real processes (1 placement, 6 data nodes in 3 zones, 2
// gateways) on 127.0.0.1: replicas spread over distinct zones; reads and writes through one
// gateway are seen at once through the other; every object survives the SIGKILL of one data
// node and then another in a different zone; a hung (SIGSTOPped) data node costs bounded
// time; a restarted data node rejoins with its data and serves it; a gateway killed mid-upload
// leaves no visible object.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { promisify } from "node:util";
import { CreateBucketCommand, GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import * as http from "node:http";
import { CAIRN_BIN, s3Client } from "../helpers/cairn-process.js";
import { signer } from "../helpers/raw-s3.js";
import { CLUSTER_SECRET, TestCluster } from "../helpers/cluster.js";

const run = promisify(execFile);
const MIB = 1024 * 1024;
/** A request may wait out one RPC timeout per hung replica, never more than this. */
const REQUEST_TIME_MS_MAX_WITH_HUNG_NODE = 20_000;

let cluster: TestCluster;
let gateway1: S3Client;
let gateway2: S3Client;
const written = new Map<string, string>();

const md5 = (data: Buffer) => createHash("md5").update(data).digest("hex");

async function putObject(client: S3Client, key: string, size: number): Promise<void> {
  const body = randomBytes(size);
  await client.send(new PutObjectCommand({ Bucket: "cluster", Key: key, Body: body }));
  written.set(key, md5(body));
}

async function readAll(client: S3Client, label: string): Promise<void> {
  for (const [key, expected] of written) {
    const got = await client.send(new GetObjectCommand({ Bucket: "cluster", Key: key }));
    assert.equal(md5(Buffer.from(await got.Body!.transformToByteArray())), expected, `${label}: ${key}`);
  }
}

before(async () => {
  cluster = await TestCluster.start({
    dataNodes: [
      { name: "dn-a1", zone: "zone-a", rack: "rack-1" },
      { name: "dn-a2", zone: "zone-a", rack: "rack-2" },
      { name: "dn-b1", zone: "zone-b", rack: "rack-1" },
      { name: "dn-b2", zone: "zone-b", rack: "rack-2" },
      { name: "dn-c1", zone: "zone-c", rack: "rack-1" },
      { name: "dn-c2", zone: "zone-c", rack: "rack-2" },
    ],
    gatewayCount: 2,
  });
  gateway1 = s3Client(cluster.endpoint("gateway-1"));
  gateway2 = s3Client(cluster.endpoint("gateway-2"));
  await gateway1.send(new CreateBucketCommand({ Bucket: "cluster" }));
});

after(async () => {
  gateway1?.destroy();
  gateway2?.destroy();
  await cluster?.stop();
});

test("writes through one gateway read back at once through the other", async () => {
  for (let index = 0; index < 24; index++) await putObject(gateway1, `before/${index}`, index % 6 === 5 ? 5 * MIB + 3 : 1 + index * 1000);
  await readAll(gateway2, "across gateways");
  const listed = await gateway2.send(new ListObjectsV2Command({ Bucket: "cluster", Prefix: "before/" }));
  assert.equal(listed.KeyCount, 24);
});

test("every volume has its replicas in three distinct zones", async () => {
  const map = await cluster.clusterMap();
  assert.ok(map.volumes.length >= 1);
  const zoneOf = new Map(map.nodes.map((node) => [node.nodeId, node.zone]));
  for (const volume of map.volumes) {
    assert.equal(volume.replicas.length, 3, `volume ${volume.volumeId} has 3 replicas`);
    assert.equal(new Set(volume.replicas.map((nodeId) => zoneOf.get(nodeId))).size, 3, `volume ${volume.volumeId} spans 3 zones`);
  }
});

test("cairn admin status prints nodes with zones and volumes with replicas", async () => {
  const { stdout } = await run(process.execPath, [CAIRN_BIN, "admin", "status", "--placement", cluster.placementUrl, "--cluster-secret", CLUSTER_SECRET]);
  for (const zone of ["zone-a", "zone-b", "zone-c"]) assert.match(stdout, new RegExp(zone));
  const map = await cluster.clusterMap();
  for (const node of map.nodes) assert.match(stdout, new RegExp(node.nodeId));
});

test("a SIGSTOPped data node delays requests by a bounded time only", async () => {
  cluster.pause("dn-c1");
  try {
    const started = Date.now();
    for (const key of [...written.keys()].slice(0, 12)) {
      const requestStarted = Date.now();
      const got = await gateway2.send(new GetObjectCommand({ Bucket: "cluster", Key: key }));
      assert.equal(md5(Buffer.from(await got.Body!.transformToByteArray())), written.get(key));
      assert.ok(Date.now() - requestStarted < REQUEST_TIME_MS_MAX_WITH_HUNG_NODE, `GET ${key} took ${Date.now() - requestStarted} ms`);
    }
    for (let index = 0; index < 4; index++) {
      const requestStarted = Date.now();
      await putObject(gateway1, `while-hung/${index}`, 10_000);
      assert.ok(Date.now() - requestStarted < REQUEST_TIME_MS_MAX_WITH_HUNG_NODE, `PUT took ${Date.now() - requestStarted} ms`);
    }
    assert.ok(Date.now() - started < 120_000);
  } finally {
    cluster.resume("dn-c1");
  }
  await cluster.waitFor((map) => map.nodes.every((node) => node.state === "up"), "the resumed node up again");
});

test("after SIGKILL of one data node, then another in a different zone, every object reads back and writes go on", async () => {
  await cluster.kill("dn-a1");
  await readAll(gateway2, "one node down");
  for (let index = 0; index < 6; index++) await putObject(gateway1, `one-down/${index}`, 70_000);
  await cluster.kill("dn-b1");
  await readAll(gateway1, "two nodes down");
  for (let index = 0; index < 6; index++) await putObject(gateway2, `two-down/${index}`, 70_000);
  await readAll(gateway1, "two nodes down, new writes");
});

test("restarted data nodes rejoin with their data and serve it", async () => {
  const before = await cluster.clusterMap();
  const idOf = (name: string) => cluster.get(name).nodeId;
  const a1 = idOf("dn-a1");
  const b1 = idOf("dn-b1");
  await cluster.restart("dn-a1");
  await cluster.restart("dn-b1");
  assert.equal(cluster.get("dn-a1").nodeId, a1, "same node id after restart");
  assert.equal(cluster.get("dn-b1").nodeId, b1, "same node id after restart");
  await cluster.waitFor((map) => map.nodes.filter((node) => node.state === "up").length === 6, "six nodes up again");
  assert.equal((await cluster.clusterMap()).nodes.length, before.nodes.length, "no new node ids");
  // With zone c gone, objects on volumes (a1, b1, c*) can only come from the restarted nodes.
  await cluster.kill("dn-c1");
  await cluster.kill("dn-c2");
  await readAll(gateway2, "served by restarted nodes");
});

test("a gateway killed mid-upload leaves no visible partial object", async () => {
  const doomed = await cluster.startGateway("gateway-doomed");
  const sizeBytes = 64 * MIB;
  // A raw signed PUT, so the test controls exactly how much of the body has been sent.
  const signed = await signer.sign({
    method: "PUT",
    protocol: "http:",
    hostname: "127.0.0.1",
    port: doomed.port,
    path: "/cluster/partial",
    headers: { host: `127.0.0.1:${doomed.port}`, "x-amz-content-sha256": "UNSIGNED-PAYLOAD", "content-length": String(sizeBytes) },
  });
  const request = http.request({ host: "127.0.0.1", port: doomed.port, method: "PUT", path: "/cluster/partial", headers: signed.headers as Record<string, string> });
  const outcome = new Promise<string>((resolve) => {
    request.on("response", (response) => resolve(`status ${response.statusCode}`));
    request.on("error", (error) => resolve(`error ${error.message}`));
  });
  for (let sent = 0; sent < 30 * MIB; sent += MIB) {
    if (!request.write(randomBytes(MIB))) await new Promise((resolve) => request.once("drain", resolve));
  }
  await cluster.kill("gateway-doomed");
  assert.match(await outcome, /^error /, "the upload failed");
  await assert.rejects(gateway1.send(new HeadObjectCommand({ Bucket: "cluster", Key: "partial" })), (error: unknown) => (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404);
  const listed = await gateway1.send(new ListObjectsV2Command({ Bucket: "cluster", Prefix: "partial" }));
  assert.equal(listed.KeyCount, 0);
});
