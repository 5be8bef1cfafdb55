"""Content-addressed blob storage: bytes are named by their SHA-256, so identical bytes are
stored once.

A write streams into a temporary file while MD5 and SHA-256 are computed in the same pass;
the caller looks at the digests and either commits (flush, fsync, rename into place) or
discards. A crash therefore never leaves a half-written blob under its final name.

A small blob (up to SMALL_BLOB bytes) is hashed in memory first and its temporary file made
in its own final folder (`ab/cd/.incoming-…`): creating files in the one shared `tmp/` folder,
whose directory grows with every file in flight, cost several times more per file than
creating them in the small two-level folders, and that was most of receiving 4 KiB files.
Temporary names start with a dot; `list` never shows them.
"""

import itertools
import secrets

import ctypes
import ctypes.util
import hashlib
import os
import tempfile
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator, Protocol

from model.protocol.errors import OverLimit

CHUNK = 1024 * 1024
SMALL_BLOB = 1024 * 1024
TEMP_PREFIX = ".incoming-"
_OPEN_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)


def _find_syncfs():
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True).syncfs
    except (OSError, AttributeError):
        return None


_SYNCFS = _find_syncfs()

# Received bytes are not read again soon, and holding them in the page cache makes every
# large transfer allocate fresh memory (on a VM each fresh page is a fault to the host: it
# made writing a 1 GiB upload 3 to 4 times slower). Every DROP_EVERY bytes the file is
# synced and its pages released, so the next writes reuse them. The sync runs on a helper
# thread: waiting for the disk in the writing thread stalled the whole transfer (a fifth
# of a 1 GiB upload's time).
DROP_EVERY = 64 * 1024 * 1024
_DROP_THREADS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="skyrelay-pages")


def _sync_and_drop(fd: int, start: int, length: int) -> None:
    os.fdatasync(fd)
    _drop(fd, start, length)


def _drop(fd: int, start: int, length: int) -> None:
    if hasattr(os, "posix_fadvise") and length > 0:
        os.posix_fadvise(fd, start, length, os.POSIX_FADV_DONTNEED)


class PageDropper:
    """`with PageDropper(handle) as pages:` around the writes to an open file, `wrote(n)`
    after each; `finish()` after the last write (and its fsync) releases the rest.

    At most one sync is in flight: the next one waits for it, which bounds the written but
    not yet synced bytes to 2 × DROP_EVERY. Leaving the block waits for it too, so no sync
    outlives the file's descriptor."""

    def __init__(self, handle, start: int = 0):
        self._handle, self._synced, self._written = handle, start, start
        self._in_flight: Future | None = None

    def __enter__(self) -> "PageDropper":
        return self

    def __exit__(self, *exc_info) -> None:
        self._wait()

    def wrote(self, nbytes: int) -> None:
        self._written += nbytes
        if self._written - self._synced >= DROP_EVERY:
            self._handle.flush()
            self._wait()
            self._in_flight = _DROP_THREADS.submit(
                _sync_and_drop, self._handle.fileno(), self._synced,
                self._written - self._synced)
            self._synced = self._written

    def finish(self) -> None:
        self._wait()
        _drop(self._handle.fileno(), self._synced, self._written - self._synced)
        self._synced = self._written

    def _wait(self) -> None:
        if self._in_flight is not None:
            in_flight, self._in_flight = self._in_flight, None
            in_flight.result()


def _make_folder(folder: str) -> None:
    """`ab/cd` below the root, creating `ab` if needed (the least system calls: most folders
    are new leaves of existing parents)."""
    try:
        os.mkdir(folder)
    except FileExistsError:
        pass
    except FileNotFoundError:
        os.makedirs(folder, exist_ok=True)


class TooLarge(OverLimit):
    """The stream went past the size limit; nothing was kept."""

    def __init__(self, limit: int):
        super().__init__(f"larger than the limit of {limit} bytes")
        self.limit = limit


@dataclass(frozen=True)
class BlobInfo:
    sha256: str
    md5: str
    size: int


class PendingBlob(Protocol):
    info: BlobInfo

    def commit(self) -> None: ...
    def discard(self) -> None: ...


class BlobStore(Protocol):
    def write(self, source: BinaryIO | Iterable[bytes], limit: int | None = None,
              durable: bool = True) -> PendingBlob:
        """Stream `source` to a temporary place while hashing; raise TooLarge past `limit`.
        With `durable=False` the bytes are durable only after `sync()`."""

    def sync(self) -> None: ...

    def adopt(self, path: str | os.PathLike, info: BlobInfo) -> PendingBlob:
        """Take over a file already written and hashed (a finished resumable upload), so
        that its bytes are not copied a second time."""

    def open(self, sha256: str) -> BinaryIO: ...
    def exists(self, sha256: str) -> bool: ...
    def delete(self, sha256: str) -> None: ...
    def list(self) -> Iterator[tuple[str, float]]:
        """(sha256, modification time) of every committed blob."""


def _chunks(source: BinaryIO | Iterable[bytes]) -> Iterator[bytes]:
    if hasattr(source, "read"):
        while chunk := source.read(CHUNK):
            yield chunk
    else:
        yield from source


class _LocalPending:
    def __init__(self, store: "LocalBlobStore", temp_path: str | Path, info: BlobInfo):
        self._store = store
        self._temp_path = temp_path
        self.info = info

    def commit(self) -> None:
        """Rename into place. Identical bytes already there are replaced by the same bytes:
        one copy either way, with a fresh mtime that keeps gc's grace period for the new
        reference, and no lookup first (it was a tenth of receiving a small file)."""
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

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.discard()  # no-op after commit: the temporary name is gone


class LocalBlobStore:
    """Blobs in a folder: `ab/cd/abcd…` by SHA-256, temporary files in `tmp/`."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self._root_text = str(self.root)
        self.temp_dir = self.root / "tmp"
        self.temp_dir.mkdir(parents=True, exist_ok=True)
        # Unique temporary names without tempfile's random tries: process, store, counter.
        self._temp_tag = f"{TEMP_PREFIX}{os.getpid()}-{secrets.token_hex(4)}-"
        self._temp_count = itertools.count()

    def path_of(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def folder_and_path(self, sha256: str) -> tuple[str, str]:
        """Both as strings, not `path_of`'s Path: the blob paths of small files are made
        thousands of times a second, and pathlib's joins were a tenth of the work."""
        folder = f"{self._root_text}/{sha256[:2]}/{sha256[2:4]}"
        return folder, f"{folder}/{sha256}"

    def write(self, source, limit: int | None = None, durable: bool = True) -> _LocalPending:
        """`durable=False` skips the fsync: the caller writes many blobs and then makes them
        all durable with one `sync()` before it commits any (one flush instead of one per
        file, which is what made many small files slow)."""
        chunks, head, size = _chunks(source), [], 0
        for chunk in chunks:
            size += len(chunk)
            if limit is not None and size > limit:
                raise TooLarge(limit)
            head.append(chunk)
            if size > SMALL_BLOB:
                return self._write_streamed(itertools.chain(head, chunks), limit, durable)
        return self._write_small(b"".join(head), durable)

    def _write_small(self, data: bytes, durable: bool) -> _LocalPending:
        info = BlobInfo(hashlib.sha256(data).hexdigest(), hashlib.md5(data).hexdigest(),
                        len(data))
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

    def _write_streamed(self, chunks: Iterator[bytes], limit: int | None,
                        durable: bool) -> _LocalPending:
        md5, sha256, size = hashlib.md5(), hashlib.sha256(), 0
        handle, name = tempfile.mkstemp(dir=self.temp_dir, prefix="incoming-")
        try:
            with os.fdopen(handle, "wb") as out, PageDropper(out) as pages:
                for chunk in chunks:
                    size += len(chunk)
                    if limit is not None and size > limit:
                        raise TooLarge(limit)
                    md5.update(chunk)
                    sha256.update(chunk)
                    out.write(chunk)
                    pages.wrote(len(chunk))
                out.flush()
                if durable:
                    os.fsync(out.fileno())
                if size >= DROP_EVERY:
                    pages.finish()
        except BaseException:
            Path(name).unlink(missing_ok=True)
            raise
        return _LocalPending(self, Path(name),
                             BlobInfo(sha256.hexdigest(), md5.hexdigest(), size))

    def adopt(self, path: str | os.PathLike, info: BlobInfo) -> _LocalPending:
        """`path` must be on the store's file system (the uploads folder is under `root`):
        commit is then a rename, discard removes the file."""
        with open(path, "rb+") as handle:
            os.fsync(handle.fileno())
        return _LocalPending(self, Path(path), info)

    def sync(self) -> None:
        """Make every write so far durable: one syncfs(2) of the store's file system (os.sync
        where syncfs is not available)."""
        handle = os.open(self.root, os.O_RDONLY)
        try:
            if _SYNCFS is None or _SYNCFS(handle) != 0:
                os.sync()
        finally:
            os.close(handle)

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

    def remove_stale_temporaries(self, older_than_s: float) -> int:
        """Temporary files left by a crash mid-write (in `tmp/`, or beside the blobs)."""
        cutoff, removed = time.time() - older_than_s, 0
        for path in itertools.chain(self.temp_dir.iterdir(),
                                    self.root.glob(f"??/??/{TEMP_PREFIX}*")):
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink(missing_ok=True)
                    removed += 1
            except FileNotFoundError:   # committed or discarded since the folder was read
                continue
        return removed
