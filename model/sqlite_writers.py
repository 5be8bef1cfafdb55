"""One SQLite writer at a time, handed over as soon as the previous one commits.

SQLite lets one connection write at a time. A connection that finds the write lock taken
waits in SQLite's busy handler, which sleeps in growing steps (up to 100 ms) and checks
again: two importer processes storing batches side by side waited 20-80 ms for locks
released long before, a sixth of a sync's time. Writers therefore queue here first: behind
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
from contextlib import contextmanager
from typing import Iterator

LONGEST_NAP_S = 0.002


class WritersBusy(Exception):
    """No turn to write came within the timeout."""


class SqliteWriters:
    def __init__(self, database_path: str, timeout_s: float):
        self.lock_path = f"{database_path}-writers.lock"
        self.timeout_s = timeout_s
        self._pid = None           # the process the lock and file below belong to

    def _for_this_process(self) -> None:
        """A forked child (gunicorn's workers) gets its own thread lock and lock file
        descriptor: an flock shared through an inherited descriptor excludes nobody."""
        if self._pid != os.getpid():
            self._threads = threading.Lock()
            self._fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            self._pid = os.getpid()

    def close(self) -> None:
        if self._pid == os.getpid():
            os.close(self._fd)
        self._pid = None

    @contextmanager
    def turn(self) -> Iterator[None]:
        """Hold the turn to write; raises WritersBusy after `timeout_s` of waiting."""
        self._for_this_process()
        deadline = time.monotonic() + self.timeout_s
        if not self._threads.acquire(timeout=self.timeout_s):
            raise WritersBusy(f"no turn to write within {self.timeout_s} s")
        try:
            self._lock_file(deadline)
            try:
                yield
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._threads.release()

    def _lock_file(self, deadline: float) -> None:
        nap = LONGEST_NAP_S / 4
        while True:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
            if time.monotonic() > deadline:
                raise WritersBusy(f"no turn to write within {self.timeout_s} s "
                                  "(another process holds the database's write lock)")
            time.sleep(nap)
            nap = min(nap * 2, LONGEST_NAP_S)
