/** Operating errors of the metadata store; the S3 edge maps each to its S3 error. */
export class BucketAlreadyExists extends Error {
  override name = "BucketAlreadyExists";
  constructor(readonly bucket: string, readonly ownerId: string) {
    super(`bucket ${bucket} already exists`);
  }
}
export class NoSuchBucket extends Error {
  override name = "NoSuchBucket";
  constructor(readonly bucket: string) {
    super(`bucket ${bucket} does not exist`);
  }
}
export class BucketNotEmpty extends Error {
  override name = "BucketNotEmpty";
  constructor(readonly bucket: string) {
    super(`bucket ${bucket} is not empty`);
  }
}
export class NoSuchKey extends Error {
  override name = "NoSuchKey";
  constructor(readonly bucket: string, readonly key: string) {
    super(`key ${key} does not exist in ${bucket}`);
  }
}
export class NoSuchVersion extends Error {
  override name = "NoSuchVersion";
  constructor(readonly bucket: string, readonly key: string, readonly versionId: string) {
    super(`version ${versionId} of ${key} does not exist in ${bucket}`);
  }
}
export class NoSuchUpload extends Error {
  override name = "NoSuchUpload";
  constructor(readonly uploadId: string) {
    super(`upload ${uploadId} does not exist`);
  }
}
export class PreconditionFailed extends Error {
  override name = "PreconditionFailed";
  constructor(readonly bucket: string, readonly key: string) {
    super(`write condition failed for ${key} in ${bucket}`);
  }
}
export class UserAlreadyExists extends Error {
  override name = "UserAlreadyExists";
  constructor(readonly userId: string) {
    super(`user ${userId} already exists`);
  }
}
export class NoSuchUser extends Error {
  override name = "NoSuchUser";
  constructor(readonly userId: string) {
    super(`user ${userId} does not exist`);
  }
}
export class AccessKeyAlreadyExists extends Error {
  override name = "AccessKeyAlreadyExists";
  constructor(readonly accessKeyId: string) {
    super(`access key ${accessKeyId} already exists`);
  }
}
export class NoSuchAccessKey extends Error {
  override name = "NoSuchAccessKey";
  constructor(readonly accessKeyId: string) {
    super(`access key ${accessKeyId} does not exist`);
  }
}
