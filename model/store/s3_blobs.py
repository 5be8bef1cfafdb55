"""Blobs in an S3-compatible object store: `<prefix>blobs/<sha256>`, written before any row
names them, and only once skyrelay has checked their MD5 itself.

A stream (a version 1 upload, a part of `/blobs`, a bundle's data member) is written first to
this host's own spool folder through the local store's one hashing write path, because an
object's key is its SHA-256, known only at the end; only bytes with the right MD5 are then
sent to the store, under their final key, and the spool file goes. A large blob goes up in
parts, several at once, as a resumable upload's do (`model.store.s3_partial`), and only if
the store does not hold it yet. Every body sent carries its Content-MD5, so the store checks
each transfer too. Resumable uploads write straight into an S3 multipart upload instead.

Reads stream: `open` answers a seekable reader that fetches from the current position on
demand, so a ranged read of a large blob fetches that range only.
"""

import io
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator, Sequence

from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError

from model.store import object_store
from model.store.blobs import BlobStore, PendingBlob, Temporary
from model.store.database import Database
from model.store.local_blobs import LocalBlobStore
from model.store.object_store import Location, content_md5, is_missing, translated_errors
from model.store.part_ledger import PartLedger
from model.store.s3_partial import S3Partial
from model.store.s3_parts import send_in_parts

# Blobs up to this size go up in one PUT (with Content-MD5, so the store checks the transfer
# too); larger ones in parts, as resumable uploads send theirs.
PART_BYTES = 16 * 1024 * 1024
REQUEST_THREADS = 8
PART_SENDERS = 16


class _S3Pending(PendingBlob):
    """Checked bytes in the spool; `commit` sends them to their key (once)."""

    def __init__(self, store: "S3BlobStore", spooled):
        self._store, self._spooled = store, spooled
        self.info = spooled.info
        self._lock = threading.Lock()
        self._sent = False

    def send(self) -> None:
        with self._lock:
            if not self._sent:
                self._store.put_spooled(self._spooled)
                self._sent = True

    def commit(self) -> None:
        self.send()
        self.discard()

    def discard(self) -> None:
        self._store.forget_unsent(self)
        self._spooled.discard()


class S3Reader(io.RawIOBase):
    """A blob read on demand: each `read` continues one streaming GET from the position, and
    a `seek` elsewhere starts a new one there (werkzeug's Range support seeks, then reads)."""

    def __init__(self, client, bucket: str, key: str, size: int):
        self._client, self._bucket, self._key, self.size = client, bucket, key, size
        self._position, self._body = 0, None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self.size}[whence]
        target = max(0, base + offset)
        if target != self._position:
            self._drop_body()
            self._position = target
        return self._position

    def readinto(self, buffer) -> int:
        if self._position >= self.size or not len(buffer):
            return 0
        if self._body is None:
            with translated_errors("read a blob"):
                self._body = self._client.get_object(
                    Bucket=self._bucket, Key=self._key,
                    Range=f"bytes={self._position}-")["Body"]
        with translated_errors("read a blob"):
            data = self._body.read(len(buffer))
        buffer[:len(data)] = data
        self._position += len(data)
        return len(data)

    def _drop_body(self) -> None:
        if self._body is not None:
            self._body.close()
            self._body = None

    def close(self) -> None:
        self._drop_body()
        super().close()


class S3BlobStore(BlobStore):
    def __init__(self, client, where: Location, spool_folder: str | Path, database: Database):
        self.client, self.where = client, where
        self.bucket = where.bucket
        self.spool = LocalBlobStore(spool_folder)
        self.ledger = PartLedger(database)
        # For copies inside the store (a staged upload to its final key).
        self.transfer = TransferConfig(multipart_threshold=PART_BYTES,
                                       multipart_chunksize=PART_BYTES)
        # Threads shared by every request of the process: for many small requests to the
        # store at once (blobs sent by `sync`, lookups), and for resumable uploads' parts
        # (model.store.s3_parts). Apart, so that neither waits behind the other.
        self.requests = ThreadPoolExecutor(REQUEST_THREADS, thread_name_prefix="skyrelay-s3")
        self.part_senders = ThreadPoolExecutor(PART_SENDERS, thread_name_prefix="skyrelay-part")
        self._unsent: set[_S3Pending] = set()
        self._unsent_lock = threading.Lock()

    # -- keys -------------------------------------------------------------------------------

    def key(self, sha256: str) -> str:
        return self.where.key(f"blobs/{sha256}")

    def staging_key(self, upload_name: str) -> str:
        return self.where.key(f"uploads/{upload_name}")

    def tail_prefix(self, upload_name: str) -> str:
        return self.where.key(f"tails/{upload_name}/")

    # -- writing ----------------------------------------------------------------------------

    def write(self, source: BinaryIO | Iterable[bytes], md5: str | None = None,
              limit: int | None = None, durable: bool = True) -> PendingBlob:
        """Spooled and checked here; sent at `commit`, or with every other unsent blob at
        `sync()` (which is what `durable=False` callers call before committing)."""
        pending = _S3Pending(self, self.spool.write(source, md5=md5, limit=limit,
                                                    durable=False))
        if not durable:
            with self._unsent_lock:
                self._unsent.add(pending)
        return pending

    def put_spooled(self, spooled) -> None:
        key, info = self.key(spooled.info.sha256), spooled.info
        with spooled.open() as data:
            if info.size <= PART_BYTES:
                with translated_errors("store a blob"):
                    self.client.put_object(Bucket=self.bucket, Key=key, Body=data,
                                           ContentMD5=content_md5(bytes.fromhex(info.md5)))
            elif not self.exists(info.sha256):
                send_in_parts(self, key, data.readinto, info.size)

    def forget_unsent(self, pending: _S3Pending) -> None:
        with self._unsent_lock:
            self._unsent.discard(pending)

    def sync(self) -> None:
        """Send every blob written without `durable` so far, REQUEST_THREADS at a time."""
        with self._unsent_lock:
            unsent, self._unsent = list(self._unsent), set()
        if len(unsent) <= 1:
            for pending in unsent:
                pending.send()
            return
        list(self.requests.map(_S3Pending.send, unsent))

    # -- resumable uploads ------------------------------------------------------------------

    def partial(self, name: str) -> S3Partial:
        return S3Partial(self, name)

    def partials(self) -> Iterator[tuple[str, float]]:
        return iter(self.ledger.names_and_times())

    # -- reading and removing ---------------------------------------------------------------

    def open(self, sha256: str) -> BinaryIO:
        key = self.key(sha256)
        try:
            with translated_errors("look up a blob"):
                size = self.client.head_object(Bucket=self.bucket, Key=key)["ContentLength"]
        except ClientError as exc:
            if is_missing(exc):
                raise FileNotFoundError(f"no object {key}") from None
            raise
        return io.BufferedReader(S3Reader(self.client, self.bucket, key, size),
                                 buffer_size=1024 * 1024)

    def exists(self, sha256: str) -> bool:
        return self.object_exists(self.key(sha256))

    def existing(self, shas: Iterable[str]) -> set[str]:
        shas = list(shas)
        if len(shas) <= 1:
            return super().existing(shas)
        return {sha for sha, found in zip(shas, self.requests.map(self.exists, shas)) if found}

    def object_exists(self, key: str) -> bool:
        try:
            with translated_errors("look up a blob"):
                self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if is_missing(exc):
                return False
            raise
        return True

    def delete(self, sha256: str) -> None:
        with translated_errors("delete a blob"):
            self.client.delete_object(Bucket=self.bucket, Key=self.key(sha256))

    def list(self) -> Iterator[tuple[str, float]]:
        for key, modified in self.objects_under(self.where.key("blobs/")):
            yield key.rsplit("/", 1)[-1], modified

    def objects_under(self, prefix: str) -> Iterator[tuple[str, float]]:
        """(key, modification time) of every object whose key starts with `prefix`."""
        for key, modified, _ in self.sized_objects_under(prefix):
            yield key, modified

    def sized_objects_under(self, prefix: str) -> Iterator[tuple[str, float, int]]:
        """(key, modification time, size) of every object whose key starts with `prefix`."""
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket,
                                                                      Prefix=prefix)
        with translated_errors("list objects"):
            for page in pages:
                for item in page.get("Contents", ()):
                    yield item["Key"], item["LastModified"].timestamp(), item["Size"]

    def delete_objects(self, keys: Sequence[str]) -> None:
        with translated_errors("delete objects"):
            for start in range(0, len(keys), 1000):
                self.client.delete_objects(Bucket=self.bucket, Delete={
                    "Objects": [{"Key": key} for key in keys[start:start + 1000]],
                    "Quiet": True})

    def stale_temporaries(self, older_than_s: float,
                          beside_blobs: bool = True) -> "list[Temporary]":
        """Spool files a crash left here, and in the store: multipart uploads and tails that
        no upload's ledger names (a crash between the store and the ledger; two listings)."""
        return self.spool.stale_temporaries(older_than_s, beside_blobs) + \
            self.ledger.strays(self, older_than_s)


def open_store(settings, spool_folder: str | Path, database: Database) -> S3BlobStore:
    return S3BlobStore(object_store.connect(settings), object_store.location(settings),
                       spool_folder, database)
