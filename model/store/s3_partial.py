"""A resumable upload's bytes in an S3 multipart upload, its state in the database, so that
each chunk may go to any importer host.

The ledger (`multipart_uploads`, `multipart_parts`) holds the offset, every part's number,
size, ETag and MD5, the tail, and the running digests (`model.store.resumable_hash`); it is
written in the same transaction as the upload's offset (`record_written`), and it alone says
which parts count: the store's ListParts is never asked. A chunk's bytes are cut into parts
of the ledger's part size as they arrive, one part sent while the next one fills. Bytes left
at the end of a chunk, too few for a part of their own (S3's 5 MiB minimum), wait in a tail
object and lead the next chunk's first part.

A part sent by a chunk that then failed keeps its number's slot in the store, but the ledger
never named it, and the next chunk sends that number again. So the ledger and the store agree
on every part that counts, whichever host crashed where.

The multipart upload goes to the blob's final key when the client announced the file's
SHA-256 (skyrelay's own exporter does): completing it is the whole commit, and the SHA-256 is
checked before, so no other blob's key is ever written with other bytes. Otherwise it goes to
a staging key and the commit copies it to the final key inside the store.
"""

import hashlib
import secrets
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field, replace

from botocore.exceptions import ClientError
from sqlalchemy import delete, insert, select, update

from model.store import schema
from model.store.blobs import CHUNK, Digests, LostBytes, Partial, PendingBlob, ReadInto
from model.store.database import Database, now_ms
from model.store.object_store import (MAX_PARTS, MIN_PART_BYTES, content_md5, is_missing,
                                      translated_errors)

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
    md5: str


@dataclass(frozen=True)
class LedgerEntry:
    """What the database holds about one upload's bytes."""
    name: str
    object_key: str
    multipart_id: str
    length: int
    part_bytes: int
    received: int
    tail_key: str | None
    tail_bytes: int
    digests: bytes
    parts: tuple[Part, ...] = field(default=())


class PartLedger:
    def __init__(self, database: Database):
        self.db = database

    def start(self, entry: LedgerEntry) -> None:
        with self.db.transaction() as tx:
            tx.execute(delete(schema.multipart_uploads)
                       .where(schema.multipart_uploads.c.upload_id == entry.name))
            tx.execute(insert(schema.multipart_uploads).values(
                upload_id=entry.name, object_key=entry.object_key,
                multipart_id=entry.multipart_id, length=entry.length,
                part_bytes=entry.part_bytes, received_bytes=0, tail_key=None, tail_bytes=0,
                digests=entry.digests, updated_ms=now_ms()))

    def load(self, name: str) -> LedgerEntry | None:
        table, parts = schema.multipart_uploads, schema.multipart_parts
        with self.db.reading() as conn:
            row = conn.execute(select(table).where(table.c.upload_id == name)).first()
            if row is None:
                return None
            found = conn.execute(select(parts).where(parts.c.upload_id == name)
                                 .order_by(parts.c.part_number)).all()
        return LedgerEntry(name, row.object_key, row.multipart_id, row.length, row.part_bytes,
                           row.received_bytes, row.tail_key, row.tail_bytes, row.digests,
                           tuple(Part(p.part_number, p.size, p.etag, p.md5) for p in found))

    def record(self, tx, entry: LedgerEntry, new_parts: tuple[Part, ...]) -> None:
        parts = schema.multipart_parts
        if new_parts:
            tx.execute(delete(parts).where(parts.c.upload_id == entry.name,
                                           parts.c.part_number >= new_parts[0].number))
            tx.execute(insert(parts), [{"upload_id": entry.name, "part_number": p.number,
                                        "size": p.size, "etag": p.etag, "md5": p.md5}
                                       for p in new_parts])
        tx.execute(update(schema.multipart_uploads)
                   .where(schema.multipart_uploads.c.upload_id == entry.name)
                   .values(received_bytes=entry.received, tail_key=entry.tail_key,
                           tail_bytes=entry.tail_bytes, digests=entry.digests,
                           updated_ms=now_ms()))

    def forget(self, name: str) -> None:
        with self.db.transaction() as tx:
            tx.execute(delete(schema.multipart_parts)
                       .where(schema.multipart_parts.c.upload_id == name))
            tx.execute(delete(schema.multipart_uploads)
                       .where(schema.multipart_uploads.c.upload_id == name))

    def names_and_times(self) -> list[tuple[str, float]]:
        table = schema.multipart_uploads
        with self.db.reading() as conn:
            return [(row.upload_id, row.updated_ms / 1000)
                    for row in conn.execute(select(table.c.upload_id, table.c.updated_ms))]

    def remove_strays(self, store, older_than_s: float) -> int:
        """Abort multipart uploads and delete tails that no ledger entry names, older than
        `older_than_s` (what a crash between the store and the database leaves)."""
        table = schema.multipart_uploads
        with self.db.reading() as conn:
            known = {(row.object_key, row.multipart_id)
                     for row in conn.execute(select(table.c.object_key, table.c.multipart_id))}
            names = set(conn.scalars(select(table.c.upload_id)))
        cutoff, removed = time.time() - older_than_s, 0
        with translated_errors("list multipart uploads"):
            pages = store.client.get_paginator("list_multipart_uploads").paginate(
                Bucket=store.bucket, Prefix=store.where.prefix)
            for page in pages:
                for upload in page.get("Uploads", ()):
                    if (upload["Key"], upload["UploadId"]) in known \
                            or upload["Initiated"].timestamp() >= cutoff:
                        continue
                    _abort(store, upload["Key"], upload["UploadId"])
                    removed += 1
        strays = [key for key, modified in store.objects_under(store.where.key("tails/"))
                  if key.split("/")[-2] not in names and modified < cutoff]
        store.delete_objects(strays)
        return removed + len(strays)


def _abort(store, key: str, multipart_id: str) -> None:
    try:
        with translated_errors("abort a multipart upload"):
            store.client.abort_multipart_upload(Bucket=store.bucket, Key=key,
                                                UploadId=multipart_id)
    except ClientError as exc:
        if not is_missing(exc):
            raise


def _complete(store, key: str, multipart_id: str, parts) -> None:
    store.client.complete_multipart_upload(
        Bucket=store.bucket, Key=key, UploadId=multipart_id,
        MultipartUpload={"Parts": [{"PartNumber": p.number, "ETag": p.etag} for p in parts]})


def send_in_parts(store, key: str, readinto: ReadInto, size: int) -> None:
    """`size` bytes from `readinto` as the object `key`, in parts sent as a resumable
    upload's are (several at once, each with its Content-MD5); nothing is left behind if it
    fails."""
    with translated_errors("store a blob"):
        multipart_id = store.client.create_multipart_upload(Bucket=store.bucket,
                                                            Key=key)["UploadId"]
    try:
        writer = _PartWriter(store, key, multipart_id, part_bytes_for(size))
        try:
            writer.fill_from(readinto, size)
            parts = writer.finish(final=True)
        finally:
            writer.close()
        with translated_errors("store a blob"):
            _complete(store, key, multipart_id, parts)
    except BaseException:
        _abort(store, key, multipart_id)
        raise


class S3Partial(Partial):
    def __init__(self, store, name: str):
        self._store, self.name = store, name
        self._written: tuple[LedgerEntry, tuple[Part, ...]] | None = None

    @property
    def _client(self):
        return self._store.client

    def _entry(self) -> LedgerEntry:
        entry = self._store.ledger.load(self.name)
        if entry is None:
            raise LostBytes(f"no ledger entry for upload {self.name}")
        return entry

    def create(self, length: int, sha256: str | None = None) -> None:
        self.remove()
        key = self._store.key(sha256) if sha256 else self._store.staging_key(self.name)
        with translated_errors("start a multipart upload"):
            multipart_id = self._client.create_multipart_upload(
                Bucket=self._store.bucket, Key=key)["UploadId"]
        self._store.ledger.start(LedgerEntry(
            self.name, key, multipart_id, length, part_bytes_for(length), 0, None, 0,
            Digests.resumable().saved()))

    def exists(self) -> bool:
        return self._store.ledger.load(self.name) is not None

    def digests(self, offset: int) -> Digests:
        entry = self._entry()
        if entry.received != offset:
            raise LostBytes(f"the ledger holds {entry.received} bytes, not {offset}")
        return Digests.restored(offset, entry.digests)

    def write_at(self, offset: int, readinto: ReadInto, want: int, digests: Digests,
                 chunk_hash=None) -> int:
        entry = self._entry()
        if entry.received != offset:
            raise LostBytes(f"the ledger holds {entry.received} bytes, not {offset}")
        writer = _PartWriter(self._store, entry.object_key, entry.multipart_id,
                             entry.part_bytes, len(entry.parts) + 1)
        try:
            with digests.md5_behind():
                if entry.tail_key:
                    writer.add(self._read_tail(entry))
                received = writer.fill_from(readinto, want, digests, chunk_hash)
            final = offset + received == entry.length
            new_parts = writer.finish(final)
        finally:
            writer.close()
        tail_key, tail_bytes = entry.tail_key, entry.tail_bytes
        if received:
            tail_key, tail_bytes = self._keep_tail(writer.leftover(), offset + received)
        written = replace(entry, received=offset + received, tail_key=tail_key,
                          tail_bytes=tail_bytes, digests=digests.saved())
        self._written = (written, new_parts)
        return received

    def _read_tail(self, entry: LedgerEntry) -> bytes:
        with translated_errors("read an upload's tail"):
            data = self._client.get_object(Bucket=self._store.bucket,
                                           Key=entry.tail_key)["Body"].read()
        if len(data) != entry.tail_bytes:
            raise LostBytes(f"tail {entry.tail_key} holds {len(data)} bytes, "
                            f"not {entry.tail_bytes}")
        return data

    def _keep_tail(self, leftover: bytes, end: int) -> tuple[str | None, int]:
        if not leftover:
            return None, 0
        key = f"{self._store.tail_prefix(self.name)}{end}-{secrets.token_hex(4)}"
        with translated_errors("store an upload's tail"):
            self._client.put_object(Bucket=self._store.bucket, Key=key, Body=leftover,
                                    ContentMD5=content_md5(hashlib.md5(leftover).digest()))
        return key, len(leftover)

    def record_written(self, tx) -> None:
        if self._written is not None:
            entry, new_parts = self._written
            self._store.ledger.record(tx, entry, new_parts)
            self._written = None

    def truncate(self, size: int) -> None:
        """Forget the last write: the ledger never named its parts (their numbers are sent
        again) nor its tail, which goes."""
        written, self._written = self._written, None
        if written is not None and written[0].tail_key:
            entry = self._store.ledger.load(self.name)
            if entry is None or entry.tail_key != written[0].tail_key:
                self._store.delete_objects([written[0].tail_key])

    def seal(self, digests: Digests, expected_md5: str,
             expected_sha256: str | None = None) -> PendingBlob:
        """A multipart upload under an announced SHA-256's key is sealed only with that
        SHA-256 checked: completing it writes that key."""
        entry = self._entry()
        if entry.object_key != self._store.staging_key(self.name):
            expected_sha256 = entry.object_key.rsplit("/", 1)[-1]
        return _SealedUpload(self._store, entry, digests.checked(expected_md5,
                                                                 expected_sha256))

    def remove(self) -> None:
        """Ledger first, then the store's bytes (an upload's staging object, never a blob)."""
        entry = self._store.ledger.load(self.name)
        if entry is None:
            return
        self._store.ledger.forget(self.name)
        _abort(self._store, entry.object_key, entry.multipart_id)
        tails = [key for key, _ in self._store.objects_under(self._store.tail_prefix(self.name))]
        if entry.object_key == self._store.staging_key(self.name):
            tails.append(entry.object_key)
        self._store.delete_objects(tails)


class _SealedUpload(PendingBlob):
    """A complete, checked upload; `commit` completes the multipart upload (and, from a
    staging key, copies the object to its final key)."""

    def __init__(self, store, entry: LedgerEntry, info):
        self._store, self._entry, self.info = store, entry, info

    def commit(self) -> None:
        """Safe to run again after a crash at any step: bytes already under the final key
        (put there by this upload before the crash, or by another upload of the same bytes)
        end the work, and the multipart upload is dropped."""
        store, entry = self._store, self._entry
        final_key = store.key(self.info.sha256)
        with translated_errors("complete an upload"):
            if store.object_exists(final_key):
                _abort(store, entry.object_key, entry.multipart_id)
            elif not entry.parts:
                store.client.put_object(Bucket=store.bucket, Key=final_key, Body=b"",
                                        ContentMD5=content_md5(hashlib.md5().digest()))
            else:
                self._complete()
                if entry.object_key != final_key:
                    store.client.copy({"Bucket": store.bucket, "Key": entry.object_key},
                                      store.bucket, final_key, Config=store.transfer)
        leftovers = [key for key, _ in store.objects_under(store.tail_prefix(entry.name))]
        if entry.object_key != final_key:
            leftovers.append(entry.object_key)
        store.delete_objects(leftovers)

    def _complete(self) -> None:
        store, entry = self._store, self._entry
        try:
            _complete(store, entry.object_key, entry.multipart_id, entry.parts)
        except ClientError as exc:
            # Completed by an earlier try that died before the upload was staged.
            if not (is_missing(exc) and store.object_exists(entry.object_key)):
                raise

    def discard(self) -> None:
        pass


class _PartWriter:
    """Cuts a chunk into parts and sends PARTS_IN_FLIGHT of them at once (the store answers a
    part in a third of a second or so: one at a time, the link would idle while it thinks),
    on the store's shared sender threads, from PARTS_IN_FLIGHT + 1 buffers reused in turn.
    Each part's own MD5 goes with it as Content-MD5, so the store checks that transfer."""

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
        md5 = hashlib.md5(data)
        with translated_errors("store a part"):
            answer = self._store.client.upload_part(
                Bucket=self._store.bucket, Key=self._key, UploadId=self._multipart_id,
                PartNumber=number, Body=data, ContentMD5=content_md5(md5.digest()))
        return Part(number, len(data), answer["ETag"], md5.hexdigest())

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
