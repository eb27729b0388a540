// Proves RemoteNeedleStore's transport behaviour without a data node (cluster/ may not import
// datanode/; the round trip over a real DataNode is in datanode/datanode-service.test.ts):
// a peer that accepts connections and never answers, and a port nobody listens on, both fail
// calls with PeerUnavailable within the deadline; a peer that answers a range read with the
// wrong number of bytes is refused with PeerUnavailable, not trusted; a large range read for a
// caller that releases chunk buffers is answered in one, and a refused one gives it back.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as http from "node:http";
import * as net from "node:net";
import type { AddressInfo } from "node:net";
import { crc32, isChunkBufferView, newNeedleId, releaseChunkBuffer, releaseChunkBufferOf, tryTakeChunkBuffer, type NodeId, type VolumeId } from "../base/index.js";
import { createRpcHandler, createRpcServer, PeerUnavailable, RemoteNeedleStore } from "./index.js";

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

/** Chunk buffers the pool can still hand out (takes them all, then gives them back). */
function spareChunkBufferCount(): number {
  const taken = [];
  for (let buffer = tryTakeChunkBuffer(); buffer !== undefined; buffer = tryTakeChunkBuffer()) taken.push(buffer);
  for (const buffer of taken) releaseChunkBuffer(buffer);
  return taken.length;
}

test("a large range read with intoChunkBuffer is answered in a pooled chunk buffer, which every failure gives back", async () => {
  const pattern = (lengthBytes: number) => Buffer.from(Array.from({ length: lengthBytes }, (_, index) => index % 251));
  const server = createRpcServer({
    secret: SECRET,
    blobSizeBytesMax: 1024,
    routes: {
      blobRead: {
        readNeedle: async (query) => {
          const lengthBytes = Number(query.get("lengthBytes"));
          return query.get("volumeId") === "2" ? Buffer.alloc(lengthBytes + 1) : pattern(lengthBytes);
        },
      },
    },
  });
  const address = await listen(server);
  const store = new RemoteNeedleStore({ nodeId: NODE, address, secret: SECRET, timeoutMs: 2_000 });
  try {
    const spare = spareChunkBufferCount();
    const large = await store.readNeedle({ volumeId: VOLUME, needleId: newNeedleId(), offsetBytes: 0, lengthBytes: 1024 * 1024, intoChunkBuffer: true });
    assert.ok(large.equals(pattern(1024 * 1024)));
    assert.equal(isChunkBufferView(large), true);
    assert.equal(releaseChunkBufferOf(large), true);
    // Without intoChunkBuffer, or small: memory of its own.
    const plain = await store.readNeedle({ volumeId: VOLUME, needleId: newNeedleId(), offsetBytes: 0, lengthBytes: 1024 * 1024 });
    assert.ok(plain.equals(pattern(1024 * 1024)));
    assert.equal(isChunkBufferView(plain), false);
    const small = await store.readNeedle({ volumeId: VOLUME, needleId: newNeedleId(), offsetBytes: 0, lengthBytes: 4096, intoChunkBuffer: true });
    assert.equal(isChunkBufferView(small), false);
    // A wrong-length answer is refused and its buffer goes back.
    await assert.rejects(
      store.readNeedle({ volumeId: 2 as VolumeId, needleId: newNeedleId(), offsetBytes: 0, lengthBytes: 1024 * 1024, intoChunkBuffer: true }),
      PeerUnavailable,
    );
    assert.equal(spareChunkBufferCount(), spare);
  } finally {
    await store.close();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});
