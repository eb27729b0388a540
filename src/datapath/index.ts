export { DataRouter, BodyTooLarge, CHUNK_WRITES_IN_FLIGHT_MAX, ackCountFor, type AckLevel, type WriteBodyResult } from "./data-router.js";
export { GarbageCollector } from "./garbage-collector.js";
export { UploadSweeper } from "./upload-sweeper.js";
