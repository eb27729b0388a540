/** What every S3 operation handler receives: the parsed request and the gateway's services. */
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from "node:http";
import type { Clock } from "../base/index.js";
import type { DataRouter, GarbageCollector } from "../datapath/index.js";
import type { EcScheme } from "../ec/index.js";
import type { MetadataStore } from "../meta/index.js";
import type { AuthResult } from "../auth/index.js";
import type { S3Target } from "./router.js";

export type Principal = { kind: "anonymous" } | { kind: "user"; userId: string; isRoot: boolean };

export interface GatewayServices {
  meta: MetadataStore;
  dataRouter: DataRouter;
  garbageCollector: GarbageCollector | undefined;
  /** The cluster's default layout for objects (null: replicated); see storage-class.ts. */
  defaultEc: EcScheme | null;
  /**
   * PutObject and CopyObject bodies of at least 1 and at most this many bytes, replicated (no EC
   * layout asked for), are kept in the version's metadata row (ObjectVersion.inlineData) instead
   * of a needle; 0 keeps every body in needles. `cairn server` sets it (its metadata store and
   * volumes share one machine); cluster gateways keep it 0, so bytes go to the replicas or shards.
   */
  inlineObjectBytesMax: number;
  clock: Clock;
  /** The region buckets are created in and requests are signed for (any region is accepted). */
  region: string;
  /** Host suffixes for virtual-host-style requests: "<bucket>.<domain>". */
  domains: readonly string[];
  lookupCredentials(accessKeyId: string): Promise<{ secretAccessKey: string; userId: string } | undefined>;
  rootUserId: string;
}

export interface RequestContext {
  req: IncomingMessage;
  res: ServerResponse;
  requestId: string;
  method: string;
  target: S3Target;
  query: URLSearchParams;
  headers: IncomingHttpHeaders;
  auth: AuthResult;
  principal: Principal;
  nowMs: number;
}

export function header(ctx: RequestContext, name: string): string | undefined {
  const value = ctx.headers[name];
  if (Array.isArray(value)) return value.join(",");
  return value;
}

export function principalId(principal: Principal): string {
  return principal.kind === "user" ? principal.userId : "anonymous";
}
