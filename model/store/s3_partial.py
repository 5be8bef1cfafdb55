"""A resumable upload's bytes in an S3 multipart upload, its state in the database, so that
each chunk may go to any importer host.

The ledger (`model.store.part_ledger`) holds the offset, every part's number, size, ETag
and CRC32, the tail, and the running digests (`model.store.resumable_hash`); it is written in
the same transaction as the upload's offset (`record_written`), and it alone says which
parts count. A chunk's bytes are cut into parts of the ledger's part size as they arrive,
several sent at once (`model.store.s3_parts`). Bytes left at the end of a chunk, too few for
a part of their own (S3's 5 MiB minimum), wait in a tail object and lead the next chunk's
first part.

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
from dataclasses import replace

from botocore.exceptions import ClientError

from model.store.blobs import Digests, LostBytes, Partial, PendingBlob, ReadInto
from model.store.object_store import (content_md5, crc32_checksum, is_missing,
                                      translated_errors)
from model.store.part_ledger import LedgerEntry, Part
from model.store.s3_parts import PartWriter, abort, complete, part_bytes_for, start


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
            multipart_id = start(self._store, key)
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
        writer = PartWriter(self._store, entry.object_key, entry.multipart_id,
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
                                    ChecksumCRC32=crc32_checksum(leftover))
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
        abort(self._store, entry.object_key, entry.multipart_id)
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
                abort(store, entry.object_key, entry.multipart_id)
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
            complete(store, entry.object_key, entry.multipart_id, entry.parts)
        except ClientError as exc:
            # Completed by an earlier try that died before the upload was staged.
            if not (is_missing(exc) and store.object_exists(entry.object_key)):
                raise

    def discard(self) -> None:
        pass
