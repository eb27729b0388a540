export * from "./needle-store.js";
