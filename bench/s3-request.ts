/**
 * One signed S3 request over a keep-alive agent, with the body drained and counted. Used by the
 * load workers and by the parent for setup (CreateBucket) and the listing workloads.
 */
import * as http from "node:http";
import { EMPTY_SHA256_HEX, signRequest, UNSIGNED_PAYLOAD } from "../src/auth/index.js";
import type { S3Target } from "./workload.js";

/** A request that takes longer than this counts as an error, so a stuck server ends the run. */
export const REQUEST_TIMEOUT_MS = 120_000;

export interface S3Response {
  statusCode: number;
  bodyBytes: number;
  /** Only when asked for: the body as text (listings). */
  bodyText: string | undefined;
}

export function keepAliveAgent(socketCount: number): http.Agent {
  // noDelay reaches net.connect; the 'socket' hook covers Node versions that ignore it here.
  const agent = new http.Agent({ keepAlive: true, maxSockets: socketCount, noDelay: true } as http.AgentOptions);
  return agent;
}

/** RFC 3986 encoding as SigV4 wants it (encodeURIComponent leaves !'()* alone). */
export function uriEncodeComponent(value: string): string {
  return encodeURIComponent(value).replace(/[!'()*]/g, (character) => `%${character.charCodeAt(0).toString(16).toUpperCase()}`);
}

export function s3Request(options: {
  agent: http.Agent;
  target: S3Target;
  method: "GET" | "PUT" | "HEAD" | "DELETE" | "POST";
  /** Already encoded: "/bucket/key?query". */
  path: string;
  body?: Buffer;
  keepBodyText?: boolean;
}): Promise<S3Response> {
  const { target } = options;
  const body = options.body;
  const signed = signRequest({
    method: options.method,
    url: options.path,
    headers: { host: `${target.host}:${target.port}` },
    // PUT bodies go unsigned as most SDKs send them over TLS; hashing 64 MiB with SHA-256 in
    // the client would measure the client.
    payloadHash: body === undefined ? EMPTY_SHA256_HEX : UNSIGNED_PAYLOAD,
    accessKeyId: target.accessKeyId,
    secretAccessKey: target.secretAccessKey,
    region: target.region,
    nowMs: Date.now(),
  });
  const headers: Record<string, string> = { ...signed.headers, "content-length": String(body?.length ?? 0) };
  return new Promise<S3Response>((resolve, reject) => {
    const request = http.request(
      { host: target.host, port: target.port, method: options.method, path: options.path, headers, agent: options.agent, timeout: REQUEST_TIMEOUT_MS },
      (response) => {
        let bodyBytes = 0;
        const chunks: Buffer[] = [];
        response.on("data", (chunk: Buffer) => {
          bodyBytes += chunk.length;
          if (options.keepBodyText === true) chunks.push(chunk);
        });
        response.on("end", () =>
          resolve({
            statusCode: response.statusCode ?? 0,
            bodyBytes,
            bodyText: options.keepBodyText === true ? Buffer.concat(chunks).toString("utf8") : undefined,
          }),
        );
        response.on("error", reject);
      },
    );
    request.on("socket", (socket) => socket.setNoDelay(true));
    request.on("timeout", () => request.destroy(new Error(`request timed out after ${REQUEST_TIMEOUT_MS} ms`)));
    request.on("error", reject);
    request.end(body);
  });
}
