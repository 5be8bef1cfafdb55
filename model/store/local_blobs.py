"""Blobs in a folder: `ab/cd/abcd…` by SHA-256, temporary files in `tmp/`, the partial
bytes of resumable uploads in `uploads/<name>.part` (on the same file system, so that sealing
one is a rename, not a copy).

Every way in writes through `_HashingWriter` to a name that is not the blob's, and the
pending blob's commit renames it into place: a crash never leaves a half-written blob under
its final name. A small blob (up to SMALL_BLOB bytes) is hashed in memory first and its
temporary file made in its own final folder (`ab/cd/.incoming-…`): creating files in the one
shared `tmp/` folder, whose directory grows with every file in flight, costs more per file
than creating them in the small two-level folders. Temporary names start with a dot; `list`
never shows them.
"""

import functools
import itertools
import os
import secrets
import tempfile
import time
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator

from model.store.blobs import (CHUNK, MD5_LAG, BlobInfo, BlobStore, Digests, LostBytes,
                               Partial, PendingBlob, ReadInto, Temporary, TooLarge,
                               chunks_of)
from model.store.page_cache import DROP_EVERY, PageDropper, sync_file_system

SMALL_BLOB = 1024 * 1024
TEMP_PREFIX = ".incoming-"
PARTIAL_SUFFIX = ".part"
_OPEN_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)


def _make_folder(folder: str) -> None:
    """`ab/cd` below the root, creating `ab` if needed (the least system calls: most folders
    are new leaves of existing parents)."""
    try:
        os.mkdir(folder)
    except FileExistsError:
        pass
    except FileNotFoundError:
        os.makedirs(folder, exist_ok=True)


class _HashingWriter:
    """Blocks written to an open file, each hashed into `digests` (and `also`, a chunk's own
    checksum) in the same pass, the page cache let go behind them; `finish` makes them
    durable."""

    def __init__(self, handle, start: int, digests: Digests, also=None):
        self._handle, self._digests, self._also = handle, digests, also
        self._pages = PageDropper(handle, start)

    def __enter__(self) -> "_HashingWriter":
        return self

    def __exit__(self, *exc_info) -> None:
        self._pages.__exit__(*exc_info)

    def write(self, block) -> None:
        self._handle.write(block)
        self._digests.update(block)
        if self._also is not None:
            self._also.update(block)
        self._pages.wrote(len(block))

    def finish(self, durable: bool = True, drop_rest: bool = True) -> None:
        self._handle.flush()
        if durable:
            os.fsync(self._handle.fileno())
        if drop_rest:
            self._pages.finish()


class _LocalPending(PendingBlob):
    def __init__(self, store: "LocalBlobStore", temp_path: str | Path, info: BlobInfo):
        self._store = store
        self._temp_path = temp_path
        self.info = info

    def commit(self) -> None:
        """Rename into place. Identical bytes already there are replaced by the same bytes:
        one copy either way, with a fresh mtime that keeps gc's grace period for the new
        reference, and no lookup first."""
        folder, final = self._store.folder_and_path(self.info.sha256)
        try:
            os.replace(self._temp_path, final)
        except FileNotFoundError:   # the blob's folder does not exist yet
            if not os.path.exists(self._temp_path):
                raise
            _make_folder(folder)
            os.replace(self._temp_path, final)

    def discard(self) -> None:
        try:
            os.unlink(self._temp_path)
        except FileNotFoundError:
            pass

    def open(self) -> BinaryIO:
        """The bytes written, before commit (a store that spools here first reads them)."""
        return open(self._temp_path, "rb")


class LocalPartial(Partial):
    """A resumable upload's bytes in `uploads/<name>.part`."""

    def __init__(self, store: "LocalBlobStore", name: str):
        self._store = store
        self.path = store.partial_folder / f"{name}{PARTIAL_SUFFIX}"

    def create(self, length: int, sha256: str | None = None) -> None:
        with open(self.path, "wb"):
            pass

    def exists(self) -> bool:
        return self.path.exists()

    def write_at(self, offset: int, readinto: ReadInto, want: int, digests: Digests,
                 chunk_hash=None) -> int:
        """Blocks go through MD5_LAG + 1 buffers in turn, so no byte is copied in this
        process, and a buffer is refilled only once the MD5 of its last block (which trails
        behind, see `Digests.md5_behind`) is done."""
        received, turn = 0, 0
        buffers = [memoryview(bytearray(CHUNK)) for _ in range(MD5_LAG + 1)]
        with open(self.path, "r+b") as out, _HashingWriter(out, offset, digests,
                                                            chunk_hash) as writer, \
                digests.md5_behind():
            out.seek(offset)
            out.truncate()
            while received < want:
                view = buffers[turn % len(buffers)][:min(CHUNK, want - received)]
                turn += 1
                got = readinto(view)
                if not got:
                    break
                writer.write(view[:got])
                received += got
            writer.finish()
        return received

    def truncate(self, size: int) -> None:
        with open(self.path, "r+b") as handle:
            handle.truncate(size)

    def digests(self, offset: int) -> Digests:
        """Hashed again from the file: hashlib's states cannot be saved, and reading back a
        local file is cheap next to receiving it."""
        digests = Digests()
        with open(self.path, "rb") as partial, digests.md5_behind():
            while digests.offset < offset:
                block = partial.read(min(CHUNK, offset - digests.offset))
                if not block:
                    raise LostBytes(f"{self.path} holds {digests.offset} of {offset} bytes")
                digests.update(block)
        return digests

    def seal(self, digests: Digests, expected_md5: str,
             expected_sha256: str | None = None) -> PendingBlob:
        info = digests.checked(expected_md5, expected_sha256)
        with open(self.path, "rb+") as handle:
            os.fsync(handle.fileno())
        return _LocalPending(self._store, self.path, info)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


class LocalBlobStore(BlobStore):
    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self._root_text = str(self.root)
        self.temp_dir = self.root / "tmp"
        self.temp_dir.mkdir(parents=True, exist_ok=True)
        self.partial_folder = self.root / "uploads"
        self.partial_folder.mkdir(parents=True, exist_ok=True)
        # Unique temporary names without tempfile's random tries: process, store, counter.
        self._temp_tag = f"{TEMP_PREFIX}{os.getpid()}-{secrets.token_hex(4)}-"
        self._temp_count = itertools.count()

    def folder_and_path(self, sha256: str) -> tuple[str, str]:
        """Both as strings, not Paths: the blob paths of small files are made for every
        file received, and pathlib's joins would be a noticeable part of the work."""
        folder = f"{self._root_text}/{sha256[:2]}/{sha256[2:4]}"
        return folder, f"{folder}/{sha256}"

    def write(self, source: BinaryIO | Iterable[bytes], md5: str | None = None,
              limit: int | None = None, durable: bool = True) -> PendingBlob:
        """`durable=False` skips the fsync: the caller writes many blobs and then makes them
        all durable with one `sync()` before it commits any (one flush instead of one per
        file, which is what made many small files slow)."""
        chunks, head, size = chunks_of(source), [], 0
        for chunk in chunks:
            size += len(chunk)
            if limit is not None and size > limit:
                raise TooLarge(limit)
            head.append(chunk)
            if size > SMALL_BLOB:
                return self._write_streamed(itertools.chain(head, chunks), md5, limit,
                                            durable)
        return self._write_small(b"".join(head), md5, durable)

    def _write_small(self, data: bytes, md5: str | None, durable: bool) -> PendingBlob:
        digests = Digests()
        digests.update(data)
        info = digests.checked(md5)
        folder, _ = self.folder_and_path(info.sha256)
        name = f"{folder}/{self._temp_tag}{next(self._temp_count)}"
        try:
            handle = os.open(name, _OPEN_NEW, 0o600)
        except FileNotFoundError:
            _make_folder(folder)
            handle = os.open(name, _OPEN_NEW, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(handle, view):]
            if durable:
                os.fsync(handle)
        except BaseException:
            os.close(handle)
            os.unlink(name)
            raise
        os.close(handle)
        return _LocalPending(self, name, info)

    def _write_streamed(self, chunks: Iterator[bytes], md5: str | None, limit: int | None,
                        durable: bool) -> PendingBlob:
        digests = Digests()
        handle, name = tempfile.mkstemp(dir=self.temp_dir, prefix="incoming-")
        try:
            with os.fdopen(handle, "wb") as out, _HashingWriter(out, 0, digests) as writer:
                for chunk in chunks:
                    if limit is not None and digests.offset + len(chunk) > limit:
                        raise TooLarge(limit)
                    writer.write(chunk)
                writer.finish(durable, drop_rest=digests.offset >= DROP_EVERY)
            info = digests.checked(md5)
        except BaseException:
            Path(name).unlink(missing_ok=True)
            raise
        return _LocalPending(self, Path(name), info)

    def sync(self) -> None:
        sync_file_system(self.root)

    def partial(self, name: str) -> LocalPartial:
        return LocalPartial(self, name)

    def partials(self) -> Iterator[tuple[str, float]]:
        for path in self.partial_folder.glob(f"*{PARTIAL_SUFFIX}"):
            try:
                yield path.name[:-len(PARTIAL_SUFFIX)], path.stat().st_mtime
            except FileNotFoundError:   # removed since the folder was read
                continue

    def open(self, sha256: str) -> BinaryIO:
        return open(self.folder_and_path(sha256)[1], "rb")

    def exists(self, sha256: str) -> bool:
        return os.path.exists(self.folder_and_path(sha256)[1])

    def delete(self, sha256: str) -> None:
        try:
            os.unlink(self.folder_and_path(sha256)[1])
        except FileNotFoundError:
            pass

    def list(self) -> Iterator[tuple[str, float]]:
        for path in self.root.glob("??/??/*"):
            if path.name.startswith("."):          # a small blob's temporary file
                continue
            try:
                yield path.name, path.stat().st_mtime
            except FileNotFoundError:  # removed since the folder was read
                continue

    def stale_temporaries(self, older_than_s: float,
                          beside_blobs: bool = True) -> "list[Temporary]":
        """Temporary files a crash left mid-write: every file in `tmp/` (a large blob's) and,
        `beside_blobs`, every `ab/cd/.incoming-…` (a small blob's, at most SMALL_BLOB bytes;
        finding them reads all 65,536 folders) not modified for `older_than_s`. A write in
        flight touches its file with every block, so only a writer that stalled (or died)
        that long is stale."""
        cutoff, found = time.time() - older_than_s, []
        small = self.root.glob(f"??/??/{TEMP_PREFIX}*") if beside_blobs else ()
        for path in itertools.chain(self.temp_dir.iterdir(), small):
            try:
                stat = path.stat()
            except FileNotFoundError:   # committed or discarded since the folder was read
                continue
            if stat.st_mtime < cutoff:
                found.append(Temporary(str(path), stat.st_size,
                                       functools.partial(_unlink, path)))
        return found


def _unlink(path: Path) -> bool:
    """Remove `path`; False if it was gone already (committed or discarded meanwhile)."""
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True
