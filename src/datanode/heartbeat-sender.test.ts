// Proves the heartbeat sender against a tiny fake placement (a real RPC server whose heartbeat
// route assigns ids): a fresh node registers with an id-less heartbeat, persists the id in
// <data-dir>/node-id and uses it from then on; a restarted sender over the same directory
// rejoins with that id without registering again; heartbeats carry disks (capacity, free, the
// bytes of volume files), volumes and write counts; registration waits out a placement that is
// not up yet; a placement that fails every heartbeat never crashes the sender; with several
// placements, a dead first one is skipped.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as http from "node:http";
import * as net from "node:net";
import type { AddressInfo } from "node:net";
import { mkdir, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { NodeId, VolumeId } from "../base/index.js";
import { createRpcHandler, type HeartbeatRequest, type HeartbeatResponse } from "../cluster/index.js";
import { createDataNodeRpcRoutes, DataNode, HeartbeatSender, NodeIdFileInvalid, readNodeIdFile, WriteStats } from "./index.js";
import { makeNeedle, makeTemporaryDisks, volumePath } from "./fixtures.js";

const SECRET = "test-cluster-secret";
const VOLUME = 3 as VolumeId;
const INTERVAL_MS = 40;

interface FakePlacement {
  address: string;
  heartbeats: HeartbeatRequest[];
  registrations: number;
  failing: boolean;
  close(): Promise<void>;
}

async function startFakePlacement(port = 0): Promise<FakePlacement> {
  const placement: FakePlacement = { address: "", heartbeats: [], registrations: 0, failing: false, close: async () => {} };
  const server = http.createServer(
    { noDelay: true },
    createRpcHandler({
      secret: SECRET,
      blobSizeBytesMax: 0,
      routes: {
        json: {
          heartbeat: async (body): Promise<HeartbeatResponse> => {
            if (placement.failing) throw new Error("placement is broken");
            const request = body as HeartbeatRequest;
            placement.heartbeats.push(request);
            if (request.nodeId !== undefined) return { nodeId: request.nodeId, mapVersion: 7 };
            placement.registrations += 1;
            return { nodeId: `node-${placement.registrations}` as NodeId, mapVersion: 7 };
          },
        },
      },
    }),
  );
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  placement.address = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  placement.close = async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return placement;
}

async function waitFor<T>(what: string, probe: () => T | undefined, timeoutMs = 3_000): Promise<T> {
  const deadlineMs = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > deadlineMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

async function freePort(): Promise<number> {
  const probe = net.createServer();
  await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
  const { port } = probe.address() as AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

async function newSender(options: { dataDirectory: string; disks: string[]; placementAddresses: string[]; writeStats?: WriteStats }): Promise<HeartbeatSender> {
  for (const disk of options.disks) await mkdir(disk, { recursive: true });
  return new HeartbeatSender({
    dataDirectory: options.dataDirectory,
    placementAddresses: options.placementAddresses,
    secret: SECRET,
    address: "http://127.0.0.1:9999",
    zone: "zone-b",
    rack: "rack-c",
    diskDirectories: options.disks,
    writeCounters: options.writeStats ?? new WriteStats(),
    intervalMs: INTERVAL_MS,
    timeoutMs: 1_000,
    retryDelayMsMax: 100,
  });
}

test("a fresh node gets its id from placement, persists it, reports its state and rejoins with the same id", async () => {
  const placement = await startFakePlacement();
  const disks = await makeTemporaryDisks(2);
  const writeStats = new WriteStats();
  try {
    const sender = await newSender({ dataDirectory: disks.root, disks: disks.disks, placementAddresses: [placement.address], writeStats });
    const nodeId = await sender.ensureNodeId();
    assert.equal(nodeId, "node-1");
    assert.equal(placement.heartbeats[0]?.nodeId, undefined, "the first heartbeat carries no id");
    assert.equal((await readFile(join(disks.root, "node-id"), "utf8")).trim(), "node-1");

    const node = await DataNode.open({ nodeId, diskDirectories: disks.disks });
    try {
      await node.createVolume(VOLUME);
      const routes = createDataNodeRpcRoutes(node, { writeStats });
      const needle = makeNeedle(VOLUME, 5_000);
      const query = new URLSearchParams({ volumeId: String(VOLUME), needleId: needle.needleId, crc32: String(needle.crc32) });
      await routes.blobWrite!.writeNeedle!(query, needle.data);
      sender.start(node);
      const report = await waitFor("a heartbeat with the volume", () => placement.heartbeats.find((beat) => beat.volumes.length === 1));
      await sender.stop();
      assert.equal(report.nodeId, "node-1");
      assert.equal(report.address, "http://127.0.0.1:9999");
      assert.equal(report.zone, "zone-b");
      assert.equal(report.rack, "rack-c");
      assert.equal(report.writeCount, 1);
      assert.ok(report.writeLatencyMs > 0);
      assert.equal(report.volumes[0]?.volumeId, VOLUME);
      assert.equal(report.volumes[0]?.needleCount, 1);
      assert.deepEqual(report.disks.map((disk) => disk.path), disks.disks);
      const volumeFileSizeBytes = (await stat(volumePath(diskHolding(report, disks.disks), VOLUME))).size;
      assert.deepEqual(report.disks.map((disk) => disk.usedBytes).sort((a, b) => a - b), [0, volumeFileSizeBytes]);
      for (const disk of report.disks) {
        assert.ok(disk.capacityBytes > 0 && disk.freeBytes > 0 && disk.freeBytes <= disk.capacityBytes, JSON.stringify(disk));
      }
      assert.equal(sender.mapVersion, 7);
    } finally {
      await node.close();
    }

    // Restart: same data directory, same id, no second registration.
    const registrationsBefore = placement.registrations;
    const heartbeatsBefore = placement.heartbeats.length;
    const restarted = await newSender({ dataDirectory: disks.root, disks: disks.disks, placementAddresses: [placement.address] });
    assert.equal(await restarted.ensureNodeId(), "node-1");
    restarted.start({ volumeStatuses: async () => [] });
    await waitFor("a heartbeat after restart", () => (placement.heartbeats.length > heartbeatsBefore ? true : undefined));
    await restarted.stop();
    assert.equal(placement.registrations, registrationsBefore);
    assert.ok(placement.heartbeats.slice(heartbeatsBefore).every((beat) => beat.nodeId === "node-1"));
  } finally {
    await placement.close();
    await disks.cleanup();
  }
});

/** The disk a report says holds bytes (the one the volume landed on). */
function diskHolding(report: HeartbeatRequest, disks: string[]): string {
  const used = report.disks.find((disk) => disk.usedBytes > 0);
  assert.ok(used !== undefined && disks.includes(used.path));
  return used.path;
}

test("registration waits for a placement that is not up yet", async () => {
  const disks = await makeTemporaryDisks(1);
  const port = await freePort();
  let placement: FakePlacement | undefined;
  try {
    const sender = await newSender({ dataDirectory: disks.root, disks: disks.disks, placementAddresses: [`http://127.0.0.1:${port}`] });
    const registering = sender.ensureNodeId();
    await new Promise((resolve) => setTimeout(resolve, 250));
    placement = await startFakePlacement(port);
    assert.equal(await registering, "node-1");
    assert.equal(await readNodeIdFile(disks.root), "node-1");
    await sender.stop();
  } finally {
    await placement?.close();
    await disks.cleanup();
  }
});

test("a placement that fails every heartbeat never crashes the sender, and a dead first placement is skipped", async () => {
  const broken = await startFakePlacement();
  const healthy = await startFakePlacement();
  const disks = await makeTemporaryDisks(1);
  try {
    await writeFile(join(disks.root, "node-id"), "node-42\n");
    broken.failing = true;
    const sender = await newSender({ dataDirectory: disks.root, disks: disks.disks, placementAddresses: [broken.address] });
    assert.equal(await sender.ensureNodeId(), "node-42");
    let statusCalls = 0;
    sender.start({ volumeStatuses: async () => (statusCalls++, []) });
    await waitFor("several failed beats", () => (statusCalls >= 4 ? true : undefined));
    broken.failing = false;
    await waitFor("a beat once placement recovers", () => (broken.heartbeats.length > 0 ? true : undefined));
    await sender.stop();

    const deadAddress = `http://127.0.0.1:${await freePort()}`;
    const failover = await newSender({ dataDirectory: disks.root, disks: disks.disks, placementAddresses: [deadAddress, healthy.address] });
    await failover.ensureNodeId();
    const response = await failover.beat();
    assert.equal(response.nodeId, "node-42");
    assert.equal(healthy.heartbeats[0]?.nodeId, "node-42");
    await failover.stop();
  } finally {
    await broken.close();
    await healthy.close();
    await disks.cleanup();
  }
});

test("a node-id file that holds no valid id is refused rather than replaced", async () => {
  const disks = await makeTemporaryDisks(1);
  try {
    await writeFile(join(disks.root, "node-id"), "\n");
    await assert.rejects(readNodeIdFile(disks.root), NodeIdFileInvalid);
    await writeFile(join(disks.root, "node-id"), "has spaces\n");
    await assert.rejects(readNodeIdFile(disks.root), NodeIdFileInvalid);
  } finally {
    await disks.cleanup();
  }
});
