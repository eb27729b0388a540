/**
 * Internal RPC between Cairn processes: HTTP/1.1 with keep-alive and TCP_NODELAY, JSON for
 * control messages and raw bytes for needle payloads. Every request is authenticated with the
 * cluster secret (an HMAC over method, path and a timestamp), so a stranger on the network can
 * neither read nor write needles nor talk to placement.
 *
 * Routes:  POST /rpc/<method>           JSON body -> JSON body
 *          PUT  /blob/<method>?<args>   raw body  -> JSON body   (needle writes)
 *          GET  /blob/<method>?<args>              -> raw body    (needle reads)
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
 * round-trips deep-equal.
 */
export function toWireJson(value: unknown): string {
  return JSON.stringify(value ?? null, (_key, item: unknown) => (item === undefined ? null : item));
}

export function fromWireJson(text: string): unknown {
  return restoreUndefined(JSON.parse(text));
}

function restoreUndefined(value: unknown): unknown {
  if (value === null) return undefined;
  if (Array.isArray(value)) return value.map(restoreUndefined);
  if (typeof value === "object") {
    const record = value as Record<string, unknown>;
    for (const key of Object.keys(record)) record[key] = restoreUndefined(record[key]);
  }
  return value;
}

function sendJson(res: http.ServerResponse, statusCode: number, value: unknown): void {
  const body = Buffer.from(toWireJson(value));
  res.writeHead(statusCode, { "content-type": "application/json", "content-length": String(body.length) });
  res.end(body);
}

/** Create the HTTP handler of an RPC server; `secret` authenticates every request. */
export function createRpcHandler(options: {
  secret: string;
  routes: RpcRoutes;
  nowMs?: () => number;
  blobSizeBytesMax: number;
}): (req: http.IncomingMessage, res: http.ServerResponse) => void {
  const nowMs = options.nowMs ?? (() => Date.now());
  return (req, res) => {
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
        if (error instanceof RpcAuthError) {
          sendJson(res, 401, { error: { name: "RpcAuthError", message: error.message, fields: {} } });
          return;
        }
        const typed = error instanceof Error ? error : new Error(String(error));
        if (!errorRegistry.has(typed.name)) log.warn({ error: typed, url: req.url }, "rpc handler failed");
        if (!res.headersSent) sendJson(res, errorRegistry.has(typed.name) ? 409 : 500, { error: { name: typed.name, message: typed.message, fields: errorFields(typed) } });
        else res.destroy();
      }
    })();
  };
}

/** A client of one peer's RPC server. */
export class RpcClient {
  private readonly agent: http.Agent;
  private readonly url: URL;

  constructor(
    readonly baseUrl: string,
    private readonly secret: string,
    private readonly nowMs: () => number = () => Date.now(),
  ) {
    this.url = new URL(baseUrl);
    this.agent = new http.Agent({ keepAlive: true, maxSockets: RPC_SOCKETS_PER_PEER_MAX, noDelay: true } as http.AgentOptions);
  }

  async call<T>(method: string, body: unknown, options: { timeoutMs?: number } = {}): Promise<T> {
    const response = await this.request("POST", `/rpc/${method}`, Buffer.from(toWireJson(body)), options.timeoutMs);
    return this.parseJson<T>(response);
  }

  async writeBlob<T>(method: string, query: Record<string, string>, body: Buffer, options: { timeoutMs?: number } = {}): Promise<T> {
    const response = await this.request("PUT", `/blob/${method}?${new URLSearchParams(query)}`, body, options.timeoutMs);
    return this.parseJson<T>(response);
  }

  async readBlob(method: string, query: Record<string, string>, options: { timeoutMs?: number } = {}): Promise<Buffer> {
    const response = await this.request("GET", `/blob/${method}?${new URLSearchParams(query)}`, undefined, options.timeoutMs);
    if (response.statusCode !== 200) this.throwRemote(response);
    return response.body;
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

  private request(method: string, path: string, body: Buffer | undefined, timeoutMs = RPC_TIMEOUT_MS_DEFAULT): Promise<{ statusCode: number; body: Buffer }> {
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
    this.agent.destroy();
  }
}
