// Proves the data node's repair calls over its internal API (a RemoteNeedleStore against a real
// RPC server over a real DataNode): listNeedles pages a volume's needles in id order with their
// tombstones flagged; rewriteNeedle appends a missing needle to a writable volume, leaves an
// intact one alone, answers "tombstoned" for a deleted one (which stays deleted), and refuses a
// copy whose CRC does not match; malformed listNeedles arguments never reach the engine.
// sealVolume (repair, drain) seals a writable volume as a full one is sealed, idempotently.
import { test } from "node:test";
import assert from "node:assert/strict";
import type { AddressInfo } from "node:net";
import { NEEDLE_DATA_SIZE_BYTES_MAX, type VolumeId } from "../base/index.js";
import { ChecksumMismatch, createRpcServer, NeedleNotFound, RemoteNeedleStore, RpcClient, VolumeFull, VolumeNotFound } from "../cluster/index.js";
import { createDataNodeRpcRoutes, DataNode, DataNodeRequestInvalid, LIST_NEEDLES_COUNT_MAX } from "./index.js";
import { makeNeedle, makeTemporaryDisks, TEST_NODE_ID } from "./fixtures.js";

const SECRET = "test-cluster-secret";
const VOLUME = 1 as VolumeId;

async function withServedNode(body: (served: { node: DataNode; store: RemoteNeedleStore; rpc: RpcClient }) => Promise<void>): Promise<void> {
  const disks = await makeTemporaryDisks(1);
  const node = await DataNode.open({ nodeId: TEST_NODE_ID, diskDirectories: disks.disks });
  const server = createRpcServer({ secret: SECRET, routes: createDataNodeRpcRoutes(node), blobSizeBytesMax: NEEDLE_DATA_SIZE_BYTES_MAX + 65_536 });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const store = new RemoteNeedleStore({ nodeId: TEST_NODE_ID, address, secret: SECRET, timeoutMs: 2_000 });
  const rpc = new RpcClient(address, SECRET);
  try {
    await store.createVolume(VOLUME);
    await body({ node, store, rpc });
  } finally {
    rpc.close();
    await store.close();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await node.close();
    await disks.cleanup();
  }
}

test("listNeedles pages a volume's needles in id order, tombstones flagged", async () => {
  await withServedNode(async ({ store }) => {
    const needles = Array.from({ length: 7 }, () => makeNeedle(VOLUME, 100));
    for (const needle of needles) await store.writeNeedle(needle);
    await store.deleteNeedle(needles[2]!);
    const ids = needles.map((needle) => needle.needleId).sort();
    const seen: string[] = [];
    let after: string | undefined;
    for (let page = 0; page < 10; page++) {
      const entries = await store.listNeedles(after === undefined ? { volumeId: VOLUME, countMax: 3 } : { volumeId: VOLUME, afterNeedleId: after as never, countMax: 3 });
      assert.ok(entries.length <= 3);
      seen.push(...entries.map((entry) => entry.needleId));
      for (const entry of entries) assert.equal(entry.tombstone, entry.needleId === needles[2]!.needleId);
      if (entries.length < 3) break;
      after = entries[entries.length - 1]!.needleId;
    }
    assert.deepEqual(seen, ids, "every needle once, in id order");
    await assert.rejects(store.listNeedles({ volumeId: 9 as VolumeId, countMax: 3 }), VolumeNotFound);
  });
});

test("malformed listNeedles arguments are refused before the engine", async () => {
  await withServedNode(async ({ rpc }) => {
    for (const body of [{ volumeId: 1, countMax: 0 }, { volumeId: 1, countMax: LIST_NEEDLES_COUNT_MAX + 1 }, { volumeId: 1, countMax: 5, afterNeedleId: "xyz" }, { volumeId: 0, countMax: 5 }]) {
      await assert.rejects(rpc.call("listNeedles", body), DataNodeRequestInvalid, JSON.stringify(body));
    }
  });
});

test("rewriteNeedle appends a missing needle, leaves an intact one, keeps a deleted one dead, refuses a bad CRC", async () => {
  await withServedNode(async ({ store }) => {
    const missing = makeNeedle(VOLUME, 5_000);
    assert.equal(await store.rewriteNeedle(missing), "appended");
    assert.ok((await store.readNeedle(missing)).equals(missing.data));
    assert.equal(await store.rewriteNeedle(missing), "intact", "a second rewrite of a sound needle writes nothing");
    const deleted = makeNeedle(VOLUME, 300);
    await store.writeNeedle(deleted);
    await store.deleteNeedle(deleted);
    assert.equal(await store.rewriteNeedle(deleted), "tombstoned");
    await assert.rejects(store.readNeedle(deleted), NeedleNotFound);
    await assert.rejects(store.rewriteNeedle({ ...missing, crc32: (missing.crc32 + 1) >>> 0 }), ChecksumMismatch);
  });
});

test("sealVolume over RPC seals a writable volume after its queued writes, idempotently; later writes get VolumeFull", async () => {
  await withServedNode(async ({ node, store, rpc }) => {
    const before = Array.from({ length: 6 }, () => makeNeedle(VOLUME, 3_000));
    const writes = before.map((needle) => store.writeNeedle(needle));
    await Promise.all(writes);
    const status = await store.sealVolume({ volumeId: VOLUME });
    assert.equal(status.state, "sealed");
    assert.equal(status.needleCount, before.length);
    assert.deepEqual(node.scrubbableVolumeIds(), [VOLUME], "the scrubber now reads it");
    assert.equal((await node.verifySealedVolume(VOLUME)).ok, true);
    await assert.rejects(store.writeNeedle(makeNeedle(VOLUME, 100)), VolumeFull);
    assert.deepEqual(await store.sealVolume({ volumeId: VOLUME }), status, "sealing a sealed volume changes nothing");
    for (const needle of before) assert.ok((await store.readNeedle(needle)).equals(needle.data));
    await assert.rejects(store.sealVolume({ volumeId: 9 as VolumeId }), VolumeNotFound);
    await assert.rejects(rpc.call("sealVolume", { volumeId: 0 }), DataNodeRequestInvalid);
  });
});
