export { AuthError, type AuthErrorReason } from "./auth-error.js";
export {
  verifyRequest,
  type AuthRequest,
  type AuthResult,
  type Credential,
  type CredentialLookup,
  type SigningContext,
} from "./sigv4.js";
export { storedContentEncoding, type PayloadMode } from "./payload-mode.js";
export {
  createPayloadDecoder,
  PayloadDecoder,
  AWS_CHUNK_SIZE_BYTES_MAX,
  type TrailerChecksum,
} from "./payload-decoder.js";
export {
  sealSecret,
  unsealSecret,
  newAccessKeyId,
  newSecretAccessKey,
  SealedSecretInvalid,
  MASTER_KEY_SIZE_BYTES,
} from "./secrets.js";
export {
  signRequest,
  presignUrl,
  encodeAwsChunked,
  type SignRequestInput,
  type SignedRequest,
  type PresignUrlInput,
  type EncodeAwsChunkedInput,
} from "./signer.js";
export { sha256Hex, EMPTY_SHA256_HEX, UNSIGNED_PAYLOAD } from "./canonical.js";
