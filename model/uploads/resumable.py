"""Resumable uploads: the state behind the importer's tus endpoint, without any HTTP.

An upload is a row (who created it, for which file ID and MD5, how long, how many bytes count
so far) and the blob store's partial bytes of that name. The row's offset is the truth: bytes
past it in the partial are leftovers of a chunk that was dropped, and are cut off before the
next write. So an upload survives a restart of the server.

The whole-file MD5 (and the SHA-256 the blob store names blobs by) is computed as the bytes
arrive. hashlib states cannot be saved, so they are kept in memory per process, keyed by
(upload, offset); after a restart, or when a chunk lands on another process, the partial is
hashed once up to the offset and the digests go on from there.

When the last byte arrives the partial is sealed with the MD5 announced at creation; only if
it matches do the bytes become a blob (in a local store a rename, not a copy) staged under
(file ID, MD5), exactly as a version 1 upload would be. A mismatch resets the upload to
offset 0: some byte is wrong and nobody can tell which.
"""

import hashlib
import threading
import time
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

from cachetools import LRUCache
from sqlalchemy import delete, insert, select, update

from model.archive.archive import Archive
from model.protocol import codec
from model.protocol.errors import Busy, Conflict, NotFound, OverLimit, SkyrelayError
from model.store import schema
from model.store.blobs import Digests, LostBytes, Md5Mismatch, Partial, TooLarge
from model.store.database import Database, now_ms
from model.uploads.upload_lock import UploadLocks

CHECKSUMS = {"md5": hashlib.md5, "sha1": hashlib.sha1}  # tus requires sha1; we add md5


class UploadError(SkyrelayError):
    """The request cannot be applied to the upload; nothing about it changed."""


class UploadNotFound(UploadError, NotFound):
    """No such upload for this user (another user's upload is not found either)."""


class UploadGone(UploadError):
    """The upload expired and was removed."""


class OffsetMismatch(UploadError, Conflict):
    def __init__(self, held: int, sent: int):
        super().__init__(f"Upload-Offset {sent} is not the upload's offset {held}")
        self.held = held


class UploadBusy(UploadError, Busy):
    """Another request is writing to this upload right now; try again shortly."""


class ChunkTooLong(UploadError, OverLimit):
    """The chunk would go past the upload's length; it was dropped."""


class ChecksumMismatch(UploadError):
    """The chunk's checksum did not match; it was dropped and the offset did not move."""


class WholeFileMismatch(UploadError):
    """The complete file's MD5 is not the one announced: the upload starts again at 0."""


@dataclass(frozen=True)
class Upload:
    upload_id: str
    owner: str
    file_id: str
    md5: str
    length: int
    offset: int
    metadata: str
    complete: bool
    expires_ms: int
    sha256: str | None = None


def _row_to_upload(row) -> Upload:
    return Upload(row.upload_id, row.owner, row.file_id, row.md5, row.upload_length,
                  row.received_bytes, row.metadata, bool(row.complete), row.expires_ms,
                  row.sha256)


class Uploads:
    def __init__(self, database: Database, archive: Archive, lock_folder: str | Path,
                 ttl_s: float, max_bytes: int, busy_wait_s: float = 10.0):
        """The bytes go to the archive's blob store; `lock_folder` holds the lock files that
        let one request at a time write to an upload (on SQLite)."""
        self.db = database
        self.archive = archive
        self.locks = UploadLocks(database, lock_folder, lambda: UploadBusy(
            "another request is writing to this upload"))
        self.ttl_ms = int(ttl_s * 1000)
        self.max_bytes = max_bytes
        self.busy_wait_s = busy_wait_s
        self._digests: LRUCache = LRUCache(maxsize=64)
        self._digests_lock = threading.Lock()

    # -- the partial and the lock -----------------------------------------------------------

    def partial(self, upload_id: str) -> Partial:
        return self.archive.blobs.partial(upload_id)

    def _locked(self, upload_id: str, wait_s: float | None = None):
        """One writer per upload (`model.uploads.upload_lock`)."""
        return self.locks.held(upload_id, self.busy_wait_s if wait_s is None else wait_s)

    # -- create, read, end ------------------------------------------------------------------

    def create(self, owner: str, file_id: str, md5: str, length: int,
               metadata: str = "", sha256: str | None = None) -> Upload:
        """Raises model.protocol.codec.EntityError for a bad file ID / MD5 / length / SHA-256,
        TooLarge past the size limit. `sha256`, if the client knows it, lets an object store
        write the bytes under their final name from the start (and is checked at the end)."""
        file_id = codec.uuid_hex(file_id, "file_id")
        md5 = codec.md5_hex(md5, "md5")
        if sha256 is not None:
            sha256 = codec.sha256_hex(sha256, "sha256")
        length = codec.integer(length, "Upload-Length", minimum=0)
        if length > self.max_bytes:
            raise TooLarge(self.max_bytes)
        if length == 0:
            try:                            # complete at once: the digests can be checked now
                Digests().checked(md5, sha256)
            except Md5Mismatch as exc:
                raise WholeFileMismatch(f"an empty file has the {exc.digest} {exc.actual}, "
                                        f"not {exc.expected}") from None
        upload_id = uuid.uuid4().hex
        self.partial(upload_id).create(length, sha256)  # bytes first, then the row
        created = now_ms()
        with self.db.transaction() as tx:
            tx.execute(insert(schema.uploads).values(
                upload_id=upload_id, owner=owner, file_id=file_id, md5=md5,
                upload_length=length, received_bytes=0, metadata=metadata, sha256=sha256,
                complete=0,
                created_ms=created, expires_ms=created + self.ttl_ms))
        upload = self._load(upload_id)
        if length == 0:
            with self._locked(upload_id):
                upload = self._finish(upload, Digests())
        return upload

    def get(self, owner: str, upload_id: str) -> Upload:
        upload = self._load(upload_id)
        if upload is None or upload.owner != owner:
            raise UploadNotFound(f"upload {upload_id} not found")
        if upload.expires_ms < now_ms():
            self._remove(upload_id)
            raise UploadGone(f"upload {upload_id} expired")
        if upload.offset == upload.length and not upload.complete:
            with self._locked(upload_id):
                upload = self._recover_finished(self._load(upload_id))
        return upload

    def settled(self, owner: str, upload_id: str, wait_s: float = 2.0) -> Upload:
        """`get`, after letting a chunk in flight finish (for up to `wait_s`): a client that
        asks for the offset right after its connection dropped gets the bytes that made it,
        not the offset from before the chunk. Past the wait, the offset held so far."""
        self.get(owner, upload_id)
        try:
            with self._locked(upload_id, wait_s):
                pass
        except UploadBusy:
            pass
        return self.get(owner, upload_id)

    def terminate(self, owner: str, upload_id: str) -> None:
        self.get(owner, upload_id)
        with self._locked(upload_id):
            self._remove(upload_id)

    def expire(self, grace_s: float = 3600, dry_run: bool = False) -> int:
        """Remove expired uploads, and partial bytes and lock files no row names (a crash
        between the bytes and the row) once older than `grace_s`. Returns the number of
        uploads removed (with `dry_run`, that would be; nothing is removed)."""
        with self.db.reading() as conn:
            expired = list(conn.scalars(select(schema.uploads.c.upload_id)
                                        .where(schema.uploads.c.expires_ms < now_ms())))
            known = set(conn.scalars(select(schema.uploads.c.upload_id)))
        if dry_run:
            return len(expired)
        for upload_id in expired:
            self._remove(upload_id)
        cutoff = time.time() - grace_s
        for name, mtime in self.archive.blobs.partials():
            if name not in known and mtime < cutoff:
                self.partial(name).remove()
        self.locks.remove_strays(known, cutoff)
        return len(expired)

    # -- append -----------------------------------------------------------------------------

    def append(self, owner: str, upload_id: str, offset: int,
               readinto: Callable[[memoryview], int], declared: int | None = None,
               checksum: tuple[str, bytes] | None = None) -> Upload:
        """Write the bytes `readinto` yields at `offset`.

        `readinto(view)` fills the view and returns the count, fewer only at the end of the
        body (or when the client went away). `declared` is the chunk's length if the request
        said it. With a `checksum` (algorithm, digest) the chunk counts only if it is
        complete and matches; without one, whatever arrived counts (tus: keep as much as
        possible), so a dropped connection costs only the bytes in flight.
        """
        upload = self.get(owner, upload_id)
        if checksum is not None and checksum[0] not in CHECKSUMS:
            raise ValueError(f"checksum algorithm {checksum[0]!r} is not supported")
        if declared is not None and offset + declared > upload.length:
            raise ChunkTooLong(f"{declared} bytes at offset {offset} go past the upload's "
                               f"length {upload.length}")
        with self._locked(upload_id):
            upload = self._load(upload_id)
            if upload is None:
                raise UploadNotFound(f"upload {upload_id} not found")
            if offset != upload.offset:
                raise OffsetMismatch(upload.offset, offset)
            if upload.complete:
                return upload
            return self._append_locked(upload, readinto, declared, checksum)

    def _append_locked(self, upload: Upload, readinto, declared, checksum) -> Upload:
        before = self._take_digests(upload)
        after = before.copy()
        chunk_hash = CHECKSUMS[checksum[0]]() if checksum else None
        partial = self.partial(upload.upload_id)
        room = upload.length - upload.offset
        try:
            received = partial.write_at(upload.offset, readinto,
                                        room if declared is None else declared, after,
                                        chunk_hash)
            if declared is None and received == room and room and readinto(bytearray(1)):
                raise ChunkTooLong(f"the body goes past the upload's length {upload.length}")
        except BaseException:
            partial.truncate(upload.offset)
            self._keep_digests(upload.upload_id, before)
            raise
        if checksum is not None and (
                (declared is not None and received < declared)
                or chunk_hash.digest() != checksum[1]):
            partial.truncate(upload.offset)
            self._keep_digests(upload.upload_id, before)
            if declared is not None and received < declared:
                return upload  # cut short: the client is gone, and the chunk cannot be checked
            raise ChecksumMismatch(f"the chunk's {checksum[0]} does not match Upload-Checksum; "
                                   f"it was dropped, the offset stays {upload.offset}")
        if received == 0:
            self._keep_digests(upload.upload_id, before)
            return upload
        upload = self._advance(upload, upload.offset + received, partial)
        if upload.offset == upload.length:
            return self._finish(upload, after)
        self._keep_digests(upload.upload_id, after)
        return upload

    def _advance(self, upload: Upload, offset: int, partial: Partial) -> Upload:
        """The chunk counts: the offset and the partial's own record of it, in one
        transaction."""
        expires = now_ms() + self.ttl_ms
        with self.db.transaction() as tx:
            tx.execute(update(schema.uploads)
                       .where(schema.uploads.c.upload_id == upload.upload_id)
                       .values(received_bytes=offset, expires_ms=expires))
            partial.record_written(tx)
        return replace(upload, offset=offset, expires_ms=expires)

    # -- digests ----------------------------------------------------------------------------

    def _take_digests(self, upload: Upload) -> Digests:
        with self._digests_lock:
            digests = self._digests.pop(upload.upload_id, None)
        if digests is not None and digests.offset == upload.offset:
            return digests
        return self._rehash(upload)

    def _keep_digests(self, upload_id: str, digests: Digests) -> None:
        with self._digests_lock:
            self._digests[upload_id] = digests

    def _forget_digests(self, upload_id: str) -> None:
        with self._digests_lock:
            self._digests.pop(upload_id, None)

    def _rehash(self, upload: Upload) -> Digests:
        """Digests of the partial's first `offset` bytes (after a restart, or when the
        previous chunk went to another process)."""
        try:
            return self.partial(upload.upload_id).digests(upload.offset)
        except LostBytes:                   # the partial lost bytes: start over
            self._reset(upload)
            raise OffsetMismatch(0, upload.offset) from None

    # -- the last byte ----------------------------------------------------------------------

    def _finish(self, upload: Upload, digests: Digests) -> Upload:
        try:
            pending = self.partial(upload.upload_id).seal(digests, upload.md5, upload.sha256)
        except Md5Mismatch as exc:
            self._reset(upload)
            raise WholeFileMismatch(
                f"the whole file's {exc.digest} is {exc.actual}, expected {exc.expected}: "
                "nothing was received and the upload starts again at offset 0") from None
        staged = self.archive.stage_pending(upload.file_id, upload.md5, pending)
        if not staged.received:   # the same bytes were deleted meanwhile: send them again
            self._reset(upload)
            raise WholeFileMismatch(staged.message)
        self._set(upload.upload_id, complete=1)
        self._forget_digests(upload.upload_id)
        return replace(upload, complete=True)

    def _recover_finished(self, upload: Upload) -> Upload:
        """The last byte was counted but the process died before the bytes were staged."""
        if upload.complete:
            return upload
        if self.partial(upload.upload_id).exists():
            try:
                return self._finish(upload, self._rehash(upload))
            except (WholeFileMismatch, OffsetMismatch):
                return self._load(upload.upload_id)
        if self.archive.has_data(upload.file_id, upload.md5):
            self._set(upload.upload_id, complete=1)
            return replace(upload, complete=True)
        self._reset(upload)
        return replace(upload, offset=0)

    def _reset(self, upload: Upload) -> None:
        self.partial(upload.upload_id).create(upload.length, upload.sha256)
        self._set(upload.upload_id, received_bytes=0)
        self._forget_digests(upload.upload_id)

    # -- rows -------------------------------------------------------------------------------

    def _set(self, upload_id: str, **values) -> None:
        with self.db.transaction() as tx:
            tx.execute(update(schema.uploads).where(schema.uploads.c.upload_id == upload_id)
                       .values(**values))

    def _load(self, upload_id: str) -> Upload | None:
        with self.db.reading() as conn:
            row = conn.execute(select(schema.uploads)
                               .where(schema.uploads.c.upload_id == upload_id)).first()
        return None if row is None else _row_to_upload(row)

    def _remove(self, upload_id: str) -> None:
        """Row first, then the bytes (a row never names missing partial bytes)."""
        with self.db.transaction() as tx:
            tx.execute(delete(schema.uploads).where(schema.uploads.c.upload_id == upload_id))
        self._forget_digests(upload_id)
        self.partial(upload_id).remove()
        self.locks.forget(upload_id)
