/**
 * Proves sealed secrets round-trip, never repeat (random IV), refuse a wrong master key, a
 * tampered value, another row's associated data and an unknown version; and that generated
 * access key ids and secrets have the documented shape.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { newAccessKeyId, newSecretAccessKey, SealedSecretInvalid, sealSecret, unsealSecret } from "./secrets.js";

const MASTER_KEY = randomBytes(32);

test("a sealed secret unseals to itself and two seals of one secret differ", () => {
  const secret = newSecretAccessKey();
  const first = sealSecret(MASTER_KEY, secret, "CKAAAA");
  const second = sealSecret(MASTER_KEY, secret, "CKAAAA");
  assert.match(first, /^v1:[A-Za-z0-9_-]+$/);
  assert.notEqual(first, second);
  assert.equal(unsealSecret(MASTER_KEY, first, "CKAAAA"), secret);
  assert.equal(unsealSecret(MASTER_KEY, sealSecret(MASTER_KEY, "ünïcødé secret"), undefined), "ünïcødé secret");
});

test("a wrong key, a flipped byte, another row or another version is SealedSecretInvalid", () => {
  const sealed = sealSecret(MASTER_KEY, "secret", "CKAAAA");
  assert.throws(() => unsealSecret(randomBytes(32), sealed, "CKAAAA"), SealedSecretInvalid);
  assert.throws(() => unsealSecret(MASTER_KEY, sealed, "CKBBBB"), SealedSecretInvalid);
  const bytes = Buffer.from(sealed.slice(3), "base64url");
  bytes[bytes.length - 1] = bytes[bytes.length - 1]! ^ 1;
  assert.throws(() => unsealSecret(MASTER_KEY, "v1:" + bytes.toString("base64url"), "CKAAAA"), SealedSecretInvalid);
  assert.throws(() => unsealSecret(MASTER_KEY, "v2:" + sealed.slice(3), "CKAAAA"), SealedSecretInvalid);
  assert.throws(() => unsealSecret(MASTER_KEY, "v1:AAAA"), SealedSecretInvalid);
});

test("access key ids are 20 characters A-Z0-9 starting CK; secrets are 40 base64 characters", () => {
  const ids = new Set<string>();
  for (let index = 0; index < 1000; index++) {
    const id = newAccessKeyId();
    assert.match(id, /^CK[A-Z0-9]{18}$/);
    ids.add(id);
    assert.match(newSecretAccessKey(), /^[A-Za-z0-9+/]{40}$/);
  }
  assert.equal(ids.size, 1000);
});
