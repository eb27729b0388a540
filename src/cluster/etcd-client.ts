/**
 * A small etcd v3 client over etcd's JSON gateway (HTTP/1.1, the gRPC-gateway that every etcd
 * since 3.4 serves on its client URL), with no dependency: keys and values travel base64, 64-bit
 * numbers as decimal strings, and fields at their default value (0, false, "") are left out of
 * answers, so every reader below treats a missing field as its default.
 *
 *   POST /v3/kv/range  /v3/kv/put  /v3/kv/deleterange  /v3/kv/txn
 *   POST /v3/lease/grant  /v3/lease/keepalive  /v3/lease/revoke
 *   POST /v3/watch     a stream of newline-delimited {"result": WatchResponse} objects
 *
 * Every unary call has a deadline (ETCD_REQUEST_TIMEOUT_MS): a hung etcd costs bounded time and
 * surfaces as EtcdUnavailable. Several endpoints may be given; a call that cannot reach one
 * tries the next (any member of an etcd cluster serves every request).
 */
import * as http from "node:http";
import { log, SECOND_MS } from "../base/index.js";

/** Deadline of one unary etcd request. */
export const ETCD_REQUEST_TIMEOUT_MS = 3 * SECOND_MS;
/** Answers of one unary etcd request larger than this are refused (a map of 100k volumes fits). */
export const ETCD_RESPONSE_SIZE_BYTES_MAX = 64 * 1024 * 1024;
/** Sockets kept open per etcd endpoint (watches hold one each). */
export const ETCD_SOCKETS_PER_ENDPOINT_MAX = 16;
/** A watch stream line longer than this is a broken stream, not an event. */
const ETCD_WATCH_LINE_SIZE_BYTES_MAX = 64 * 1024 * 1024;

/** No etcd endpoint answered in time. */
export class EtcdUnavailable extends Error {
  override name = "EtcdUnavailable";
  constructor(readonly endpoints: readonly string[], readonly reason: string) {
    super(`etcd unavailable at ${endpoints.join(",")}: ${reason}`);
  }
}

/** etcd answered with an error (bad request, compaction, no such lease...). */
export class EtcdRequestFailed extends Error {
  override name = "EtcdRequestFailed";
  constructor(readonly path: string, readonly statusCode: number, readonly detail: string) {
    super(`etcd ${path} failed (${statusCode}): ${detail}`);
  }
}

export interface KeyValue {
  key: string;
  value: string;
  createRevision: number;
  modRevision: number;
  /** The lease the key is attached to, "0" when none. */
  lease: string;
}

export interface WatchEvent {
  type: "put" | "delete";
  kv: KeyValue;
}

/** One comparison of a transaction; all must hold for `success` to run. */
export type Compare =
  | { key: string; target: "create"; createRevision: number }
  | { key: string; target: "value"; value: string };

export type TxnOperation =
  | { put: { key: string; value: string; lease?: string } }
  | { deleteRange: { key: string; prefix?: boolean } }
  | { range: { key: string; prefix?: boolean } };

export interface TxnResult {
  succeeded: boolean;
  /** The store revision after the transaction (the revision of its writes, if any). */
  revision: number;
  /** For each range operation of the branch that ran, in order, the keys it found. */
  ranges: KeyValue[][];
}

const encode = (text: string): string => Buffer.from(text, "utf8").toString("base64");
const decode = (text: string | undefined): string => Buffer.from(text ?? "", "base64").toString("utf8");

/** The key just past every key starting with `prefix`: etcd's range_end for a prefix scan. */
export function prefixRangeEnd(prefix: string): string {
  const bytes = Buffer.from(prefix, "utf8");
  for (let index = bytes.length - 1; index >= 0; index--) {
    if (bytes[index]! < 0xff) {
      const end = Buffer.from(bytes.subarray(0, index + 1));
      end[index] = bytes[index]! + 1;
      return end.toString("base64");
    }
  }
  return Buffer.from([0]).toString("base64"); // every byte 0xff: the whole key space from prefix on
}

interface RawKeyValue {
  key?: string;
  value?: string;
  create_revision?: string;
  mod_revision?: string;
  lease?: string;
}

function keyValueFromRaw(raw: RawKeyValue): KeyValue {
  return {
    key: decode(raw.key),
    value: decode(raw.value),
    createRevision: Number(raw.create_revision ?? 0),
    modRevision: Number(raw.mod_revision ?? 0),
    lease: raw.lease ?? "0",
  };
}

function rangeRequest(key: string, prefix: boolean | undefined): Record<string, string> {
  return prefix ? { key: encode(key), range_end: prefixRangeEnd(key) } : { key: encode(key) };
}

export interface EtcdWatch {
  /** Ends the watch; no events are delivered after it returns. */
  cancel(): void;
  /** Settles when the stream ends: resolves on cancel, rejects when the stream broke. */
  readonly done: Promise<void>;
}

export class EtcdClient {
  readonly endpoints: readonly string[];
  private readonly agent: http.Agent;
  private preferredIndex = 0;

  constructor(endpoints: string | readonly string[]) {
    const list = typeof endpoints === "string" ? endpoints.split(",") : endpoints;
    this.endpoints = list.map((endpoint) => endpoint.trim().replace(/\/+$/, "")).filter((endpoint) => endpoint !== "");
    if (this.endpoints.length === 0) throw new RangeError("at least one etcd endpoint is needed");
    for (const endpoint of this.endpoints) {
      if (!/^http:\/\/[^/]+$/.test(endpoint)) throw new RangeError(`etcd endpoint must be http://host:port, got ${endpoint}`);
    }
    this.agent = new http.Agent({ keepAlive: true, maxSockets: ETCD_SOCKETS_PER_ENDPOINT_MAX, noDelay: true } as http.AgentOptions);
  }

  /** The value of one key, or every key under a prefix (sorted by key), and the store revision. */
  async range(key: string, options: { prefix?: boolean } = {}): Promise<{ kvs: KeyValue[]; revision: number }> {
    const answer = (await this.call("/v3/kv/range", rangeRequest(key, options.prefix))) as { header?: { revision?: string }; kvs?: RawKeyValue[] };
    return { kvs: (answer.kvs ?? []).map(keyValueFromRaw), revision: Number(answer.header?.revision ?? 0) };
  }

  async get(key: string): Promise<KeyValue | undefined> {
    return (await this.range(key)).kvs[0];
  }

  /** Returns the store revision of the write. */
  async put(key: string, value: string, options: { lease?: string } = {}): Promise<number> {
    const body: Record<string, string> = { key: encode(key), value: encode(value) };
    if (options.lease !== undefined) body.lease = options.lease;
    const answer = (await this.call("/v3/kv/put", body)) as { header?: { revision?: string } };
    return Number(answer.header?.revision ?? 0);
  }

  /** Returns how many keys were deleted. */
  async deleteRange(key: string, options: { prefix?: boolean } = {}): Promise<number> {
    const answer = (await this.call("/v3/kv/deleterange", rangeRequest(key, options.prefix))) as { deleted?: string };
    return Number(answer.deleted ?? 0);
  }

  async txn(request: { compare: Compare[]; success: TxnOperation[]; failure?: TxnOperation[] }): Promise<TxnResult> {
    const body = {
      compare: request.compare.map((compare) =>
        compare.target === "create"
          ? { key: encode(compare.key), target: "CREATE", result: "EQUAL", create_revision: String(compare.createRevision) }
          : { key: encode(compare.key), target: "VALUE", result: "EQUAL", value: encode(compare.value) },
      ),
      success: request.success.map(rawOperation),
      failure: (request.failure ?? []).map(rawOperation),
    };
    const answer = (await this.call("/v3/kv/txn", body)) as {
      header?: { revision?: string };
      succeeded?: boolean;
      responses?: Array<{ response_range?: { kvs?: RawKeyValue[] } }>;
    };
    const ranges = (answer.responses ?? []).filter((response) => response.response_range !== undefined).map((response) => (response.response_range!.kvs ?? []).map(keyValueFromRaw));
    return { succeeded: answer.succeeded === true, revision: Number(answer.header?.revision ?? 0), ranges };
  }

  /** A new lease; keys put with it vanish ttlSeconds after its last keep-alive. */
  async leaseGrant(ttlSeconds: number): Promise<{ leaseId: string; ttlSeconds: number }> {
    const answer = (await this.call("/v3/lease/grant", { TTL: String(ttlSeconds) })) as { ID?: string; TTL?: string; error?: string };
    if (answer.ID === undefined || answer.error) throw new EtcdRequestFailed("/v3/lease/grant", 200, answer.error ?? "no lease id");
    return { leaseId: answer.ID, ttlSeconds: Number(answer.TTL ?? 0) };
  }

  /** Renews a lease; returns its remaining TTL in seconds, 0 when it has already expired. */
  async leaseKeepAlive(leaseId: string): Promise<number> {
    const answer = (await this.call("/v3/lease/keepalive", { ID: leaseId })) as { result?: { TTL?: string } };
    return Number(answer.result?.TTL ?? 0);
  }

  /** Ends a lease now, deleting its keys; an unknown (expired) lease is not an error. */
  async leaseRevoke(leaseId: string): Promise<void> {
    try {
      await this.call("/v3/lease/revoke", { ID: leaseId });
    } catch (error) {
      if (error instanceof EtcdRequestFailed && /not found/.test(error.detail)) return;
      throw error;
    }
  }

  /**
   * Stream the changes of a key (or prefix) from `startRevision` on (default: from now). Events
   * arrive in revision order. The stream has no deadline; when etcd goes away `done` rejects
   * and the caller starts a new watch (from the revision after the last event it saw).
   */
  watch(key: string, options: { prefix?: boolean; startRevision?: number }, onEvents: (events: WatchEvent[], revision: number) => void): EtcdWatch {
    const createRequest: Record<string, string> = rangeRequest(key, options.prefix);
    if (options.startRevision !== undefined) createRequest.start_revision = String(options.startRevision);
    const body = Buffer.from(JSON.stringify({ create_request: createRequest }));
    const endpoint = this.endpoints[this.preferredIndex]!;
    const url = new URL(endpoint);
    let cancelled = false;
    let request: http.ClientRequest | undefined;
    const done = new Promise<void>((resolve, reject) => {
      const fail = (reason: string): void => (cancelled ? resolve() : reject(new EtcdUnavailable([endpoint], reason)));
      request = http.request(
        { host: url.hostname, port: url.port, method: "POST", path: "/v3/watch", agent: false, headers: { "content-type": "application/json", "content-length": String(body.length) } },
        (response) => {
          if (response.statusCode !== 200) {
            response.resume();
            fail(`watch answered status ${response.statusCode}`);
            return;
          }
          let buffered = "";
          response.setEncoding("utf8");
          response.on("data", (piece: string) => {
            buffered += piece;
            if (buffered.length > ETCD_WATCH_LINE_SIZE_BYTES_MAX) {
              request?.destroy(new Error("watch line too long"));
              return;
            }
            let newline: number;
            while ((newline = buffered.indexOf("\n")) >= 0) {
              const line = buffered.slice(0, newline).trim();
              buffered = buffered.slice(newline + 1);
              if (line === "" || cancelled) continue;
              let message: {
                result?: { header?: { revision?: string }; events?: Array<{ type?: string; kv?: RawKeyValue }>; canceled?: boolean; cancel_reason?: string };
                error?: { message?: string };
              };
              try {
                message = JSON.parse(line) as typeof message;
              } catch {
                // Input from the network: a broken stream ends the watch, it never crashes us.
                request?.destroy(new Error("watch stream sent a line that is not JSON"));
                return;
              }
              if (message.error !== undefined || message.result?.canceled) {
                request?.destroy(new Error(message.error?.message ?? message.result?.cancel_reason ?? "watch cancelled by etcd"));
                return;
              }
              const events = (message.result?.events ?? []).map((event) => ({
                type: event.type === "DELETE" ? ("delete" as const) : ("put" as const),
                kv: keyValueFromRaw(event.kv ?? {}),
              }));
              if (events.length > 0) onEvents(events, Number(message.result?.header?.revision ?? 0));
            }
          });
          response.on("end", () => fail("watch stream ended"));
          response.on("error", (error) => fail(error.message));
        },
      );
      request.on("error", (error) => fail(error.message));
      request.setNoDelay(true);
      request.end(body);
    });
    return {
      cancel: () => {
        cancelled = true;
        request?.destroy();
      },
      done,
    };
  }

  close(): void {
    this.agent.destroy();
  }

  /** POST a JSON body to each endpoint in turn, from the one that answered last. */
  private async call(path: string, body: unknown): Promise<unknown> {
    const payload = Buffer.from(JSON.stringify(body));
    let lastReason = "no endpoint tried";
    for (let offset = 0; offset < this.endpoints.length; offset++) {
      const index = (this.preferredIndex + offset) % this.endpoints.length;
      let answer: { statusCode: number; text: string };
      try {
        answer = await this.post(this.endpoints[index]!, path, payload);
      } catch (error) {
        lastReason = (error as Error).message;
        continue;
      }
      this.preferredIndex = index;
      let parsed: unknown;
      try {
        parsed = JSON.parse(answer.text);
      } catch {
        throw new EtcdRequestFailed(path, answer.statusCode, `not JSON: ${answer.text.slice(0, 200)}`);
      }
      if (answer.statusCode !== 200) {
        const detail = (parsed as { error?: string; message?: string }).message ?? (parsed as { error?: string }).error ?? answer.text.slice(0, 200);
        throw new EtcdRequestFailed(path, answer.statusCode, detail);
      }
      return parsed;
    }
    log.debug({ path, reason: lastReason }, "etcd unreachable");
    throw new EtcdUnavailable(this.endpoints, lastReason);
  }

  private post(endpoint: string, path: string, payload: Buffer): Promise<{ statusCode: number; text: string }> {
    const url = new URL(endpoint);
    return new Promise((resolve, reject) => {
      const request = http.request(
        {
          host: url.hostname,
          port: url.port,
          method: "POST",
          path,
          agent: this.agent,
          headers: { "content-type": "application/json", "content-length": String(payload.length) },
        },
        (response) => {
          const pieces: Buffer[] = [];
          let sizeBytes = 0;
          response.on("data", (piece: Buffer) => {
            sizeBytes += piece.length;
            if (sizeBytes > ETCD_RESPONSE_SIZE_BYTES_MAX) request.destroy(new Error(`answer over ${ETCD_RESPONSE_SIZE_BYTES_MAX} bytes`));
            else pieces.push(piece);
          });
          response.on("end", () => {
            clearTimeout(timer);
            resolve({ statusCode: response.statusCode ?? 0, text: Buffer.concat(pieces).toString("utf8") });
          });
          response.on("error", (error) => {
            clearTimeout(timer);
            reject(error);
          });
        },
      );
      const timer = setTimeout(() => request.destroy(new Error(`timed out after ${ETCD_REQUEST_TIMEOUT_MS} ms`)), ETCD_REQUEST_TIMEOUT_MS);
      request.on("error", (error) => {
        clearTimeout(timer);
        reject(error);
      });
      request.end(payload);
    });
  }
}

function rawOperation(operation: TxnOperation): Record<string, unknown> {
  if ("put" in operation) {
    const put: Record<string, string> = { key: encode(operation.put.key), value: encode(operation.put.value) };
    if (operation.put.lease !== undefined) put.lease = operation.put.lease;
    return { request_put: put };
  }
  if ("deleteRange" in operation) return { request_delete_range: rangeRequest(operation.deleteRange.key, operation.deleteRange.prefix) };
  return { request_range: rangeRequest(operation.range.key, operation.range.prefix) };
}
