"""One SQLite writer at a time, handed over as soon as the previous one commits.

SQLite lets one connection write at a time. A connection that finds the write lock taken
waits in SQLite's busy handler, which sleeps in growing steps and checks again: two
importer processes storing batches side by side would wait for locks released long before.
Writers therefore queue here first: behind
a lock among the threads of a process (woken at once on release) and behind an flock on a
file beside the database among processes (tried again every millisecond or two). By the
time a writer says BEGIN IMMEDIATE the write lock is free; the busy timeout stays as a
backstop for writers outside this module (another program, alembic).
"""

import errno
import fcntl
import os
import threading
import time
import weakref
from contextlib import contextmanager
from typing import Iterator

LONGEST_NAP_S = 0.002

# Every SqliteWriters of this process, so that a forked child starts with fresh locks.
_INSTANCES: "weakref.WeakSet[SqliteWriters]" = weakref.WeakSet()


class WritersBusy(Exception):
    """No turn to write came within the timeout."""


class SqliteWriters:
    def __init__(self, database_path: str, timeout_s: float):
        self.lock_path = f"{os.path.abspath(database_path)}-writers.lock"   # whatever cwd
        self.timeout_s = timeout_s
        self._threads = threading.Lock()
        self._fd: int | None = None
        self._fd_pid: int | None = None     # the process `_fd` was opened in
        _INSTANCES.add(self)

    def _file(self) -> int:
        """The lock file's descriptor in this process; called holding `_threads`. A forked
        child (gunicorn's workers) opens its own: an flock taken through a descriptor
        inherited from the parent would exclude neither of them."""
        if self._fd_pid != os.getpid():
            self._fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            self._fd_pid = os.getpid()
        return self._fd

    def close(self) -> None:
        with self._threads:
            if self._fd is not None and self._fd_pid == os.getpid():
                os.close(self._fd)
            self._fd = self._fd_pid = None

    @contextmanager
    def turn(self) -> Iterator[None]:
        """Hold the turn to write; raises WritersBusy after `timeout_s` of waiting."""
        deadline = time.monotonic() + self.timeout_s
        if not self._threads.acquire(timeout=self.timeout_s):
            raise WritersBusy(f"no turn to write within {self.timeout_s} s")
        try:
            fd = self._file()
            self._lock_file(fd, deadline)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            self._threads.release()

    def _lock_file(self, fd: int, deadline: float) -> None:
        nap = LONGEST_NAP_S / 4
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
            if time.monotonic() > deadline:
                raise WritersBusy(f"no turn to write within {self.timeout_s} s "
                                  "(another process holds the database's write lock)")
            time.sleep(nap)
            nap = min(nap * 2, LONGEST_NAP_S)


def _fresh_locks_in_child() -> None:
    """A lock held by another thread at the fork would stay held in the child for ever."""
    for writers in list(_INSTANCES):
        writers._threads = threading.Lock()


os.register_at_fork(after_in_child=_fresh_locks_in_child)
