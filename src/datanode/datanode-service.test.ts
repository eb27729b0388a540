// Proves the data node's internal API end to end: a RemoteNeedleStore talking to a real RPC
// server over a real DataNode in a temporary directory. Needles round-trip whole, by range and
// through delete; VolumeFull, VolumeNotFound, NeedleNotFound, ChecksumMismatch and
// NeedleRangeInvalid arrive as their own classes; a client with the wrong cluster secret is
// refused and writes nothing; malformed arguments are answered with DataNodeRequestInvalid and
// never reach the engine; acknowledged writes are counted with a latency; a large chunk's body
// is read into a pooled chunk buffer (returned after) and written around the page cache with directIo.
// (This lives in datanode/ rather than beside remote-needle-store.ts because cluster/ may not
// import datanode/; the transport-only cases are in cluster/remote-needle-store.test.ts.)
import { test } from "node:test";
import assert from "node:assert/strict";
import type { AddressInfo } from "node:net";
import { chunkBufferPoolStats, NEEDLE_DATA_SIZE_BYTES_MAX, newNeedleId, type VolumeId } from "../base/index.js";
import {
  ChecksumMismatch,
  createRpcServer,
  NeedleNotFound,
  RemoteError,
  RemoteNeedleStore,
  RpcClient,
  VolumeFull,
  VolumeNotFound,
} from "../cluster/index.js";
import { createDataNodeRpcRoutes, DataNode, DataNodeRequestInvalid, NeedleRangeInvalid, WriteStats } from "./index.js";
import { directWritesAllowedIn } from "./direct-write.js";
import { makeNeedle, makeTemporaryDisks, TEST_NODE_ID } from "./fixtures.js";

const SECRET = "test-cluster-secret";
const VOLUME = 1 as VolumeId;
/** Tiny volumes so a few 4000-byte needles fill one (test-only engine option). */
const VOLUME_SIZE_BYTES = 64 * 1024;

interface Served {
  node: DataNode;
  diskDirectory: string;
  store: RemoteNeedleStore;
  address: string;
  writeStats: WriteStats;
}

/** A served node with tiny volumes, or with `nodeOptions` (default volume size) instead. */
async function withServedNode(body: (served: Served) => Promise<void>, nodeOptions?: { directIo: boolean }): Promise<void> {
  const disks = await makeTemporaryDisks(1);
  const node = await DataNode.open({
    nodeId: TEST_NODE_ID,
    diskDirectories: disks.disks,
    ...(nodeOptions ?? { volumeSizeBytes: VOLUME_SIZE_BYTES, allowVolumeSizeBelowMinimumForTests: true }),
  });
  const writeStats = new WriteStats();
  const server = createRpcServer({ secret: SECRET, routes: createDataNodeRpcRoutes(node, { writeStats }), blobSizeBytesMax: NEEDLE_DATA_SIZE_BYTES_MAX + 65_536 });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const store = new RemoteNeedleStore({ nodeId: TEST_NODE_ID, address, secret: SECRET, timeoutMs: 2_000 });
  try {
    await store.createVolume(VOLUME);
    await body({ node, diskDirectory: disks.disks[0]!, store, address, writeStats });
  } finally {
    await store.close();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await node.close();
    await disks.cleanup();
  }
}

test("needles round-trip over RPC whole, by range and through delete", async () => {
  await withServedNode(async ({ store, writeStats }) => {
    const needle = makeNeedle(VOLUME, 10_000);
    await store.writeNeedle(needle);
    assert.ok((await store.readNeedle(needle)).equals(needle.data));
    const range = await store.readNeedle({ ...needle, offsetBytes: 1234, lengthBytes: 567 });
    assert.ok(range.equals(needle.data.subarray(1234, 1234 + 567)));
    const tail = await store.readNeedle({ volumeId: VOLUME, needleId: needle.needleId, offsetBytes: 9_990 });
    assert.ok(tail.equals(needle.data.subarray(9_990)));
    const empty = makeNeedle(VOLUME, 0);
    await store.writeNeedle(empty);
    assert.equal((await store.readNeedle(empty)).length, 0);

    await store.createVolume(VOLUME); // idempotent
    const [status] = await store.volumeStatuses();
    assert.equal(status?.volumeId, VOLUME);
    assert.equal(status?.state, "writable");
    assert.equal(status?.needleCount, 2);

    await store.deleteNeedle(needle);
    await store.deleteNeedle(needle); // idempotent
    await assert.rejects(store.readNeedle(needle), NeedleNotFound);
    assert.equal(writeStats.writeCount, 2);
    assert.ok(writeStats.writeLatencyMs > 0, "a write is timed");
  });
});

test("operating errors arrive as their own classes", async () => {
  await withServedNode(async ({ store }) => {
    const needle = makeNeedle(VOLUME, 4_000);
    await assert.rejects(store.writeNeedle({ ...needle, crc32: (needle.crc32 + 1) >>> 0 }), (error: unknown) => {
      assert.ok(error instanceof ChecksumMismatch);
      assert.equal(error.volumeId, VOLUME);
      assert.equal(error.needleId, needle.needleId);
      return true;
    });
    await assert.rejects(store.readNeedle(needle), NeedleNotFound, "a refused write leaves nothing behind");
    await assert.rejects(store.writeNeedle({ ...needle, volumeId: 99 as VolumeId }), VolumeNotFound);
    await store.writeNeedle(needle);
    await assert.rejects(store.readNeedle({ ...needle, offsetBytes: 3_999, lengthBytes: 2 }), NeedleRangeInvalid);

    let full: unknown;
    for (let index = 0; index < 40 && full === undefined; index++) {
      await store.writeNeedle(makeNeedle(VOLUME, 4_000)).catch((error: unknown) => (full = error));
    }
    assert.ok(full instanceof VolumeFull, `got ${String(full)}`);
    assert.equal(full.volumeId, VOLUME);
    const [status] = await store.volumeStatuses();
    assert.equal(status?.state, "sealed");
    assert.ok((await store.readNeedle(needle)).equals(needle.data), "a sealed volume still serves reads");
  });
});

test("a client with the wrong cluster secret is refused and writes nothing", async () => {
  await withServedNode(async ({ store, address }) => {
    const stranger = new RemoteNeedleStore({ nodeId: TEST_NODE_ID, address, secret: "not-the-secret", timeoutMs: 2_000 });
    try {
      const needle = makeNeedle(VOLUME, 100);
      const isAuthError = (error: unknown) => error instanceof RemoteError && error.remoteName === "RpcAuthError" && error.statusCode === 401;
      await assert.rejects(stranger.writeNeedle(needle), isAuthError);
      await assert.rejects(stranger.readNeedle(needle), isAuthError);
      await assert.rejects(stranger.createVolume(7 as VolumeId), isAuthError);
      await assert.rejects(store.readNeedle(needle), NeedleNotFound);
      assert.deepEqual((await store.volumeStatuses()).map((status) => status.volumeId), [VOLUME]);
    } finally {
      await stranger.close();
    }
  });
});

test("malformed arguments are answered with DataNodeRequestInvalid and the node keeps serving", async () => {
  await withServedNode(async ({ store, address }) => {
    const client = new RpcClient(address, SECRET);
    const needle = makeNeedle(VOLUME, 100);
    const good = { volumeId: String(VOLUME), needleId: needle.needleId, crc32: String(needle.crc32) };
    const invalid = (argument: string) => (error: unknown) => error instanceof DataNodeRequestInvalid && error.argument === argument;
    try {
      await assert.rejects(client.writeBlob("writeNeedle", { ...good, volumeId: "0" }, needle.data), invalid("volumeId"));
      await assert.rejects(client.writeBlob("writeNeedle", { ...good, volumeId: "1.5" }, needle.data), invalid("volumeId"));
      await assert.rejects(client.writeBlob("writeNeedle", { ...good, needleId: needle.needleId.toUpperCase() }, needle.data), invalid("needleId"));
      await assert.rejects(client.writeBlob("writeNeedle", { ...good, needleId: "../etc" }, needle.data), invalid("needleId"));
      await assert.rejects(client.writeBlob("writeNeedle", { ...good, crc32: "4294967296" }, needle.data), invalid("crc32"));
      await assert.rejects(client.writeBlob("writeNeedle", { volumeId: good.volumeId, needleId: good.needleId }, needle.data), invalid("crc32"));
      await assert.rejects(client.readBlob("readNeedle", { volumeId: "1", needleId: needle.needleId, offsetBytes: "-1" }), invalid("offsetBytes"));
      await assert.rejects(client.readBlob("readNeedle", { volumeId: "1", needleId: needle.needleId, lengthBytes: "1e3" }), invalid("lengthBytes"));
      await assert.rejects(client.call("createVolume", { volumeId: "1" }), invalid("volumeId"));
      await assert.rejects(client.call("createVolume", { volumeId: -3 }), invalid("volumeId"));
      await assert.rejects(client.call("createVolume", null), invalid("body"));
      await assert.rejects(client.call("deleteNeedle", { volumeId: 1, needleId: 42 }), invalid("needleId"));
      await assert.rejects(client.call("deleteNeedle", { volumeId: 1, needleId: newNeedleId().slice(1) }), invalid("needleId"));
      // Nothing above reached the engine: the node is healthy and holds no needle.
      await assert.rejects(store.readNeedle(needle), NeedleNotFound);
      await store.writeNeedle(needle);
      assert.ok((await store.readNeedle(needle)).equals(needle.data));
    } finally {
      client.close();
    }
  });
});

test("a large chunk written over RPC lands in a pooled chunk buffer, goes around the page cache with directIo, and the buffer comes back", async () => {
  await withServedNode(
    async ({ node, store, diskDirectory }) => {
      const small = makeNeedle(VOLUME, 4000); // the chunk's needle then needs padding to line up
      await store.writeNeedle(small);
      const chunk = makeNeedle(VOLUME, NEEDLE_DATA_SIZE_BYTES_MAX);
      await store.writeNeedle(chunk);
      assert.ok((await store.readNeedle(chunk)).equals(chunk.data));
      const pool = chunkBufferPoolStats();
      assert.ok(pool.createdCount > 0, "the body was read into a chunk buffer");
      assert.equal(pool.freeCount, pool.createdCount, "and every chunk buffer is back in the pool");
      if (await directWritesAllowedIn(diskDirectory)) assert.ok(node.stats().directWriteBytes >= NEEDLE_DATA_SIZE_BYTES_MAX - 4096, `${node.stats().directWriteBytes} bytes went around the cache`);
      else assert.equal(node.stats().directWriteBytes, 0, "the disk refuses O_DIRECT (tmpfs)");
    },
    { directIo: true },
  );
});
