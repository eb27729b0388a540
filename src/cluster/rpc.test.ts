// The internal RPC's two lanes: framed connections (rpc-stream.ts) where the server offers them,
// HTTP where it does not, with the same answers and typed errors on both, and the framed lane's
// authentication (signed upgrade, then a per-connection challenge).
import { test } from "node:test";
import assert from "node:assert/strict";
import * as http from "node:http";
import * as net from "node:net";
import type { AddressInfo } from "node:net";
import type { VolumeId } from "../base/index.js";
import { createRpcHandler, createRpcServer, PeerUnavailable, RemoteError, RpcClient, VolumeFull, type RpcRoutes } from "./index.js";
import { PassThrough } from "node:stream";
import { setImmediate as nextTurn } from "node:timers/promises";
import { challengeOf, encodeFrame, FrameReader, FrameType, RPC_STREAM_PATH, RPC_STREAM_PROTOCOL, signChallenge, writeFrame, writeFrameInTurn } from "./rpc-stream.js";

const SECRET = "test-cluster-secret";

const routes: RpcRoutes = {
  json: {
    echo: async (body) => ({ echoed: body }),
    full: async () => {
      throw new VolumeFull(7 as VolumeId);
    },
    never: () => new Promise(() => undefined),
  },
  blobWrite: { length: async (query, body) => ({ length: body.length, tag: query.get("tag") }) },
  blobRead: { bytes: async (query) => Buffer.alloc(Number(query.get("size")), 0x5a) },
};

async function listening(server: http.Server, t: { after: (fn: () => Promise<void>) => void }): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.after(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function exercise(client: RpcClient): Promise<void> {
  assert.deepEqual(await client.call("echo", { a: 1, b: [true, "x"], c: undefined }), { echoed: { a: 1, b: [true, "x"], c: undefined } });
  assert.deepEqual(await client.writeBlob("length", { tag: "small" }, Buffer.alloc(4096)), { length: 4096, tag: "small" });
  assert.deepEqual(await client.writeBlob("length", { tag: "medium" }, Buffer.alloc(1024 * 1024 + 1)), { length: 1024 * 1024 + 1, tag: "medium" });
  // From 2 MiB on it takes HTTP (the data node reads it into a chunk buffer, to write it with O_DIRECT).
  assert.deepEqual(await client.writeBlob("length", { tag: "large" }, Buffer.alloc(2 * 1024 * 1024)), { length: 2 * 1024 * 1024, tag: "large" });
  const read = await client.readBlob("bytes", { size: String(3 * 1024 * 1024 + 5) });
  assert.equal(read.length, 3 * 1024 * 1024 + 5);
  assert.ok(read.every((byte) => byte === 0x5a));
  await assert.rejects(client.call("full", {}), (error: unknown) => error instanceof VolumeFull && error.volumeId === 7);
  await assert.rejects(client.call("nothing", {}), (error: unknown) => error instanceof RemoteError && error.remoteName === "NoSuchRoute");
}

test("a client talks frames to a server that offers them, with the answers and typed errors of HTTP", async (t) => {
  const address = await listening(createRpcServer({ secret: SECRET, routes, blobSizeBytesMax: 8 * 1024 * 1024 }), t);
  const client = new RpcClient(address, SECRET);
  t.after(() => client.close());
  await exercise(client);
  assert.equal(client.framed, true);
  // Many calls at once share the one connection and each gets its own answer.
  const answers = await Promise.all(Array.from({ length: 200 }, (_, index) => client.call<{ echoed: number }>("echo", index)));
  assert.deepEqual(answers.map((answer) => answer.echoed), Array.from({ length: 200 }, (_, index) => index));
});

test("large frames written in one turn go out in later turns, each whole, and not at all once unwanted", async () => {
  const socket = new PassThrough();
  const received: Buffer[] = [];
  socket.on("data", (piece: Buffer) => received.push(piece));
  const payloads = [1, 2, 3, 4].map((fill) => Buffer.alloc(1024 * 1024, fill));
  for (const [index, payload] of payloads.entries()) writeFrameInTurn(socket, index + 1, FrameType.BlobWrite, `write?n=${index}`, payload, () => true);
  // Unwanted by the time its turn comes (its call timed out): never written.
  writeFrameInTurn(socket, 99, FrameType.BlobWrite, "write?n=late", Buffer.alloc(1024 * 1024, 9), () => false);
  const writtenAtOnce = received.reduce((sum, piece) => sum + piece.length, 0);
  assert.ok(writtenAtOnce < 2 * 1024 * 1024, `at most one 1 MiB frame in this turn, saw ${writtenAtOnce} bytes`);
  for (let turn = 0; turn < 10; turn++) await nextTurn();
  const reader = new FrameReader(8 * 1024 * 1024);
  reader.push(Buffer.concat(received));
  const frames = [];
  for (let frame = reader.next(); frame !== undefined; frame = reader.next()) frames.push(frame);
  assert.deepEqual(frames.map((frame) => frame.id), [1, 2, 3, 4]);
  for (const [index, frame] of frames.entries()) {
    assert.equal(frame.head, `write?n=${index}`);
    assert.ok(frame.payload.equals(payloads[index]!), `frame ${frame.id} arrived whole`);
  }
});

test("a frame's payload spanning reads goes into the destination offered for its id, whatever the cut", () => {
  // Large payloads cut into reads of a few sizes; small ones cut into single bytes.
  const cases = [
    { cuts: [1000, 65_536, Infinity], sizes: [300_000, 12, 200_000] },
    { cuts: [1, 5], sizes: [40, 3, 17] },
  ];
  for (const { cuts, sizes } of cases) {
    const payloads = new Map(sizes.map((size, index) => [index + 1, Buffer.alloc(size, index + 1)]));
    const bytes = Buffer.concat([...payloads].flatMap(([id, payload]) => encodeFrame(id, FrameType.ResultBlob, id === 3 ? "with-head" : "", payload)));
    for (const cut of cuts) {
      const cutBytes = Math.min(cut, bytes.length);
      // Destinations for ids 1 and 2; id 3 gets a buffer of the reader's own.
      const destinations = new Map([
        [1, Buffer.alloc(sizes[0]!)],
        [2, Buffer.alloc(sizes[1]!)],
      ]);
      const asked: number[] = [];
      const reader = new FrameReader(1 << 20, (id, payloadBytes) => {
        asked.push(id);
        const into = destinations.get(id);
        return into?.length === payloadBytes ? into : undefined;
      });
      const frames = [];
      for (let offset = 0; offset < bytes.length; offset += cutBytes) {
        reader.push(bytes.subarray(offset, offset + cutBytes));
        for (let frame = reader.next(); frame !== undefined; frame = reader.next()) frames.push(frame);
      }
      assert.deepEqual(frames.map((frame) => frame.id), [1, 2, 3], `cut ${cutBytes}`);
      for (const frame of frames) {
        assert.ok(frame.payload.equals(payloads.get(frame.id)!), `frame ${frame.id} whole at cut ${cutBytes}`);
        assert.equal(frame.head, frame.id === 3 ? "with-head" : "");
      }
      if (cutBytes === bytes.length) {
        // All in one read: views of it, no destination asked for.
        assert.deepEqual(asked, []);
      } else {
        // The first payload spans reads: it is the destination itself.
        assert.equal(frames[0]!.payload, destinations.get(1), `cut ${cutBytes}`);
        assert.ok(asked.includes(3), `asked ${asked.join(",")} at cut ${cutBytes}`);
      }
    }
  }
});

test("readBlob answers in the buffer it is given, and in memory of its own when the length differs", async (t) => {
  const address = await listening(createRpcServer({ secret: SECRET, routes, blobSizeBytesMax: 8 * 1024 * 1024 }), t);
  const client = new RpcClient(address, SECRET);
  t.after(() => client.close());
  await client.call("echo", "open the framed lane");
  assert.equal(client.framed, true);
  const into = Buffer.alloc(1024 * 1024);
  const read = await client.readBlob("bytes", { size: String(into.length) }, { into });
  assert.equal(read, into);
  assert.ok(into.every((byte) => byte === 0x5a));
  const other = Buffer.alloc(1024 * 1024);
  const longer = await client.readBlob("bytes", { size: String(other.length + 1) }, { into: other });
  assert.notEqual(longer, other);
  assert.equal(longer.length, other.length + 1);
  assert.ok(other.every((byte) => byte === 0), "a buffer of another length is left alone");
});

test("a server without the framed lane is spoken to over HTTP, with the same answers", async (t) => {
  const address = await listening(http.createServer(createRpcHandler({ secret: SECRET, routes, blobSizeBytesMax: 8 * 1024 * 1024 })), t);
  const client = new RpcClient(address, SECRET);
  t.after(() => client.close());
  await exercise(client);
  assert.equal(client.framed, false);
});

test("a call that gets no answer fails with PeerUnavailable at its deadline, and the connection goes on serving", async (t) => {
  const address = await listening(createRpcServer({ secret: SECRET, routes, blobSizeBytesMax: 1024 }), t);
  const client = new RpcClient(address, SECRET);
  t.after(() => client.close());
  const startedMs = Date.now();
  await assert.rejects(client.call("never", {}, { timeoutMs: 200 }), PeerUnavailable);
  assert.ok(Date.now() - startedMs < 2_000);
  assert.deepEqual(await client.call("echo", "after"), { echoed: "after" });
  assert.equal(client.framed, true);
});

test("a wrong cluster secret is refused on the framed lane as on HTTP", async (t) => {
  const address = await listening(createRpcServer({ secret: SECRET, routes, blobSizeBytesMax: 1024 }), t);
  const client = new RpcClient(address, "not-the-secret");
  t.after(() => client.close());
  await assert.rejects(client.call("echo", 1), (error: unknown) => error instanceof RemoteError && error.remoteName === "RpcAuthError");
  assert.equal(client.framed, false);
});

/**
 * Opens a framed connection by hand: an upgrade signed with the right secret (as an eavesdropper
 * would replay it), then the first frame `authOf(challenge)`, then one call.
 */
async function rawStream(address: string, authOf: (challenge: string) => string | Buffer): Promise<{ answers: FrameType[]; closed: boolean }> {
  const { createHmac } = await import("node:crypto");
  const nowMs = Date.now();
  const auth = `${nowMs}.${createHmac("sha256", SECRET).update(`GET\n${RPC_STREAM_PATH}\n${nowMs}`).digest("hex")}`;
  const url = new URL(address);
  return new Promise((resolve, reject) => {
    const request = http.request({ host: url.hostname, port: url.port, path: RPC_STREAM_PATH, agent: false, headers: { connection: "Upgrade", upgrade: RPC_STREAM_PROTOCOL, "x-cairn-auth": auth } });
    request.on("upgrade", (response: http.IncomingMessage, socket: net.Socket) => {
      const answers: FrameType[] = [];
      const reader = new FrameReader(1 << 20);
      socket.on("data", (piece: Buffer) => {
        reader.push(piece);
        for (let frame = reader.next(); frame !== undefined; frame = reader.next()) answers.push(frame.type);
      });
      socket.on("close", () => resolve({ answers, closed: true }));
      // A server that cuts the connection while frames are still arriving resets it.
      socket.on("error", () => undefined);
      const auth = authOf(challengeOf(response) ?? "");
      // A Buffer is sent as it is: raw bytes in place of the first frame.
      if (Buffer.isBuffer(auth)) socket.write(auth);
      else writeFrame(socket, 0, FrameType.Auth, "", Buffer.from(auth, "latin1"));
      writeFrame(socket, 1, FrameType.Call, "echo", Buffer.from("1"));
      // Right behind the signature, in the same write: a frame far larger than a signature may be.
      writeFrame(socket, 2, FrameType.BlobWrite, "length?tag=x", Buffer.alloc(64 * 1024));
      setTimeout(() => resolve({ answers, closed: socket.destroyed }), 1_000).unref();
    });
    request.on("error", reject);
    request.end();
  });
}

test("a replayed upgrade cannot sign the new challenge: its connection is closed before any call is served", async (t) => {
  const address = await listening(createRpcServer({ secret: SECRET, routes, blobSizeBytesMax: 128 * 1024 }), t);
  // With the challenge signed, the call is answered (the hand-made client works)...
  const answered = await rawStream(address, (challenge) => signChallenge(SECRET, challenge));
  assert.deepEqual(answered.answers, [FrameType.ResultJson, FrameType.ResultJson]);
  // ...and a replay, which cannot sign a challenge it never saw, is cut off unanswered...
  const refused = await rawStream(address, () => "0".repeat(64));
  assert.deepEqual(refused, { answers: [], closed: true });
  // ...as is one that announces more than a signature first, at once, before those bytes come.
  const header = Buffer.alloc(12);
  header.writeUInt32BE(10 * 1024 * 1024, 0);
  const oversized = await rawStream(address, () => header);
  assert.deepEqual(oversized, { answers: [], closed: true });
});

test("closing the server ends its framed connections; the next call fails with PeerUnavailable", async (t) => {
  const server = createRpcServer({ secret: SECRET, routes, blobSizeBytesMax: 1024 });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const client = new RpcClient(`http://127.0.0.1:${(server.address() as AddressInfo).port}`, SECRET);
  t.after(() => client.close());
  assert.deepEqual(await client.call("echo", 1), { echoed: 1 });
  assert.equal(client.framed, true);
  await new Promise<void>((resolve) => server.close(() => resolve()));
  await assert.rejects(client.call("echo", 2, { timeoutMs: 1_000 }), PeerUnavailable);
});
