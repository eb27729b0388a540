/** The HTTP server of an S3 gateway, shared by `cairn server` and `cairn gateway`. */
import * as http from "node:http";
import { HTTP_BODY_IDLE_TIMEOUT_MS, HTTP_KEEP_ALIVE_TIMEOUT_MS, systemClock } from "../base/index.js";
import type { DataRouter, GarbageCollector } from "../datapath/index.js";
import type { EcScheme } from "../ec/index.js";
import type { MetadataStore } from "../meta/index.js";
import { createS3Handler, handleClientError } from "../s3/index.js";
import { parseListenAddress, type Settings } from "./config.js";
import { credentialLookup, ROOT_USER_ID } from "./credentials.js";

export interface S3Listener {
  host: string;
  port: number;
  /** Stop accepting, let requests in flight finish. */
  close(): Promise<void>;
}

/** What differs between an embedded server's gateway and a cluster gateway. */
export interface S3ListenerParts {
  meta: MetadataStore;
  dataRouter: DataRouter;
  garbageCollector: GarbageCollector;
  /** Unseals users' secrets for signature checks. */
  masterKey: Buffer;
  /** Supplies --listen, --region and --domain. */
  settings: Settings;
  /** The default layout of objects: replicated (null) or an EC scheme (--default-storage-class). */
  defaultEc?: EcScheme | null;
  /** See GatewayServices.inlineObjectBytesMax (default 0: none). */
  inlineObjectBytesMax?: number;
}

export async function listenS3(parts: S3ListenerParts): Promise<S3Listener> {
  const { meta, dataRouter, garbageCollector, masterKey, settings } = parts;
  const services = {
    meta,
    dataRouter,
    garbageCollector,
    defaultEc: parts.defaultEc ?? null,
    inlineObjectBytesMax: parts.inlineObjectBytesMax ?? 0,
    clock: systemClock,
    region: settings.require("region"),
    domains: settings.list("domain"),
    lookupCredentials: credentialLookup(meta, masterKey, () => systemClock.nowMs()),
    rootUserId: ROOT_USER_ID,
  };
  const listenAddress = settings.require("listen");
  const server = http.createServer(
    {
      noDelay: true,
      keepAliveTimeout: HTTP_KEEP_ALIVE_TIMEOUT_MS,
      // Large uploads may take long; a stalled one is caught by the idle timeout below instead.
      requestTimeout: 0,
    },
    createS3Handler(services),
  );
  server.timeout = HTTP_BODY_IDLE_TIMEOUT_MS;
  server.on("clientError", handleClientError);
  const { host, port } = parseListenAddress(listenAddress);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve());
  });
  const address = server.address();
  const boundPort = typeof address === "object" && address !== null ? address.port : port;
  return {
    host,
    port: boundPort,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      }),
  };
}
