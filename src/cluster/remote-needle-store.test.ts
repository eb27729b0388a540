// Proves RemoteNeedleStore's transport behaviour without a data node (cluster/ may not import
// datanode/; the round trip over a real DataNode is in datanode/datanode-service.test.ts):
// a peer that accepts connections and never answers, and a port nobody listens on, both fail
// calls with PeerUnavailable within the deadline; a peer that answers a range read with the
// wrong number of bytes is refused with PeerUnavailable, not trusted.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as http from "node:http";
import * as net from "node:net";
import type { AddressInfo } from "node:net";
import { crc32, newNeedleId, type NodeId, type VolumeId } from "../base/index.js";
import { createRpcHandler, PeerUnavailable, RemoteNeedleStore } from "./index.js";

const SECRET = "test-cluster-secret";
const NODE = "node-remote" as NodeId;
const VOLUME = 1 as VolumeId;

async function listen(server: net.Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

test("a peer that accepts and never answers fails calls with PeerUnavailable within the deadline", async () => {
  const sockets = new Set<net.Socket>();
  const silent = net.createServer((socket) => {
    sockets.add(socket); // accept, read nothing, answer nothing (a SIGSTOPped node)
  });
  const address = await listen(silent);
  const store = new RemoteNeedleStore({ nodeId: NODE, address, secret: SECRET, timeoutMs: 300 });
  try {
    const needleId = newNeedleId();
    const data = Buffer.from("hello");
    const calls: Array<[string, () => Promise<unknown>]> = [
      ["createVolume", () => store.createVolume(VOLUME)],
      ["writeNeedle", () => store.writeNeedle({ volumeId: VOLUME, needleId, data, crc32: crc32(data) })],
      ["readNeedle", () => store.readNeedle({ volumeId: VOLUME, needleId })],
      ["deleteNeedle", () => store.deleteNeedle({ volumeId: VOLUME, needleId })],
      ["volumeStatuses", () => store.volumeStatuses()],
    ];
    for (const [name, call] of calls) {
      const startedAtMs = Date.now();
      await assert.rejects(call(), PeerUnavailable, name);
      const elapsedMs = Date.now() - startedAtMs;
      assert.ok(elapsedMs >= 250 && elapsedMs < 2_000, `${name} gave up after ${elapsedMs} ms`);
    }
  } finally {
    await store.close();
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => silent.close(() => resolve()));
  }
});

test("a port nobody listens on fails calls with PeerUnavailable", async () => {
  const probe = net.createServer();
  const address = await listen(probe);
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  const store = new RemoteNeedleStore({ nodeId: NODE, address, secret: SECRET, timeoutMs: 1_000 });
  try {
    await assert.rejects(store.volumeStatuses(), (error: unknown) => error instanceof PeerUnavailable && error.peer === address);
  } finally {
    await store.close();
  }
});

test("a range read answered with the wrong length is refused with PeerUnavailable", async () => {
  const server = http.createServer(
    { noDelay: true },
    createRpcHandler({
      secret: SECRET,
      blobSizeBytesMax: 1024,
      routes: { blobRead: { readNeedle: async (query) => Buffer.alloc(Number(query.get("lengthBytes") ?? 10) + 1) } },
    }),
  );
  const address = await listen(server);
  const store = new RemoteNeedleStore({ nodeId: NODE, address, secret: SECRET, timeoutMs: 1_000 });
  try {
    await assert.rejects(store.readNeedle({ volumeId: VOLUME, needleId: newNeedleId(), offsetBytes: 0, lengthBytes: 5 }), PeerUnavailable);
    // Without a requested length the answer is the whole needle, whose length only the peer knows.
    assert.equal((await store.readNeedle({ volumeId: VOLUME, needleId: newNeedleId() })).length, 11);
  } finally {
    await store.close();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});
