export * from "./metadata-store.js";
export * from "./errors.js";
export * from "./key-order.js";
export { SqliteMetadataStore } from "./sqlite/sqlite-metadata-store.js";
export type { SqliteMetadataStoreOptions, SqliteMetadataStoreCounters } from "./sqlite/sqlite-metadata-store.js";
export { createMetadataRpcRoutes, remoteMetadataStore } from "./remote-metadata-store.js";
export { PostgresMetadataStore, type PostgresMetadataStoreOptions, type PostgresMetadataStoreCounters } from "./postgres/postgres-metadata-store.js";
