"""The `object_store` fixture is a real S3 server that checks what S3 checks: the S3 blob
store's tests mean something only if a wrong key, a missing bucket and a lost or garbled byte
are refused or noticed here as they would be by a real provider."""

import os
import time

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import (ClientError, ConnectTimeoutError, EndpointConnectionError,
                                 ReadTimeoutError)

from tests.object_store import ObjectStore


def error_code(excinfo) -> str:
    return excinfo.value.response["Error"]["Code"]


def test_an_object_round_trips_byte_identical(object_store):
    client = object_store.client()
    bucket = object_store.new_bucket()
    data = os.urandom(9 * 1024 * 1024 + 7)  # several of SeaweedFS's 4 MiB chunks
    client.put_object(Bucket=bucket, Key="a/b/object", Body=data)
    assert client.get_object(Bucket=bucket, Key="a/b/object")["Body"].read() == data
    listed = client.list_objects_v2(Bucket=bucket)["Contents"]
    assert [(item["Key"], item["Size"]) for item in listed] == [("a/b/object", len(data))]


def test_each_new_bucket_is_fresh_and_empty(object_store):
    client = object_store.client()
    first, second = object_store.new_bucket(), object_store.new_bucket()
    client.put_object(Bucket=first, Key="only-in-first", Body=b"x")
    assert first != second
    assert client.list_objects_v2(Bucket=second)["KeyCount"] == 0


def test_a_wrong_secret_key_is_refused(object_store):
    bucket = object_store.new_bucket()
    wrong = object_store.client(secret_key=object_store.secret_key[::-1])
    with pytest.raises(ClientError) as refused:
        wrong.put_object(Bucket=bucket, Key="intruder", Body=b"x")
    assert error_code(refused) in {"SignatureDoesNotMatch", "InvalidAccessKeyId", "AccessDenied"}
    with pytest.raises(ClientError):
        wrong.list_objects_v2(Bucket=bucket)
    assert object_store.client().list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_a_missing_bucket_is_404(object_store):
    with pytest.raises(ClientError) as missing:
        object_store.client().head_bucket(Bucket="t-no-such-bucket-here")
    assert missing.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_the_settings_reach_the_bucket(object_store):
    bucket = object_store.new_bucket()
    settings = object_store.settings(bucket, prefix="site/")
    assert settings["storage.backend"] == "s3"
    assert settings["storage.prefix"] == "site/"
    client = boto3.client("s3", endpoint_url=settings["storage.endpoint_url"],
                          region_name=settings["storage.region"],
                          aws_access_key_id=settings["storage.access_key_id"],
                          aws_secret_access_key=settings["storage.secret_access_key"],
                          config=Config(connect_timeout=5, read_timeout=30))
    client.put_object(Bucket=settings["storage.bucket"], Key="site/x", Body=b"via settings")
    stored = object_store.client().get_object(Bucket=bucket, Key="site/x")["Body"].read()
    assert stored == b"via settings"


@pytest.mark.slow
def test_a_store_can_be_frozen_and_killed_and_comes_back_with_its_objects():
    """The outage helpers, on a store of its own: they would break the session's store."""
    store = ObjectStore().start()
    try:
        client = store.client()
        bucket = store.new_bucket()
        client.put_object(Bucket=bucket, Key="kept", Body=b"before the outage")

        store.pause()
        impatient = boto3.client(
            "s3", endpoint_url=store.endpoint_url, region_name=store.region,
            aws_access_key_id=store.access_key, aws_secret_access_key=store.secret_key,
            config=Config(connect_timeout=1, read_timeout=1, retries={"total_max_attempts": 1}))
        started = time.monotonic()
        with pytest.raises((ReadTimeoutError, ConnectTimeoutError)):
            impatient.head_bucket(Bucket=bucket)
        assert time.monotonic() - started < 10
        store.resume()
        assert client.get_object(Bucket=bucket, Key="kept")["Body"].read() == b"before the outage"

        store.kill()
        with pytest.raises(EndpointConnectionError):
            impatient.head_bucket(Bucket=bucket)
        store.restart()
        assert client.get_object(Bucket=bucket, Key="kept")["Body"].read() == b"before the outage"
        client.put_object(Bucket=store.new_bucket(), Key="after", Body=b"writable again")
    finally:
        store.stop()
    assert not store.root.exists()
