export * from "./needle-store.js";
export * from "./rpc.js";
export * from "./messages.js";
export * from "./remote-needle-store.js";
export * from "./etcd-client.js";
export * from "./etcd-election.js";
