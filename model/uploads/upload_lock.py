"""One writer per resumable upload, across threads, processes and hosts.

On PostgreSQL the lock is a session advisory lock, held on a connection of its own for as
long as the chunk is written, so two importer hosts on one database never write one upload
at once; a host that dies lets go with its connection. On SQLite (one host) it is a `flock`
on a lock file, which the kernel lets go when the process dies.
A request still reading a dead connection lets go as soon as it sees the end, so a short wait
covers the usual retry; past it the caller gets `busy()`.
"""

import errno
import fcntl
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from sqlalchemy import text

from model.store.database import Database

POLL_S = 0.05


class UploadLocks:
    def __init__(self, database: Database, lock_folder: str | Path,
                 busy: Callable[[], Exception]):
        """`busy()` makes the exception raised when the wait ends without the lock."""
        self._db, self._busy = database, busy
        self.folder = Path(lock_folder)
        if database.is_sqlite:
            self.folder.mkdir(parents=True, exist_ok=True)

    @contextmanager
    def held(self, upload_id: str, wait_s: float) -> Iterator[None]:
        locked = self._advisory if not self._db.is_sqlite else self._flock
        with locked(upload_id, time.monotonic() + wait_s):
            yield

    def forget(self, upload_id: str) -> None:
        """Remove the lock's file, if it has one (once the upload is gone)."""
        if self._db.is_sqlite:
            self._path(upload_id).unlink(missing_ok=True)

    def remove_strays(self, known: set[str], older_than: float) -> None:
        """Lock files of uploads that no longer exist, last used before `older_than`."""
        if not self._db.is_sqlite:
            return
        for path in self.folder.glob("*.lock"):
            if path.stem not in known and path.stat().st_mtime < older_than:
                path.unlink(missing_ok=True)

    def _path(self, upload_id: str) -> Path:
        return self.folder / f"{upload_id}.lock"

    @contextmanager
    def _flock(self, upload_id: str, deadline: float) -> Iterator[None]:
        with open(self._path(upload_id), "a+b") as handle:
            while True:
                try:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as exc:
                    if exc.errno not in (errno.EAGAIN, errno.EACCES):
                        raise
                    self._wait_or_give_up(deadline)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    @contextmanager
    def _advisory(self, upload_id: str, deadline: float) -> Iterator[None]:
        key = int(upload_id[:15], 16)        # 60 bits of a random ID: a positive bigint
        with self._db.reading() as conn:
            while not conn.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}):
                conn.rollback()
                self._wait_or_give_up(deadline)
            conn.commit()
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                conn.commit()

    def _wait_or_give_up(self, deadline: float) -> None:
        if time.monotonic() > deadline:
            raise self._busy()
        time.sleep(POLL_S)
