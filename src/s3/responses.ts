/** Writing S3 responses: common headers, XML bodies, empty bodies. */
import { randomBytes } from "node:crypto";
import type { RequestContext } from "./context.js";

export const HOST_ID = randomBytes(24).toString("base64");

/**
 * Headers every response carries. They go into each writeHead rather than through setHeader
 * when the request arrives: node validates and stores setHeader'd headers one by one, then
 * merges them again in writeHead, which cost a small GET a few percent.
 */
export function commonHeaders(requestId: string): Record<string, string> {
  return { "x-amz-request-id": requestId, "x-amz-id-2": HOST_ID, Server: "Cairn" };
}

export function sendXml(ctx: RequestContext, statusCode: number, xml: string, headers: Record<string, string> = {}): void {
  const body = Buffer.from(xml, "utf8");
  ctx.res.writeHead(statusCode, {
    ...commonHeaders(ctx.requestId),
    ...headers,
    "Content-Type": "application/xml",
    "Content-Length": String(body.length),
  });
  ctx.res.end(ctx.method === "HEAD" ? undefined : body);
}

export function sendEmpty(ctx: RequestContext, statusCode: number, headers: Record<string, string> = {}): void {
  ctx.res.writeHead(statusCode, { ...commonHeaders(ctx.requestId), ...headers, "Content-Length": "0" });
  ctx.res.end();
}
