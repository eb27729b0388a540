export * from "./placement.js";
export { EmbeddedPlacement, EMBEDDED_WRITABLE_VOLUME_COUNT } from "./embedded-placement.js";
