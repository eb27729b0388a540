export { createS3Handler, handleClientError } from "./gateway.js";
export type { GatewayServices } from "./context.js";
export { INLINE_OBJECT_BYTES_MAX_DEFAULT, INLINE_OBJECT_BYTES_MAX_LIMIT } from "./object-ops.js";
export { S3Error } from "./s3-errors.js";
export { BUCKET_STORAGE_CLASS_TAG, parseLayoutName, STORAGE_CLASS_REPLICATED } from "./storage-class.js";
