// Proves readWholeBody over real HTTP: a body in many pieces comes back whole; one past the limit
// rejects with the caller's error and the connection is dropped; a client that goes away
// mid-body makes it reject rather than wait.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { readWholeBody } from "./http-body.js";

class TooLarge extends Error {}

/** A server that reads each request with readWholeBody and records how it ended. */
async function withServer(
  limit: { sizeBytesMax: number; tooLarge: () => Error } | undefined,
  run: (port: number, outcomes: Array<Buffer | Error>) => Promise<void>,
): Promise<void> {
  const outcomes: Array<Buffer | Error> = [];
  const server = http.createServer((req, res) => {
    readWholeBody(req, limit).then(
      (body) => {
        outcomes.push(body);
        res.end(String(body.length));
      },
      (error: Error) => outcomes.push(error),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  try {
    await run((server.address() as AddressInfo).port, outcomes);
  } finally {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
}

/** Sends `pieces` as one request body; resolves with the response text, or the error. */
function send(port: number, pieces: Buffer[], options: { abortAfterPieces?: number } = {}): Promise<string | Error> {
  return new Promise((resolve) => {
    const request = http.request({ host: "127.0.0.1", port, method: "PUT", path: "/", headers: { "transfer-encoding": "chunked" } }, (response) => {
      let text = "";
      response.on("data", (piece: Buffer) => (text += piece.toString()));
      response.on("end", () => resolve(text));
      response.on("error", resolve);
    });
    request.on("error", resolve);
    pieces.forEach((piece, index) => {
      if (options.abortAfterPieces === index) {
        setTimeout(() => request.destroy(), 50);
        return;
      }
      request.write(piece);
    });
    if (options.abortAfterPieces === undefined) request.end();
  });
}

const until = async (condition: () => boolean): Promise<void> => {
  for (let i = 0; i < 200 && !condition(); i++) await new Promise((resolve) => setTimeout(resolve, 10));
};

test("a body sent in pieces is read whole, byte for byte", async () => {
  await withServer(undefined, async (port, outcomes) => {
    const pieces = Array.from({ length: 5 }, (_, i) => Buffer.alloc(10_000 + i, i + 1));
    assert.equal(await send(port, pieces), String(50_010));
    assert.ok(outcomes[0] instanceof Buffer && outcomes[0].equals(Buffer.concat(pieces)));
  });
});

test("a body past the limit rejects with the caller's error and drops the connection", async () => {
  await withServer({ sizeBytesMax: 15_000, tooLarge: () => new TooLarge() }, async (port, outcomes) => {
    assert.equal(await send(port, [Buffer.alloc(10_000), Buffer.alloc(10_000)]).then((r) => r instanceof Error), true);
    await until(() => outcomes.length > 0);
    assert.ok(outcomes[0] instanceof TooLarge);
    assert.equal(await send(port, [Buffer.alloc(15_000)]), "15000", "exactly the limit is read");
  });
});

test("a client gone mid-body makes the read reject", async () => {
  await withServer(undefined, async (port, outcomes) => {
    await send(port, [Buffer.alloc(1000), Buffer.alloc(1000)], { abortAfterPieces: 1 });
    await until(() => outcomes.length > 0);
    assert.ok(outcomes[0] instanceof Error, "rejected, not left waiting");
  });
});
