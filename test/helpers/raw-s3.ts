/**
 * Raw HTTP requests to Cairn, signed with the AWS SDK's own SigV4 signer (@smithy/signature-v4),
 * for inputs no well-behaved client sends: truncated bodies, odd headers, bad names.
 */
import { createHash, createHmac, type Hash, type Hmac } from "node:crypto";
import * as http from "node:http";
import { SignatureV4 } from "@smithy/signature-v4";
import { TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY } from "./cairn-process.js";

class NodeSha256 {
  private hash: Hash | Hmac;
  constructor(private readonly secret?: string | Uint8Array) {
    this.hash = secret === undefined ? createHash("sha256") : createHmac("sha256", secret);
  }
  update(data: string | Uint8Array): void {
    this.hash.update(data);
  }
  async digest(): Promise<Uint8Array> {
    return this.hash.digest();
  }
  reset(): void {
    this.hash = this.secret === undefined ? createHash("sha256") : createHmac("sha256", this.secret);
  }
}

export const signer = new SignatureV4({
  service: "s3",
  region: "us-east-1",
  credentials: { accessKeyId: TEST_ACCESS_KEY_ID, secretAccessKey: TEST_SECRET_ACCESS_KEY },
  sha256: NodeSha256 as never,
  uriEscapePath: false,
  applyChecksum: false,
});

export interface RawResponse {
  statusCode: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/**
 * Send a signed request. `bodyToSend` may be shorter than `declaredContentLength` to model a
 * client that stops early; the socket's write side is then ended.
 */
export async function rawRequest(input: {
  port: number;
  method: string;
  path: string;
  query?: Record<string, string>;
  headers?: Record<string, string>;
  body?: Buffer | string;
  declaredContentLength?: number;
  sign?: boolean;
  payloadHash?: string;
  /** Change headers after signing, as a man in the middle would. */
  tamper?: (headers: Record<string, string>) => void;
}): Promise<RawResponse> {
  const body = input.body === undefined ? Buffer.alloc(0) : Buffer.from(input.body);
  const headers: Record<string, string> = {
    host: `127.0.0.1:${input.port}`,
    "x-amz-content-sha256": input.payloadHash ?? createHash("sha256").update(body).digest("hex"),
    ...input.headers,
  };
  headers["content-length"] = String(input.declaredContentLength ?? body.length);
  let signedHeaders = headers;
  if (input.sign !== false) {
    const signed = await signer.sign({
      method: input.method,
      protocol: "http:",
      hostname: "127.0.0.1",
      port: input.port,
      path: input.path,
      query: input.query ?? {},
      headers,
    });
    signedHeaders = signed.headers as Record<string, string>;
  }
  input.tamper?.(signedHeaders);
  const search = new URLSearchParams(input.query ?? {}).toString();
  return new Promise<RawResponse>((resolve, reject) => {
    const request = http.request(
      {
        host: "127.0.0.1",
        port: input.port,
        method: input.method,
        path: input.path + (search ? `?${search}` : ""),
        headers: signedHeaders,
        agent: false,
      },
      (response) => {
        const pieces: Buffer[] = [];
        response.on("data", (piece: Buffer) => pieces.push(piece));
        response.on("end", () => resolve({ statusCode: response.statusCode ?? 0, headers: response.headers, body: Buffer.concat(pieces).toString() }));
        response.on("error", reject);
      },
    );
    request.on("error", reject);
    if (input.declaredContentLength !== undefined && input.declaredContentLength > body.length) {
      // Send what we have, then close our side: the server sees the body end early.
      request.write(body);
      request.on("socket", (socket) => {
        socket.once("connect", () => undefined);
      });
      request.flushHeaders();
      setTimeout(() => request.socket?.end(), 50);
      return;
    }
    request.end(body);
  });
}

export function errorCode(response: RawResponse): string | undefined {
  return /<Code>([^<]+)<\/Code>/.exec(response.body)?.[1];
}
