"""boto3 against Cairn: buckets, objects, metadata, ranges, listing, errors.

Run by test/cli-tools.test.ts with Debian's python3-boto3; endpoint and keys come from the
environment. Every check is an assert; any failure exits non-zero with the reason."""
import hashlib
import os
import sys

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

endpoint = os.environ["CAIRN_ENDPOINT"]
s3 = boto3.client(
    "s3",
    endpoint_url=endpoint,
    region_name="us-east-1",
    aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
    aws_secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"],
    config=Config(retries={"max_attempts": 1}, s3={"addressing_style": "path"}),
)


def error_code(call):
    try:
        call()
    except ClientError as error:
        return error.response["Error"]["Code"], error.response["ResponseMetadata"]["HTTPStatusCode"]
    raise AssertionError("expected an error")


s3.create_bucket(Bucket="boto-core")
assert any(b["Name"] == "boto-core" for b in s3.list_buckets()["Buckets"])
assert error_code(lambda: s3.create_bucket(Bucket="boto-core")) == ("BucketAlreadyOwnedByYou", 409)
assert error_code(lambda: s3.create_bucket(Bucket="Bad_Name")) == ("InvalidBucketName", 400)

body = os.urandom(300_000)
put = s3.put_object(Bucket="boto-core", Key="dir/obj one+two", Body=body, ContentType="text/x-boto", Metadata={"k": "v"})
assert put["ETag"] == '"%s"' % hashlib.md5(body).hexdigest(), put["ETag"]
got = s3.get_object(Bucket="boto-core", Key="dir/obj one+two")
assert got["Body"].read() == body
assert got["ContentType"] == "text/x-boto"
assert got["Metadata"] == {"k": "v"}, got["Metadata"]
part = s3.get_object(Bucket="boto-core", Key="dir/obj one+two", Range="bytes=10-19")
assert part["ResponseMetadata"]["HTTPStatusCode"] == 206
assert part["Body"].read() == body[10:20]
assert part["ContentRange"] == "bytes 10-19/300000"
assert error_code(lambda: s3.get_object(Bucket="boto-core", Key="dir/obj one+two", Range="bytes=300000-")) == ("InvalidRange", 416)

for i in range(5):
    s3.put_object(Bucket="boto-core", Key="list/%d" % i, Body=b"x" * i)
s3.put_object(Bucket="boto-core", Key="list/sub/deep", Body=b"deep")
listed = s3.list_objects_v2(Bucket="boto-core", Prefix="list/", Delimiter="/")
assert [o["Key"] for o in listed["Contents"]] == ["list/%d" % i for i in range(5)], listed
assert [p["Prefix"] for p in listed["CommonPrefixes"]] == ["list/sub/"]
paginator = s3.get_paginator("list_objects_v2")
keys = [o["Key"] for page in paginator.paginate(Bucket="boto-core", PaginationConfig={"PageSize": 2}) for o in page.get("Contents", [])]
assert keys == sorted(keys) and len(keys) == 7, keys
v1 = s3.list_objects(Bucket="boto-core", Prefix="list/")
assert len(v1["Contents"]) == 6

head = s3.head_object(Bucket="boto-core", Key="list/3")
assert head["ContentLength"] == 3
assert error_code(lambda: s3.head_object(Bucket="boto-core", Key="missing")) == ("404", 404)
assert error_code(lambda: s3.get_object(Bucket="boto-core", Key="missing")) == ("NoSuchKey", 404)
assert error_code(lambda: s3.delete_bucket(Bucket="boto-core")) == ("BucketNotEmpty", 409)

# Debian's boto3 presigns with SigV2 unless told otherwise; Cairn speaks SigV4 only.
v4 = boto3.client(
    "s3",
    endpoint_url=endpoint,
    region_name="us-east-1",
    aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
    aws_secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"],
    config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
)
url = v4.generate_presigned_url("get_object", Params={"Bucket": "boto-core", "Key": "list/4"}, ExpiresIn=60)
import urllib.request
with urllib.request.urlopen(url) as response:
    assert response.read() == b"xxxx"

for key in ["dir/obj one+two", "list/0", "list/1", "list/2", "list/3", "list/4", "list/sub/deep"]:
    s3.delete_object(Bucket="boto-core", Key=key)
s3.delete_bucket(Bucket="boto-core")
assert error_code(lambda: s3.head_bucket(Bucket="boto-core")) == ("404", 404)
print("boto3 core: OK")
