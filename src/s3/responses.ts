/** Writing S3 responses: common headers, XML bodies, empty bodies. */
import type { RequestContext } from "./context.js";

export function sendXml(ctx: RequestContext, statusCode: number, xml: string, headers: Record<string, string> = {}): void {
  const body = Buffer.from(xml, "utf8");
  ctx.res.writeHead(statusCode, {
    ...headers,
    "Content-Type": "application/xml",
    "Content-Length": String(body.length),
  });
  ctx.res.end(ctx.method === "HEAD" ? undefined : body);
}

export function sendEmpty(ctx: RequestContext, statusCode: number, headers: Record<string, string> = {}): void {
  ctx.res.writeHead(statusCode, { ...headers, "Content-Length": "0" });
  ctx.res.end();
}
