/** The HTTP server of an S3 gateway, shared by `cairn server` and `cairn gateway`. */
import * as http from "node:http";
import { HTTP_BODY_IDLE_TIMEOUT_MS, HTTP_KEEP_ALIVE_TIMEOUT_MS } from "../base/index.js";
import { createS3Handler, handleClientError, type GatewayServices } from "../s3/index.js";
import { parseListenAddress } from "./config.js";

export interface S3Listener {
  host: string;
  port: number;
  /** Stop accepting, let requests in flight finish. */
  close(): Promise<void>;
}

export async function listenS3(services: GatewayServices, listenAddress: string): Promise<S3Listener> {
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
