/**
 * Access keys and their secrets. A secret must be recoverable (SigV4 needs it to recompute a
 * signature, a hash would not do), so it is stored sealed with AES-256-GCM under a master key
 * the metadata store never sees.
 *
 * Sealed format, one ASCII string:  "v1:" + base64url( iv | tag | ciphertext )
 *
 *   | offset | field      | size     | meaning                                   |
 *   | ------ | ---------- | -------- | ----------------------------------------- |
 *   | 0      | iv         | 12 bytes | random per seal; never reused with a key  |
 *   | 12     | tag        | 16 bytes | GCM authentication tag                    |
 *   | 28     | ciphertext | n bytes  | the UTF-8 secret                          |
 *
 * The optional associated data (e.g. the access key id) binds a sealed secret to its row, so a
 * sealed value copied onto another key's row does not unseal.
 */
import { createCipheriv, createDecipheriv, randomBytes, randomInt } from "node:crypto";
import { assert } from "../base/index.js";

const SEALED_PREFIX_V1 = "v1:";
const IV_SIZE_BYTES = 12;
const TAG_SIZE_BYTES = 16;
export const MASTER_KEY_SIZE_BYTES = 32;

/** A sealed secret that does not unseal: wrong master key, wrong row, or corrupted. */
export class SealedSecretInvalid extends Error {
  override name = "SealedSecretInvalid";
}

export function sealSecret(masterKey: Buffer, secret: string, associatedData?: string): string {
  assert(masterKey.length === MASTER_KEY_SIZE_BYTES, "the master key is 32 bytes (AES-256)");
  const iv = randomBytes(IV_SIZE_BYTES);
  const cipher = createCipheriv("aes-256-gcm", masterKey, iv);
  if (associatedData !== undefined) cipher.setAAD(Buffer.from(associatedData, "utf8"));
  const ciphertext = Buffer.concat([cipher.update(secret, "utf8"), cipher.final()]);
  return SEALED_PREFIX_V1 + Buffer.concat([iv, cipher.getAuthTag(), ciphertext]).toString("base64url");
}

export function unsealSecret(masterKey: Buffer, sealed: string, associatedData?: string): string {
  assert(masterKey.length === MASTER_KEY_SIZE_BYTES, "the master key is 32 bytes (AES-256)");
  if (!sealed.startsWith(SEALED_PREFIX_V1)) throw new SealedSecretInvalid("unknown sealed secret version");
  const bytes = Buffer.from(sealed.slice(SEALED_PREFIX_V1.length), "base64url");
  if (bytes.length < IV_SIZE_BYTES + TAG_SIZE_BYTES) throw new SealedSecretInvalid("sealed secret is truncated");
  const decipher = createDecipheriv("aes-256-gcm", masterKey, bytes.subarray(0, IV_SIZE_BYTES));
  decipher.setAuthTag(bytes.subarray(IV_SIZE_BYTES, IV_SIZE_BYTES + TAG_SIZE_BYTES));
  if (associatedData !== undefined) decipher.setAAD(Buffer.from(associatedData, "utf8"));
  try {
    return Buffer.concat([decipher.update(bytes.subarray(IV_SIZE_BYTES + TAG_SIZE_BYTES)), decipher.final()]).toString(
      "utf8",
    );
  } catch {
    // GCM says only "unable to authenticate"; which of key, data or row is wrong it cannot tell.
    throw new SealedSecretInvalid("sealed secret does not authenticate under this master key");
  }
}

const ACCESS_KEY_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
export const ACCESS_KEY_ID_PREFIX = "CK";
export const ACCESS_KEY_ID_LENGTH = 20;
export const SECRET_ACCESS_KEY_LENGTH = 40;

/** "CK" + 18 characters A-Z0-9, like AWS's "AKIA..." ids (about 93 bits of randomness). */
export function newAccessKeyId(): string {
  let id = ACCESS_KEY_ID_PREFIX;
  while (id.length < ACCESS_KEY_ID_LENGTH) id += ACCESS_KEY_ALPHABET[randomInt(ACCESS_KEY_ALPHABET.length)]!;
  return id;
}

/** 40 base64 characters (240 random bits), the shape of an AWS secret access key. */
export function newSecretAccessKey(): string {
  const secret = randomBytes((SECRET_ACCESS_KEY_LENGTH * 3) / 4).toString("base64");
  assert(secret.length === SECRET_ACCESS_KEY_LENGTH, "30 random bytes are 40 base64 characters");
  return secret;
}
