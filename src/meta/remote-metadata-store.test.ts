// Runs the MetadataStore contract through the internal RPC: a real HTTP server serving an
// SQLite store, and the remote client the gateways of a cluster use. Proves every method and
// every typed error survives the trip.
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { createRpcServer, RpcClient } from "../cluster/index.js";
import { runMetadataStoreContract } from "./metadata-store.contract.js";
import { createMetadataRpcRoutes, remoteMetadataStore } from "./remote-metadata-store.js";
import { SqliteMetadataStore } from "./sqlite/sqlite-metadata-store.js";
import type { MetadataStore } from "./metadata-store.js";

const SECRET = "remote-metadata-test-secret";
const servers = new Map<MetadataStore, { server: http.Server; local: SqliteMetadataStore }>();

runMetadataStoreContract(
  "remote over RPC (sqlite behind)",
  async () => {
    const local = SqliteMetadataStore.open(":memory:");
    const server = createRpcServer({ secret: SECRET, routes: createMetadataRpcRoutes(local), blobSizeBytesMax: 0 });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as AddressInfo;
    const store = remoteMetadataStore(new RpcClient(`http://127.0.0.1:${port}`, SECRET));
    servers.set(store, { server, local });
    return store;
  },
  async (store) => {
    await store.close();
    const entry = servers.get(store)!;
    servers.delete(store);
    entry.server.closeAllConnections();
    await new Promise<void>((resolve) => entry.server.close(() => resolve()));
    await entry.local.close();
  },
);
