"""Sending an object to the store in parts: several at once, each with its own CRC32 for the
store to check (`object_store.CHECKSUM_ALGORITHM`), from a few buffers reused in turn. A resumable upload's chunks
(`model.store.s3_partial`) and a large blob from the spool (`model.store.s3_blobs`) both go
this way.
"""

from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass

from botocore.exceptions import ClientError

from model.store.blobs import CHUNK, Digests, ReadInto
from model.store.object_store import (CHECKSUM_ALGORITHM, MAX_PARTS, MIN_PART_BYTES,
                                      crc32_checksum, is_missing, translated_errors)

SMALLEST_PART = 8 * 1024 * 1024
PARTS_IN_FLIGHT = 3


def part_bytes_for(length: int) -> int:
    """The part size: SMALLEST_PART, or more where S3's 10,000 parts would not hold the file
    (in whole MiB)."""
    needed = -(-length // (MAX_PARTS - 1))
    mib = 1024 * 1024
    return max(SMALLEST_PART, -(-needed // mib) * mib)


@dataclass(frozen=True)
class Part:
    number: int
    size: int
    etag: str
    crc32: str          # as sent in x-amz-checksum-crc32, and given again at completion


def abort(store, key: str, multipart_id: str) -> None:
    try:
        with translated_errors("abort a multipart upload"):
            store.client.abort_multipart_upload(Bucket=store.bucket, Key=key,
                                                UploadId=multipart_id)
    except ClientError as exc:
        if not is_missing(exc):
            raise


def start(store, key: str) -> str:
    """A new multipart upload to `key` whose parts carry CRC32s; its UploadId."""
    return store.client.create_multipart_upload(
        Bucket=store.bucket, Key=key, ChecksumAlgorithm=CHECKSUM_ALGORITHM)["UploadId"]


def complete(store, key: str, multipart_id: str, parts) -> None:
    store.client.complete_multipart_upload(
        Bucket=store.bucket, Key=key, UploadId=multipart_id,
        MultipartUpload={"Parts": [{"PartNumber": p.number, "ETag": p.etag,
                                    "ChecksumCRC32": p.crc32} for p in parts]})


def send_in_parts(store, key: str, readinto: ReadInto, size: int) -> None:
    """`size` bytes from `readinto` as the object `key`, in parts sent as a resumable
    upload's are (several at once, each with its CRC32); nothing is left behind if it
    fails."""
    with translated_errors("store a blob"):
        multipart_id = start(store, key)
    try:
        writer = PartWriter(store, key, multipart_id, part_bytes_for(size))
        try:
            writer.fill_from(readinto, size)
            parts = writer.finish(final=True)
        finally:
            writer.close()
        with translated_errors("store a blob"):
            complete(store, key, multipart_id, parts)
    except BaseException:
        abort(store, key, multipart_id)
        raise


class PartWriter:
    """Cuts a chunk into parts and sends PARTS_IN_FLIGHT of them at once (the store answers a
    part in a third of a second or so: one at a time, the link would idle while it thinks),
    on the store's shared sender threads, from PARTS_IN_FLIGHT + 1 buffers reused in turn.
    Each part's CRC32 goes with it, so the store checks that transfer."""

    def __init__(self, store, key: str, multipart_id: str, part_bytes: int,
                 first_number: int = 1):
        self._store, self._key, self._multipart_id = store, key, multipart_id
        self._size = part_bytes
        self._free = [bytearray(self._size) for _ in range(PARTS_IN_FLIGHT + 1)]
        self._current, self._fill = self._free.pop(), 0
        self._next_number = first_number
        self._sending: deque[tuple[Future, bytearray]] = deque()
        self.parts: list[Part] = []

    def add(self, data: bytes) -> None:
        """Bytes already counted (the tail) at the start of the first part."""
        self._current[:len(data)] = data
        self._fill = len(data)

    def fill_from(self, readinto: ReadInto, want: int, digests: Digests | None = None,
                  chunk_hash=None) -> int:
        """Parts from up to `want` bytes of `readinto`, each block hashed into `digests` and
        `chunk_hash` (if given) as it arrives; the count read."""
        received = 0
        while received < want:
            view = memoryview(self._current)[self._fill:min(
                self._size, self._fill + CHUNK, self._fill + want - received)]
            got = readinto(view)
            if not got:
                break
            if digests is not None:
                digests.update(view[:got])
            if chunk_hash is not None:
                chunk_hash.update(view[:got])
            self._fill += got
            received += got
            if self._fill == self._size:
                self._send_current()
        return received

    def _send_current(self, size: int | None = None) -> None:
        buffer = self._current
        data = buffer if size is None else bytes(memoryview(buffer)[:size])
        self._sending.append((self._store.part_senders.submit(
            self._send, self._next_number, data), buffer))
        self._next_number += 1
        if not self._free:
            self._wait_oldest()
        self._current, self._fill = self._free.pop(), 0

    def _send(self, number: int, data) -> Part:
        crc32 = crc32_checksum(data)
        with translated_errors("store a part"):
            answer = self._store.client.upload_part(
                Bucket=self._store.bucket, Key=self._key, UploadId=self._multipart_id,
                PartNumber=number, Body=data, ChecksumCRC32=crc32)
        return Part(number, len(data), answer["ETag"], crc32)

    def _wait_oldest(self) -> None:
        sending, buffer = self._sending.popleft()
        self._free.append(buffer)
        self.parts.append(sending.result())

    def finish(self, final: bool) -> tuple[Part, ...]:
        """Send what is left as a part of its own if this is the file's end or it is large
        enough (else it stays for `leftover`, a tail); the parts sent, once all are in."""
        if self._fill and (final or self._fill >= MIN_PART_BYTES):
            self._send_current(self._fill)
        self.close()
        return tuple(sorted(self.parts, key=lambda part: part.number))

    def leftover(self) -> bytes:
        return bytes(memoryview(self._current)[:self._fill])

    def close(self) -> None:
        """Wait for every part in flight (the first failure is raised, once all ended)."""
        failure = None
        while self._sending:
            try:
                self._wait_oldest()
            except BaseException as exc:          # noqa: BLE001 - raised below, after the rest
                failure = failure or exc
        if failure is not None:
            raise failure
