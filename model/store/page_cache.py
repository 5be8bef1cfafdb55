"""Letting the page cache go behind large writes, and making a file system durable at once.

Received bytes are not read again soon, and holding them in the page cache makes every large
transfer allocate fresh memory (on a VM each fresh page is a fault to the host). Every
DROP_EVERY bytes the file is synced and its pages released, so the next writes reuse them.
The sync runs on a helper thread: waiting for the disk in the writing thread would stall the
transfer. bench/blob_stream.py measures the effect.
"""

import ctypes
import ctypes.util
import os
from concurrent.futures import Future, ThreadPoolExecutor

DROP_EVERY = 64 * 1024 * 1024
_DROP_THREADS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="skyrelay-pages")


def _find_syncfs():
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True).syncfs
    except (OSError, AttributeError):
        return None


_SYNCFS = _find_syncfs()


def sync_file_system(path) -> None:
    """Make every write on the file system holding `path` durable: one syncfs(2) (os.sync
    where syncfs is not available)."""
    handle = os.open(path, os.O_RDONLY)
    try:
        if _SYNCFS is None or _SYNCFS(handle) != 0:
            os.sync()
    finally:
        os.close(handle)


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
