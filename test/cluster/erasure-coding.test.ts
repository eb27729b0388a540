// Proves erasure coding on a cluster of real processes (1 placement, 6 data nodes in 3 zones,
// 1 gateway) driven by the AWS SDK: a bucket tagged cairn:storage-class=EC:4+2 (and a single
// PUT with x-amz-storage-class: EC:4+2) stores its chunks as 4+2 shards on six nodes, two per
// zone; small objects stay replicated; every object reads back MD5-correct (and by range) after
// the SIGKILL of any two data nodes, whichever shards they hold; a hung node is read around by
// backup reads; bytes flipped in a shard on disk are detected, reported, and decoded around;
// `cairn admin status` shows raw against logical bytes per class.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { closeSync, openSync, readdirSync, readFileSync, readSync, statSync, writeSync } from "node:fs";
import * as path from "node:path";
import { promisify } from "node:util";
import { CreateBucketCommand, GetObjectCommand, PutBucketTaggingCommand, PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { CAIRN_BIN, s3Client } from "../helpers/cairn-process.js";
import { expectS3Error } from "../helpers/assertions.js";
import { CLUSTER_SECRET, TestCluster } from "../helpers/cluster.js";
import type { ClusterMap } from "../../src/cluster/index.js";

const run = promisify(execFile);
const MIB = 1024 * 1024;
const DATA_NODES = ["dn-a1", "dn-a2", "dn-b1", "dn-b2", "dn-c1", "dn-c2"];
/** A GET with one hung shard node finishes well inside the 5 s RPC timeout it would otherwise wait. */
const GET_TIME_MS_MAX_WITH_HUNG_NODE = 4_500;

let cluster: TestCluster;
let client: S3Client;
const written = new Map<string, { bucket: string; md5: string; body: Buffer }>();

const md5 = (data: Buffer) => createHash("md5").update(data).digest("hex");

async function put(bucket: string, key: string, body: Buffer, storageClass?: string): Promise<void> {
  await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body, ...(storageClass ? { StorageClass: storageClass as "STANDARD" } : {}) }));
  written.set(key, { bucket, md5: md5(body), body });
}

async function get(bucket: string, key: string, range?: string): Promise<Buffer> {
  const got = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key, ...(range ? { Range: range } : {}) }));
  return Buffer.from(await got.Body!.transformToByteArray());
}

async function readAll(label: string): Promise<void> {
  for (const [key, object] of written) {
    assert.equal(md5(await get(object.bucket, key)), object.md5, `${label}: ${key}`);
    if (object.body.length > 2 * MIB) {
      const start = MIB + 12_345;
      const end = 2 * MIB + 999;
      assert.ok((await get(object.bucket, key, `bytes=${start}-${end}`)).equals(object.body.subarray(start, end + 1)), `${label}: range of ${key}`);
    }
  }
}

function codedVolumes(map: ClusterMap) {
  return map.volumes.filter((volume) => volume.ec !== null && volume.ec !== undefined);
}

before(async () => {
  cluster = await TestCluster.start({
    dataNodes: DATA_NODES.map((name) => ({ name, zone: `zone-${name[3]}`, rack: `rack-${name[4]}` })),
    gatewayCount: 1,
  });
  client = s3Client(cluster.endpoint("gateway-1"));
  await client.send(new CreateBucketCommand({ Bucket: "coded" }));
  await client.send(new CreateBucketCommand({ Bucket: "plain" }));
});

after(async () => {
  client?.destroy();
  await cluster?.stop();
});

test("a bucket tagged EC:4+2 stores its chunks as six shards over three zones, two per zone", async () => {
  await expectS3Error(
    client.send(new PutBucketTaggingCommand({ Bucket: "coded", Tagging: { TagSet: [{ Key: "cairn:storage-class", Value: "EC:19+2" }] } })),
    "InvalidTag",
    400,
  );
  await client.send(new PutBucketTaggingCommand({ Bucket: "coded", Tagging: { TagSet: [{ Key: "cairn:storage-class", Value: "EC:4+2" }] } }));
  await put("coded", "small", randomBytes(1_000));
  await put("coded", "under-threshold", randomBytes(200_000));
  await put("coded", "one-chunk", randomBytes(MIB + 17));
  await put("coded", "three-chunks", randomBytes(9 * MIB + 4_321));
  await put("plain", "coded-by-header", randomBytes(5 * MIB), "EC:4+2");
  await put("plain", "replicated", randomBytes(3 * MIB));
  await expectS3Error(client.send(new PutObjectCommand({ Bucket: "plain", Key: "bad", Body: "x", StorageClass: "EC:0+2" as "STANDARD" })), "InvalidStorageClass", 400);

  const map = await cluster.clusterMap();
  const coded = codedVolumes(map);
  assert.ok(coded.length >= 1, "placement grew coded volumes");
  const zoneOf = new Map(map.nodes.map((node) => [node.nodeId, node.zone]));
  for (const volume of coded) {
    assert.deepEqual(volume.ec, { k: 4, m: 2 });
    assert.equal(new Set(volume.replicas).size, 6, `volume ${volume.volumeId}: six distinct nodes`);
    const perZone = new Map<string, number>();
    for (const nodeId of volume.replicas) perZone.set(zoneOf.get(nodeId)!, (perZone.get(zoneOf.get(nodeId)!) ?? 0) + 1);
    assert.deepEqual([...perZone.values()].sort(), [2, 2, 2], `volume ${volume.volumeId}: two shards per zone`);
  }
  await readAll("all nodes up");
});

test("the data shards on disk hold the chunk's bytes: a quarter of the chunk on one node only", async () => {
  // Data shard 0 of "one-chunk" is its first ceil((1 MiB + 17) / 4) bytes, stored verbatim.
  const object = written.get("one-chunk")!;
  const probe = object.body.subarray(1_000, 1_064);
  const holders = DATA_NODES.filter((name) => volumeFiles(name).some((file) => readFileSync(file).includes(probe)));
  assert.equal(holders.length, 1, `one node holds data shard 0: ${holders.join(",")}`);
  // Bytes past the first shard are not on that node (they are shard 1's).
  const shardSizeBytes = Math.ceil(object.body.length / 4);
  const later = object.body.subarray(shardSizeBytes + 1_000, shardSizeBytes + 1_064);
  assert.ok(!volumeFiles(holders[0]!).some((file) => readFileSync(file).includes(later)));
});

test("every object reads back after the SIGKILL of any two data nodes: data+data, data+parity, parity+parity", async () => {
  const volume = codedVolumes(await cluster.clusterMap())[0]!;
  const nameOf = (nodeId: string) => DATA_NODES.find((name) => cluster.get(name).nodeId === nodeId)!;
  const pairs = [
    [0, 1],
    [2, 4],
    [4, 5],
  ].map(([left, right]) => [nameOf(volume.replicas[left!]!), nameOf(volume.replicas[right!]!)] as const);
  for (const [left, right] of pairs) {
    await cluster.kill(left);
    await cluster.kill(right);
    await readAll(`${left} and ${right} killed`);
    await cluster.restart(left);
    await cluster.restart(right);
    await waitForGatewayToSee([left, right]);
  }
});

test("bytes flipped in a shard on disk are detected, reported to placement, and the object still reads correctly", async () => {
  const object = written.get("three-chunks")!;
  const probe = object.body.subarray(2_000, 2_064);
  const [file, offset] = findInVolumes(probe);
  const handle = openSync(file, "r+");
  try {
    const bytes = Buffer.alloc(16);
    readSync(handle, bytes, 0, 16, offset);
    for (let index = 0; index < bytes.length; index++) bytes[index] = bytes[index]! ^ 0xff;
    writeSync(handle, bytes, 0, 16, offset);
  } finally {
    closeSync(handle);
  }
  assert.equal(md5(await get("coded", "three-chunks")), object.md5);
  assert.ok((await get("coded", "three-chunks", "bytes=2000-2063")).equals(probe), "a range inside the rotten shard decodes too");
  const deadline = Date.now() + 10_000;
  while (!/damage reported[^\n]*checksum-mismatch/.test(cluster.get("placement").stderr()) && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assert.match(cluster.get("placement").stderr(), /damage reported[^\n]*checksum-mismatch/);
});

test("a hung (SIGSTOPped) shard node is read around by backup reads", async () => {
  const volume = codedVolumes(await cluster.clusterMap())[0]!;
  const hung = DATA_NODES.find((name) => cluster.get(name).nodeId === volume.replicas[0])!;
  cluster.pause(hung);
  try {
    for (const key of ["one-chunk", "three-chunks", "coded-by-header"]) {
      const object = written.get(key)!;
      const started = Date.now();
      assert.equal(md5(await get(object.bucket, key)), object.md5, key);
      assert.ok(Date.now() - started < GET_TIME_MS_MAX_WITH_HUNG_NODE, `GET ${key} took ${Date.now() - started} ms`);
    }
  } finally {
    cluster.resume(hung);
  }
});

test("cairn admin status shows raw against logical bytes per storage class", async () => {
  // Volume sizes reach placement with heartbeats (every 2 s).
  let stdout = "";
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    stdout = (await run(process.execPath, [CAIRN_BIN, "admin", "status", "--placement", cluster.placementUrl, "--cluster-secret", CLUSTER_SECRET])).stdout;
    if (/EC:4\+2 +\d+ +\S+ \S+ +\S+ \S+ +1\.5\dx/.test(stdout)) break;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  assert.match(stdout, /EC:4\+2 +\d+ +\S+ \S+ +\S+ \S+ +1\.5\dx +2 lost nodes/, stdout);
  assert.match(stdout, /replicated +\d+ +\S+ \S+ +\S+ \S+ +3\.00x +2 lost nodes/, stdout);
});

/**
 * Restarted nodes listen on new ports: wait until placement's map has their new addresses,
 * then for the gateway's next refreshes of its cached map (every second).
 */
async function waitForGatewayToSee(names: string[]): Promise<void> {
  const addresses = new Map(names.map((name) => [cluster.get(name).nodeId, `http://127.0.0.1:${cluster.get(name).port}`]));
  await cluster.waitFor(
    (map) => map.nodes.every((node) => node.state === "up" && (addresses.get(node.nodeId) ?? node.address) === node.address),
    "restarted nodes up at their new addresses",
  );
  await new Promise((resolve) => setTimeout(resolve, 2_500));
}

/** Every file under a data node's directory that is not one of its SQLite databases. */
function volumeFiles(name: string): string[] {
  const files: string[] = [];
  const walk = (directory: string) => {
    for (const entry of readdirSync(directory)) {
      const full = path.join(directory, entry);
      if (statSync(full).isDirectory()) walk(full);
      else if (!/\.sqlite|-wal$|-shm$|\.json$|node-id/.test(entry)) files.push(full);
    }
  };
  walk(path.join(cluster.root, name));
  return files;
}

function findInVolumes(probe: Buffer): [string, number] {
  const found: Array<[string, number]> = [];
  for (const name of DATA_NODES) {
    for (const file of volumeFiles(name)) {
      const offset = readFileSync(file).indexOf(probe);
      if (offset >= 0) found.push([file, offset]);
    }
  }
  assert.equal(found.length, 1, `the probe is in one shard on one node: ${JSON.stringify(found)}`);
  return found[0]!;
}
