"""Connecting to an S3-compatible object store, and what its failures mean to a caller.

Every boto3 call on the archive's behalf goes through a client made by `connect` and runs
inside `translated_errors()`, so a caller sees only two outcomes besides success:
`ObjectStoreUnavailable` (a Busy: the importer answers 503 with Retry-After, a command says
which setting to check) or the store's own answer that an object is not there.
"""

import base64
import functools
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator, Mapping

import boto3
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError

from model.protocol.errors import Busy, SkyrelayError

# S3's smallest part of a multipart upload (all but the last), and its most parts.
MIN_PART_BYTES = 5 * 1024 * 1024
MAX_PARTS = 10_000
# A store that does not accept a connection within this is down: the request gets its 503
# now rather than after the (longer) read timeout.
CONNECT_TIMEOUT_S = 5.0

_MISSING = {"404", "NoSuchKey", "NotFound", "NoSuchUpload"}
_REFUSED = {"403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"}


class ObjectStoreError(SkyrelayError):
    """The object store is not usable as configured; the message names the setting."""


class ObjectStoreUnavailable(ObjectStoreError, Busy):
    """The object store did not answer, or failed; the same request may succeed later."""


@dataclass(frozen=True)
class Location:
    """Where a site's objects are: the bucket, and a prefix inside it."""
    bucket: str
    prefix: str

    def key(self, name: str) -> str:
        return f"{self.prefix}{name}"


def connect(settings: Mapping[str, Any]):
    """A boto3 client from the site's `storage.*` settings. The checksum options keep newer
    boto3 from sending CRC trailers, which S3-compatible servers mishandle; skyrelay checks
    MD5 itself. Past the connect timeout a store counts as down (see translated_errors)."""
    timeout = settings["storage.timeout_s"]
    config = BotoConfig(request_checksum_calculation="when_required",
                        response_checksum_validation="when_required",
                        connect_timeout=min(timeout, CONNECT_TIMEOUT_S), read_timeout=timeout,
                        # One retry: a store that does not answer twice within the timeout
                        # gets the caller its 503 before an exporter's own timeout runs out.
                        retries={"total_max_attempts": 2, "mode": "standard"},
                        # S3-compatible servers on a host name of their own want the bucket
                        # in the path, not in the host name (AWS chooses for itself).
                        s3={"addressing_style": "path" if settings["storage.endpoint_url"]
                            else "auto",
                            # Every body skyrelay sends carries its Content-MD5, which the
                            # signature covers and the store checks: hashing the body once
                            # more for the signature (botocore does on http) buys nothing.
                            "payload_signing_enabled": False},
                        max_pool_connections=32)
    return _session().client(
        "s3", endpoint_url=settings["storage.endpoint_url"] or None,
        region_name=settings["storage.region"] or None,
        aws_access_key_id=settings["storage.access_key_id"] or None,
        aws_secret_access_key=settings["storage.secret_access_key"] or None,
        config=config)


@functools.cache
def _session() -> boto3.session.Session:
    """One per process: a session loads the service's models once (a few tenths of a
    second), and its clients are each made for one site's settings."""
    return boto3.session.Session()


def location(settings: Mapping[str, Any]) -> Location:
    prefix = settings["storage.prefix"]
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    return Location(settings["storage.bucket"], prefix)


def check(client, settings: Mapping[str, Any]) -> None:
    """Refuse to start on a store that cannot be used: no bucket named, the bucket missing,
    wrong keys, or no answer at the endpoint. The message names the setting to fix."""
    bucket = settings["storage.bucket"]
    endpoint = settings["storage.endpoint_url"] or "AWS"
    if not bucket:
        raise ObjectStoreError("storage.bucket is empty: name the bucket that holds the blobs")
    try:
        client.head_bucket(Bucket=bucket)
    except ClientError as exc:
        code = error_code(exc)
        if code in _MISSING or code == "NoSuchBucket":
            raise ObjectStoreError(f"storage.bucket: no bucket {bucket!r} at {endpoint}; "
                                   "create it first") from None
        if code in _REFUSED:
            raise ObjectStoreError(
                f"storage.access_key_id / storage.secret_access_key: {endpoint} refused the "
                f"keys for bucket {bucket!r} ({code})") from None
        raise ObjectStoreError(f"storage.endpoint_url: {endpoint} answered {code}") from None
    except BotoCoreError as exc:
        raise ObjectStoreError(f"storage.endpoint_url: cannot reach {endpoint}: {exc}") \
            from None


def content_md5(md5: bytes) -> str:
    """The Content-MD5 header of bytes with this MD5: the store checks the transfer too."""
    return base64.b64encode(md5).decode()


# Parts and tails are checked by the store with CRC32 (`x-amz-checksum-crc32`) rather than
# Content-MD5: it catches the same damage in transfer, at a tenth of the CPU. MD5 is the
# protocol's own check of the whole file, which skyrelay computes anyway; a second MD5 of
# every part cost as much again, on the cores the importer shares with the store
# (docs/performance.md).
CHECKSUM_ALGORITHM = "CRC32"


def crc32_checksum(data) -> str:
    """The `x-amz-checksum-crc32` value of `data` (big-endian CRC32, base64)."""
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", "")) or \
        str(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))


def is_missing(exc: ClientError) -> bool:
    return error_code(exc) in _MISSING


@contextmanager
def translated_errors(what: str) -> Iterator[None]:
    """Failures of the store become ObjectStoreUnavailable; "not found" answers pass through
    as ClientError for the caller to read with `is_missing`."""
    try:
        yield
    except ClientError as exc:
        if is_missing(exc):
            raise
        raise ObjectStoreUnavailable(f"object store failed to {what}: {error_code(exc)}") \
            from exc
    except BotoCoreError as exc:
        raise ObjectStoreUnavailable(f"object store unreachable ({what}): {exc}") from exc
