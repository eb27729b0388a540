/** Assertions shared by the tests that drive Cairn with the AWS SDK. */
import assert from "node:assert/strict";
import { S3ServiceException } from "@aws-sdk/client-s3";

/** The call fails with this S3 error code (when given) and HTTP status. */
export async function expectS3Error(promise: Promise<unknown>, code: string | undefined, statusCode: number): Promise<S3ServiceException> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof S3ServiceException, `expected an S3 error, got ${String(error)}`);
    if (code !== undefined) assert.equal(error.name, code);
    assert.equal(error.$metadata.httpStatusCode, statusCode);
    return error;
  }
  assert.fail(`expected ${code ?? statusCode}, but the call succeeded`);
}
