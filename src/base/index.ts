export * from "./assert.js";
export * from "./units.js";
export * from "./limits.js";
export * from "./ids.js";
export * from "./checksum.js";
export * from "./clock.js";
export * from "./log.js";
export * from "./chunk-buffer-pool.js";
