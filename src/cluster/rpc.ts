/**
 * Internal RPC between Cairn processes: HTTP/1.1 with keep-alive and TCP_NODELAY, JSON for
 * control messages and raw bytes for needle payloads. Every request is authenticated with the
 * cluster secret (an HMAC over method, path and a timestamp), so a stranger on the network can
 * neither read nor write needles nor talk to placement.
 *
 * Routes:  POST /rpc/<method>           JSON body -> JSON body
 *          PUT  /blob/<method>?<args>   raw body  -> JSON body   (needle writes)
 *          GET  /blob/<method>?<args>              -> raw body    (needle reads)
 *          GET  /rpc-stream (Upgrade)   the same three as frames on one connection (rpc-stream.ts),
 *                                       which the client prefers where the server offers it
 * Errors travel as { error: { name, message, fields } } and are rebuilt as typed errors by
 * the client from a registry of known names, so inner layers keep their operating errors.
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import * as http from "node:http";
import {
  CHUNK_BUFFER_DATA_OFFSET_BYTES,
  CHUNK_SIZE_BYTES,
  copyBytes,
  log,
  MEBIBYTE,
  readWholeBody,
  releaseChunkBuffer,
  SECOND_MS,
  tryTakeChunkBuffer,
} from "../base/index.js";
import { ChecksumMismatch, DiskFull, NeedleNotFound, VolumeFull, VolumeNotFound } from "./needle-store.js";
import {
  AUTH_FRAME_BYTES_MAX,
  challengeOf,
  challengeSignatureValid,
  FrameReader,
  FrameType,
  newChallenge,
  RPC_STREAM_PATH,
  RPC_STREAM_PROTOCOL,
  signChallenge,
  switchingProtocolsResponse,
  writeFrame,
  writeFrameInTurn,
  type Frame,
} from "./rpc-stream.js";
import type { Duplex } from "node:stream";

/** A request signed more than this far from our clock is refused (replay window). */
export const RPC_AUTH_SKEW_MS_MAX = 5 * 60 * SECOND_MS;
/** Default deadline of one RPC; a hung peer (SIGSTOP) costs at most this. */
export const RPC_TIMEOUT_MS_DEFAULT = 5 * SECOND_MS;
/** JSON bodies are control messages; anything bigger is a bug or an attack. */
export const RPC_JSON_BODY_SIZE_BYTES_MAX = 16 * 1024 * 1024;
/** Sockets kept open per peer. */
export const RPC_SOCKETS_PER_PEER_MAX = 64;

const AUTH_HEADER = "x-cairn-auth";

export class RpcAuthError extends Error {
  override name = "RpcAuthError";
}

/** The peer could not be reached or did not answer in time. */
export class PeerUnavailable extends Error {
  override name = "PeerUnavailable";
  constructor(
    readonly peer: string,
    readonly reason: string,
  ) {
    super(`peer ${peer} unavailable: ${reason}`);
  }
}

/** The peer answered with an error we have no type for. */
export class RemoteError extends Error {
  override name = "RemoteError";
  constructor(
    readonly remoteName: string,
    message: string,
    readonly statusCode: number,
  ) {
    super(`${remoteName}: ${message}`);
  }
}

type ErrorFactory = (message: string, fields: Record<string, unknown>) => Error;
const errorRegistry = new Map<string, ErrorFactory>();

/** Make an operating error travel across RPC: the server sends its fields, the client rebuilds it. */
export function registerRpcError(name: string, factory: ErrorFactory): void {
  errorRegistry.set(name, factory);
}

registerRpcError("VolumeFull", (_m, f) => new VolumeFull(f.volumeId as never));
registerRpcError("VolumeNotFound", (_m, f) => new VolumeNotFound(f.volumeId as never));
registerRpcError("NeedleNotFound", (_m, f) => new NeedleNotFound(f.volumeId as never, f.needleId as never));
registerRpcError("ChecksumMismatch", (_m, f) => new ChecksumMismatch(f.volumeId as never, f.needleId as never));
registerRpcError("DiskFull", (_m, f) => new DiskFull(f.volumeId as never));

function sign(secret: string, method: string, path: string, timestampMs: number): string {
  return createHmac("sha256", secret).update(`${method}\n${path}\n${timestampMs}`).digest("hex");
}

function authHeader(secret: string, method: string, path: string, nowMs: number): string {
  return `${nowMs}.${sign(secret, method, path, nowMs)}`;
}

function verifyAuth(secret: string, req: http.IncomingMessage, nowMs: number): void {
  const value = req.headers[AUTH_HEADER];
  if (typeof value !== "string") throw new RpcAuthError("missing cluster authentication");
  const dot = value.indexOf(".");
  const timestampMs = Number(value.slice(0, dot));
  if (!Number.isFinite(timestampMs) || Math.abs(nowMs - timestampMs) > RPC_AUTH_SKEW_MS_MAX) throw new RpcAuthError("stale cluster authentication");
  const expected = Buffer.from(sign(secret, req.method ?? "", req.url ?? "", timestampMs), "hex");
  const given = Buffer.from(value.slice(dot + 1), "hex");
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) throw new RpcAuthError("bad cluster authentication");
}

export type JsonHandler = (body: unknown) => Promise<unknown>;
export type BlobWriteHandler = (query: URLSearchParams, body: Buffer) => Promise<unknown>;
export type BlobReadHandler = (query: URLSearchParams) => Promise<Buffer>;

export interface RpcRoutes {
  json?: Record<string, JsonHandler>;
  blobWrite?: Record<string, BlobWriteHandler>;
  blobRead?: Record<string, BlobReadHandler>;
}

function readBody(req: http.IncomingMessage, sizeBytesMax: number): Promise<Buffer> {
  return readWholeBody(req, { sizeBytesMax, tooLarge: () => new RemoteError("BodyTooLarge", `body over ${sizeBytesMax} bytes`, 413) });
}

/**
 * Blob bodies from this size up to a chunk (needle writes of large objects' chunks) are read into
 * a pooled chunk buffer, where a PUT's chunk sits in the gateway (CHUNK_BUFFER_DATA_OFFSET_BYTES):
 * a data node started with --direct-io then writes them around the page cache without a copy.
 */
const BLOB_INTO_CHUNK_BUFFER_SIZE_BYTES_MIN = 1 * MEBIBYTE;
/**
 * Needle writes below this size travel as frames. Larger ones keep HTTP, where the data node
 * reads the body into a pooled chunk buffer at the offset that lets it write the needle with
 * O_DIRECT from there (the data node's DIRECT_WRITE_BYTES_MIN: smaller needles are buffered).
 */
const BLOB_FRAMED_SIZE_BYTES_MAX = 2 * MEBIBYTE;

/**
 * A blob write's body, in a chunk buffer when its declared length suits one (else as readBody
 * reads it); `release` gives the buffer back and is called once the handler has settled, since
 * blob write handlers keep nothing of the body.
 */
async function readBlobBody(req: http.IncomingMessage, sizeBytesMax: number): Promise<{ body: Buffer; release: () => void }> {
  const declaredBytes = Number(req.headers["content-length"] ?? Number.NaN);
  const fits = declaredBytes >= BLOB_INTO_CHUNK_BUFFER_SIZE_BYTES_MIN && declaredBytes <= Math.min(CHUNK_SIZE_BYTES, sizeBytesMax);
  const buffer = fits ? tryTakeChunkBuffer() : undefined;
  if (buffer === undefined) return { body: await readBody(req, sizeBytesMax), release: () => undefined };
  const release = (): void => releaseChunkBuffer(buffer);
  try {
    const target = buffer.bytes.subarray(CHUNK_BUFFER_DATA_OFFSET_BYTES, CHUNK_BUFFER_DATA_OFFSET_BYTES + declaredBytes);
    let sizeBytes = 0;
    for await (const piece of req as AsyncIterable<Buffer>) {
      // HTTP framing ends the body at its declared length; more would be a broken parser.
      if (sizeBytes + piece.length > declaredBytes) throw new RemoteError("BodyTooLarge", `body over its declared ${declaredBytes} bytes`, 413);
      copyBytes(target, piece, sizeBytes);
      sizeBytes += piece.length;
    }
    return { body: target.subarray(0, sizeBytes), release };
  } catch (error) {
    release();
    throw error;
  }
}

function errorFields(error: Error): Record<string, unknown> {
  const fields: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(error)) {
    if (typeof value === "string" || typeof value === "number" || typeof value === "boolean") fields[name] = value;
  }
  return fields;
}

/**
 * Our message types use `undefined`, never `null`; JSON knows only null. Fields that are
 * undefined travel as null and are restored as undefined (present, not missing), so a value
 * round-trips deep-equal. A Buffer (an inline object's bytes) travels as base64 in an object
 * whose only key, BUFFER_WIRE_KEY, no record of ours can have (header names, tag keys and
 * field names hold no NUL).
 */
export function toWireJson(value: unknown): string {
  return JSON.stringify(value ?? null, function (this: Record<string, unknown>, key: string, item: unknown) {
    if (item === undefined) return null;
    // `item` is what Buffer's toJSON made of it; the holder still has the Buffer itself.
    const raw = this[key];
    return Buffer.isBuffer(raw) ? { [BUFFER_WIRE_KEY]: raw.toString("base64") } : item;
  });
}

export function fromWireJson(text: string): unknown {
  return restoreUndefined(JSON.parse(text));
}

const BUFFER_WIRE_KEY = "\u0000base64";

function restoreUndefined(value: unknown): unknown {
  if (value === null) return undefined;
  if (Array.isArray(value)) return value.map(restoreUndefined);
  if (typeof value === "object") {
    const record = value as Record<string, unknown>;
    const base64 = record[BUFFER_WIRE_KEY];
    if (typeof base64 === "string" && Object.keys(record).length === 1) return Buffer.from(base64, "base64");
    for (const key of Object.keys(record)) record[key] = restoreUndefined(record[key]);
  }
  return value;
}

function sendJson(res: http.ServerResponse, statusCode: number, value: unknown): void {
  const body = Buffer.from(toWireJson(value));
  res.writeHead(statusCode, { "content-type": "application/json", "content-length": String(body.length) });
  res.end(body);
}

export interface RpcServerOptions {
  secret: string;
  routes: RpcRoutes;
  nowMs?: () => number;
  blobSizeBytesMax: number;
}

/** The request listener of an RPC server, and the listener of its 'upgrade' event (frames). */
export type RpcHandler = ((req: http.IncomingMessage, res: http.ServerResponse) => void) & {
  upgrade: (req: http.IncomingMessage, socket: Duplex, head: Buffer) => void;
  /**
   * Ends the framed connections (a closing http.Server does not know them): idle ones now, busy
   * ones when their last answer is out or after `graceMs`, as HTTP connections are ended.
   */
  closeStreams: (graceMs?: number) => void;
};

/** An http.Server serving `options` on both lanes, closing its framed connections when it closes. */
export function createRpcServer(options: RpcServerOptions, serverOptions: http.ServerOptions = {}): http.Server {
  const handler = createRpcHandler(options);
  const server = http.createServer({ noDelay: true, ...serverOptions }, handler);
  server.on("upgrade", handler.upgrade);
  const close = server.close.bind(server);
  server.close = (callback?: (error?: Error) => void) => {
    handler.closeStreams(RPC_STREAM_CLOSE_GRACE_MS);
    return close(callback);
  };
  return server;
}

/** Create the HTTP handler of an RPC server; `secret` authenticates every request. */
export function createRpcHandler(options: RpcServerOptions): RpcHandler {
  const nowMs = options.nowMs ?? (() => Date.now());
  const streams: ServedStreams = { sockets: new Map(), closing: false };
  const handler = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    void (async () => {
      try {
        verifyAuth(options.secret, req, nowMs());
        const url = new URL(req.url ?? "/", "http://internal");
        const [, kind, method] = url.pathname.split("/");
        if (kind === "rpc" && req.method === "POST" && method && options.routes.json?.[method]) {
          const body = await readBody(req, RPC_JSON_BODY_SIZE_BYTES_MAX);
          const result = await options.routes.json[method]!(body.length === 0 ? undefined : fromWireJson(body.toString("utf8")));
          sendJson(res, 200, { result });
          return;
        }
        if (kind === "blob" && req.method === "PUT" && method && options.routes.blobWrite?.[method]) {
          const { body, release } = await readBlobBody(req, options.blobSizeBytesMax);
          let result: unknown;
          try {
            result = await options.routes.blobWrite[method]!(url.searchParams, body);
          } finally {
            release();
          }
          sendJson(res, 200, { result });
          return;
        }
        if (kind === "blob" && req.method === "GET" && method && options.routes.blobRead?.[method]) {
          const data = await options.routes.blobRead[method]!(url.searchParams);
          res.writeHead(200, { "content-type": "application/octet-stream", "content-length": String(data.length) });
          res.end(data);
          return;
        }
        sendJson(res, 404, { error: { name: "NoSuchRoute", message: `${req.method} ${url.pathname}`, fields: {} } });
      } catch (error) {
        const failure = failureOf(error, req.url ?? "");
        if (!res.headersSent) sendJson(res, failure.statusCode, { error: failure.error });
        else res.destroy();
      }
    })();
  };
  const upgrade = (req: http.IncomingMessage, socket: Duplex, head: Buffer): void => {
    try {
      verifyAuth(options.secret, req, nowMs());
    } catch (error) {
      refuseRpcUpgrade(socket, 401, "RpcAuthError", (error as Error).message);
      return;
    }
    if (req.url !== RPC_STREAM_PATH || String(req.headers.upgrade).toLowerCase() !== RPC_STREAM_PROTOCOL) {
      refuseRpcUpgrade(socket, 404, "NoSuchRoute", `upgrade of ${req.url} to ${req.headers.upgrade}`);
      return;
    }
    serveStream(socket, head, options, streams);
  };
  const closeStreams = (graceMs = 0): void => {
    streams.closing = true;
    for (const [socket, state] of streams.sockets) {
      if (state.framesInFlight === 0 || graceMs <= 0) socket.destroy();
      else setTimeout(() => socket.destroy(), graceMs).unref();
    }
  };
  return Object.assign(handler, { upgrade, closeStreams });
}

/**
 * How a failed call is answered on either lane: its status (401 for authentication, 409 for an
 * operating error the client rebuilds by name, 500 for anything else, which is logged) and the
 * error as the client reads it.
 */
function failureOf(error: unknown, call: string): { statusCode: number; error: { name: string; message: string; fields: Record<string, unknown> } } {
  if (error instanceof RpcAuthError) return { statusCode: 401, error: { name: "RpcAuthError", message: error.message, fields: {} } };
  const typed = error instanceof Error ? error : new Error(String(error));
  const known = errorRegistry.has(typed.name);
  if (!known) log.warn({ error: typed, call }, "rpc handler failed");
  return { statusCode: known ? 409 : 500, error: { name: typed.name, message: typed.message, fields: errorFields(typed) } };
}

/**
 * Answers an upgrade to the framed lane with an HTTP error instead (the client then uses HTTP, and
 * tries the upgrade again later unless it was 404), in the { error } body both lanes send.
 */
export function refuseRpcUpgrade(socket: Duplex, statusCode: number, name: string, message: string): void {
  const body = toWireJson({ error: { name, message, fields: {} } });
  socket.end(`HTTP/1.1 ${statusCode} ${http.STATUS_CODES[statusCode]}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
}

/** Largest frame a server takes: a blob write of the largest body, or the largest JSON body. */
function requestFrameBytesMax(options: RpcServerOptions): number {
  return Math.max(options.blobSizeBytesMax, RPC_JSON_BODY_SIZE_BYTES_MAX) + 64 * 1024;
}

/** A server's framed connections, each with its requests still being served. */
interface ServedStreams {
  sockets: Map<Duplex, { framesInFlight: number }>;
  /** Set by closeStreams: a connection is ended once it has nothing in flight. */
  closing: boolean;
}

/** How long a closing RPC server (createRpcServer) lets framed requests in flight finish. */
const RPC_STREAM_CLOSE_GRACE_MS = 5 * SECOND_MS;

function serveStream(socket: Duplex, head: Buffer, options: RpcServerOptions, streams: ServedStreams): void {
  const challenge = newChallenge();
  // Until the challenge is signed a peer may send no more than the signature.
  const reader = new FrameReader(AUTH_FRAME_BYTES_MAX);
  let authenticated = false;
  const state = { framesInFlight: 0 };
  streams.sockets.set(socket, state);
  socket.on("close", () => streams.sockets.delete(socket));
  socket.on("error", () => socket.destroy());
  (socket as { setNoDelay?: (noDelay: boolean) => void }).setNoDelay?.(true);
  socket.write(switchingProtocolsResponse(challenge));
  const answer = (frame: Frame, type: FrameType, payload: Buffer | undefined): void => {
    if (!socket.destroyed) writeFrameInTurn(socket, frame.id, type, "", payload, () => true);
  };
  const serveFrame = async (frame: Frame): Promise<void> => {
    try {
      const question = frame.head.indexOf("?");
      const method = question < 0 ? frame.head : frame.head.slice(0, question);
      const query = new URLSearchParams(question < 0 ? "" : frame.head.slice(question + 1));
      if (frame.type === FrameType.Call && options.routes.json?.[method]) {
        const result = await options.routes.json[method]!(frame.payload.length === 0 ? undefined : fromWireJson(frame.payload.toString("utf8")));
        answer(frame, FrameType.ResultJson, Buffer.from(toWireJson({ result })));
        return;
      }
      if (frame.type === FrameType.BlobWrite && options.routes.blobWrite?.[method]) {
        if (frame.payload.length > options.blobSizeBytesMax) throw new RemoteError("BodyTooLarge", `body over ${options.blobSizeBytesMax} bytes`, 413);
        const result = await options.routes.blobWrite[method]!(query, frame.payload);
        answer(frame, FrameType.ResultJson, Buffer.from(toWireJson({ result })));
        return;
      }
      if (frame.type === FrameType.BlobRead && options.routes.blobRead?.[method]) {
        answer(frame, FrameType.ResultBlob, await options.routes.blobRead[method]!(query));
        return;
      }
      answer(frame, FrameType.Error, Buffer.from(toWireJson({ statusCode: 404, error: { name: "NoSuchRoute", message: `frame type ${frame.type} ${method}`, fields: {} } })));
    } catch (error) {
      answer(frame, FrameType.Error, Buffer.from(toWireJson(failureOf(error, frame.head))));
    }
  };
  const onData = (piece: Buffer): void => {
    reader.push(piece);
    for (;;) {
      let frame: Frame | undefined;
      try {
        frame = reader.next();
      } catch {
        socket.destroy();
        return;
      }
      if (frame === undefined) return;
      if (!authenticated) {
        // The first frame proves the secret by signing this connection's challenge; nothing else is served before.
        authenticated = frame.type === FrameType.Auth && challengeSignatureValid(options.secret, challenge, frame.payload.toString("latin1"));
        if (!authenticated) {
          socket.destroy();
          return;
        }
        reader.frameBytesMax = requestFrameBytesMax(options);
        continue;
      }
      state.framesInFlight += 1;
      void serveFrame(frame).finally(() => {
        state.framesInFlight -= 1;
        if (streams.closing && state.framesInFlight === 0) socket.destroy();
      });
    }
  };
  socket.on("data", onData);
  if (head.length > 0) onData(head);
}

/** After an upgrade the server refused for now (starting, overloaded), HTTP until this much later. */
const STREAM_RETRY_AFTER_MS = 1 * SECOND_MS;
/** Largest answer frame a client takes (needle reads are a chunk; JSON answers are bounded too). */
const STREAM_ANSWER_FRAME_BYTES_MAX = 256 * MEBIBYTE;

interface PendingFrame {
  resolve: (frame: Frame) => void;
  reject: (error: unknown) => void;
  timer: NodeJS.Timeout;
  /** Where the answer's payload goes when it has this length (see FrameReader). */
  into: Buffer | undefined;
}

/** The client's end of one framed connection (rpc-stream.ts): requests in flight by id. */
class StreamConnection {
  closed = false;
  private nextId = 1;
  private readonly pending = new Map<number, PendingFrame>();
  // Written only while its request waits: once it has settled (answered, timed out, failed) its
  // `into` is the caller's again.
  private readonly reader = new FrameReader(STREAM_ANSWER_FRAME_BYTES_MAX, (id, payloadBytes) => {
    const into = this.pending.get(id)?.into;
    return into !== undefined && into.length === payloadBytes ? into : undefined;
  });

  constructor(
    private readonly peer: string,
    private readonly socket: Duplex,
    head: Buffer,
  ) {
    (socket as { setNoDelay?: (noDelay: boolean) => void }).setNoDelay?.(true);
    socket.on("data", (piece: Buffer) => this.onData(piece));
    socket.on("error", (error: Error) => this.fail(error.message));
    socket.on("close", () => this.fail("connection closed"));
    this.refWhileWaiting();
    if (head.length > 0) this.onData(head);
  }

  authenticate(signature: string): void {
    writeFrame(this.socket, 0, FrameType.Auth, "", Buffer.from(signature, "latin1"));
  }

  /** `into`: where the answer's payload is copied if it has that length (else a buffer of its own). */
  request(type: FrameType, head: string, payload: Buffer | undefined, timeoutMs: number, into?: Buffer): Promise<Frame> {
    if (this.closed) return Promise.reject(new PeerUnavailable(this.peer, "connection closed"));
    const id = this.nextId;
    this.nextId = this.nextId >= 0xffff_ffff ? 1 : this.nextId + 1;
    return new Promise<Frame>((resolve, reject) => {
      // The same deadline as an HTTP call; the answer, if it still comes, is dropped.
      const timer = setTimeout(() => {
        this.pending.delete(id);
        this.refWhileWaiting();
        reject(new PeerUnavailable(this.peer, `timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer, into });
      this.refWhileWaiting();
      writeFrameInTurn(this.socket, id, type, head, payload, () => this.pending.has(id));
    });
  }

  close(): void {
    this.fail("client closed");
  }

  /** Like a pooled HTTP socket: an idle connection does not keep the process alive. */
  private refWhileWaiting(): void {
    const socket = this.socket as { ref?: () => void; unref?: () => void };
    if (this.pending.size > 0) socket.ref?.();
    else socket.unref?.();
  }

  private onData(piece: Buffer): void {
    this.reader.push(piece);
    for (;;) {
      let frame: Frame | undefined;
      try {
        frame = this.reader.next();
      } catch (error) {
        this.fail((error as Error).message);
        return;
      }
      if (frame === undefined) break;
      const waiting = this.pending.get(frame.id);
      if (waiting === undefined) continue;
      this.pending.delete(frame.id);
      clearTimeout(waiting.timer);
      waiting.resolve(frame);
    }
    this.refWhileWaiting();
  }

  private fail(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.socket.destroy();
    for (const waiting of this.pending.values()) {
      clearTimeout(waiting.timer);
      waiting.reject(new PeerUnavailable(this.peer, reason));
    }
    this.pending.clear();
  }
}

/**
 * A client of one peer's RPC server: over one framed connection (rpc-stream.ts) where the peer
 * offers it, else over pooled HTTP requests. Needle writes of 2 MiB or more always take HTTP,
 * where the data node reads them into pooled chunk buffers (readBlobBody).
 */
export class RpcClient {
  private readonly agent: http.Agent;
  private readonly url: URL;
  private stream: StreamConnection | undefined;
  private streamOpening: Promise<StreamConnection | undefined> | undefined;
  /** The peer answered the upgrade with 404: it has no framed lane; HTTP from now on. */
  private streamUnsupported = false;
  private streamRetryAtMs = 0;
  private closed = false;

  constructor(
    readonly baseUrl: string,
    private readonly secret: string,
    private readonly nowMs: () => number = () => Date.now(),
  ) {
    this.url = new URL(baseUrl);
    this.agent = new http.Agent({ keepAlive: true, maxSockets: RPC_SOCKETS_PER_PEER_MAX, noDelay: true } as http.AgentOptions);
  }

  async call<T>(method: string, body: unknown, options: { timeoutMs?: number } = {}): Promise<T> {
    const timeoutMs = options.timeoutMs ?? RPC_TIMEOUT_MS_DEFAULT;
    const payload = Buffer.from(toWireJson(body));
    const stream = await this.streamFor(timeoutMs);
    if (stream !== undefined) return this.frameResult<T>(await stream.request(FrameType.Call, method, payload, timeoutMs));
    return this.parseJson<T>(await this.request("POST", `/rpc/${method}`, payload, timeoutMs));
  }

  async writeBlob<T>(method: string, query: Record<string, string>, body: Buffer, options: { timeoutMs?: number } = {}): Promise<T> {
    const timeoutMs = options.timeoutMs ?? RPC_TIMEOUT_MS_DEFAULT;
    const target = `${method}?${new URLSearchParams(query)}`;
    const stream = body.length < BLOB_FRAMED_SIZE_BYTES_MAX ? await this.streamFor(timeoutMs) : undefined;
    if (stream !== undefined) return this.frameResult<T>(await stream.request(FrameType.BlobWrite, target, body, timeoutMs));
    return this.parseJson<T>(await this.request("PUT", `/blob/${target}`, body, timeoutMs));
  }

  /**
   * A blob answer. With `into`, a framed answer of that length is copied into it, and `into` is
   * what comes back; any other answer comes in memory of its own. Either way nothing writes into
   * `into` once the returned promise has settled.
   */
  async readBlob(method: string, query: Record<string, string>, options: { timeoutMs?: number; into?: Buffer } = {}): Promise<Buffer> {
    const timeoutMs = options.timeoutMs ?? RPC_TIMEOUT_MS_DEFAULT;
    const target = `${method}?${new URLSearchParams(query)}`;
    const stream = await this.streamFor(timeoutMs);
    if (stream !== undefined) {
      const frame = await stream.request(FrameType.BlobRead, target, undefined, timeoutMs, options.into);
      if (frame.type === FrameType.ResultBlob) return frame.payload;
      return this.frameResult<never>(frame);
    }
    const response = await this.request("GET", `/blob/${target}`, undefined, timeoutMs);
    if (response.statusCode !== 200) this.throwRemote(response);
    return response.body;
  }

  /** Whether calls currently travel as frames (tests). */
  get framed(): boolean {
    return this.stream !== undefined && !this.stream.closed;
  }

  /**
   * The framed connection, opened on first use; undefined when the peer refused the upgrade (its
   * calls go over HTTP). A peer that cannot be reached, or hangs, fails the call as HTTP would.
   */
  private streamFor(timeoutMs: number): Promise<StreamConnection | undefined> | StreamConnection | undefined {
    if (this.stream !== undefined && !this.stream.closed) return this.stream;
    this.stream = undefined;
    if (this.streamUnsupported || this.nowMs() < this.streamRetryAtMs) return undefined;
    this.streamOpening ??= this.openStream(timeoutMs).finally(() => (this.streamOpening = undefined));
    return this.streamOpening;
  }

  private openStream(timeoutMs: number): Promise<StreamConnection | undefined> {
    return new Promise<StreamConnection | undefined>((resolve, reject) => {
      const request = http.request({
        host: this.url.hostname,
        port: this.url.port,
        method: "GET",
        path: RPC_STREAM_PATH,
        agent: false,
        headers: {
          connection: "Upgrade",
          upgrade: RPC_STREAM_PROTOCOL,
          [AUTH_HEADER]: authHeader(this.secret, "GET", RPC_STREAM_PATH, this.nowMs()),
        },
      });
      const timer = setTimeout(() => request.destroy(new Error(`timed out after ${timeoutMs} ms`)), timeoutMs);
      request.on("upgrade", (response: http.IncomingMessage, socket: Duplex, head: Buffer) => {
        clearTimeout(timer);
        const challenge = challengeOf(response);
        if (this.closed) {
          socket.destroy();
          resolve(undefined);
          return;
        }
        if (challenge === undefined) {
          socket.destroy();
          this.streamUnsupported = true;
          resolve(undefined);
          return;
        }
        const connection = new StreamConnection(this.baseUrl, socket, head);
        connection.authenticate(signChallenge(this.secret, challenge));
        this.stream = connection;
        resolve(connection);
      });
      request.on("response", (response: http.IncomingMessage) => {
        clearTimeout(timer);
        response.resume();
        if (response.statusCode === 404) this.streamUnsupported = true;
        else this.streamRetryAtMs = this.nowMs() + STREAM_RETRY_AFTER_MS;
        resolve(undefined);
      });
      request.on("error", (error) => {
        clearTimeout(timer);
        reject(new PeerUnavailable(this.baseUrl, error.message));
      });
      request.end();
    });
  }

  private frameResult<T>(frame: Frame): T {
    if (frame.type === FrameType.ResultJson) return (fromWireJson(frame.payload.toString("utf8")) as { result: T }).result;
    let statusCode = 500;
    try {
      statusCode = Number((JSON.parse(frame.payload.toString("utf8")) as { statusCode?: number }).statusCode ?? 500);
    } catch {
      // Not our JSON: throwRemote reports the status alone.
    }
    this.throwRemote({ statusCode, body: frame.payload });
  }

  private parseJson<T>(response: { statusCode: number; body: Buffer }): T {
    if (response.statusCode !== 200) this.throwRemote(response);
    return (fromWireJson(response.body.toString("utf8")) as { result: T }).result;
  }

  private throwRemote(response: { statusCode: number; body: Buffer }): never {
    let payload: { error?: { name: string; message: string; fields: Record<string, unknown> } } = {};
    try {
      payload = JSON.parse(response.body.toString("utf8"));
    } catch {
      // Not our JSON: report the status alone.
    }
    const error = payload.error ?? { name: "RemoteError", message: `status ${response.statusCode}`, fields: {} };
    const factory = errorRegistry.get(error.name);
    if (factory) throw factory(error.message, error.fields);
    throw new RemoteError(error.name, error.message, response.statusCode);
  }

  private request(method: string, path: string, body: Buffer | undefined, timeoutMs: number): Promise<{ statusCode: number; body: Buffer }> {
    return new Promise((resolve, reject) => {
      const request = http.request(
        {
          host: this.url.hostname,
          port: this.url.port,
          method,
          path,
          agent: this.agent,
          headers: {
            [AUTH_HEADER]: authHeader(this.secret, method, path, this.nowMs()),
            ...(body !== undefined ? { "content-length": String(body.length), "content-type": "application/octet-stream" } : {}),
          },
        },
        (response) => {
          const pieces: Buffer[] = [];
          response.on("data", (piece: Buffer) => pieces.push(piece));
          response.on("end", () => {
            clearTimeout(timer);
            resolve({ statusCode: response.statusCode ?? 0, body: Buffer.concat(pieces) });
          });
          response.on("error", (error) => {
            clearTimeout(timer);
            reject(new PeerUnavailable(this.baseUrl, error.message));
          });
        },
      );
      // One deadline for the whole exchange: a peer that hangs (SIGSTOP) costs at most timeoutMs.
      const timer = setTimeout(() => request.destroy(new Error(`timed out after ${timeoutMs} ms`)), timeoutMs);
      request.on("error", (error) => {
        clearTimeout(timer);
        reject(new PeerUnavailable(this.baseUrl, error.message));
      });
      request.end(body);
    });
  }

  close(): void {
    this.closed = true;
    this.stream?.close();
    this.stream = undefined;
    this.agent.destroy();
  }
}
