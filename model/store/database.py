"""The one owner of the database engine: connections, transactions and migrations.

Nothing else creates an engine. SQLite gets WAL (readers never wait for the writer), a busy
timeout, and foreign keys; PostgreSQL a small pool with pre-ping.
"""

import time
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Iterator

from sqlalchemy import Connection, create_engine, event
from sqlalchemy.exc import OperationalError

from model.protocol.errors import Busy
from model.store.migration_state import at_heads
from model.store.sqlite_writers import SqliteWriters, WritersBusy

MIGRATIONS = Path(__file__).with_name("migrations")


class DatabaseBusy(Busy):
    """The database stayed locked past the busy timeout; the same request may succeed later."""


def now_ms() -> int:
    return int(time.time() * 1000)


class Database:
    def __init__(self, url: str, busy_timeout_s: float = 10.0):
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self._writers = None
        if self.is_sqlite:
            path = _make_parent_folder(url)
            if path:
                self._writers = SqliteWriters(path, busy_timeout_s)
            self.engine = create_engine(
                url, connect_args={"check_same_thread": False, "timeout": busy_timeout_s})
            event.listen(self.engine, "connect", _sqlite_pragmas)
            event.listen(self.engine, "begin", _sqlite_begin)
        else:
            # Overflow room for the connections that hold an upload's advisory lock while
            # a chunk is written (one per importer thread at most).
            self.engine = create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=20)

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One unit of work: committed on success, rolled back on any exception. On SQLite
        it waits its turn among this site's writers first (`model.store.sqlite_writers`)."""
        try:
            with self._writer_turn(), self.engine.connect() as connection:
                connection.execution_options(skyrelay_write=True)
                with connection.begin():
                    yield connection
        except OperationalError as exc:
            if _is_busy(exc):
                raise DatabaseBusy(str(exc.orig)) from exc
            raise
        except WritersBusy as exc:
            raise DatabaseBusy(str(exc)) from exc

    def _writer_turn(self):
        return self._writers.turn() if self._writers is not None else nullcontext()

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        """A connection for reads; under WAL it never waits for a writer."""
        with self.engine.connect() as connection:
            yield connection

    def _alembic_config(self, connection: Connection):
        # Imported here: alembic is a large part of every command's start, and only
        # migrating needs it.
        from alembic.config import Config as AlembicConfig
        config = AlembicConfig()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["connection"] = connection
        return config

    def migrate(self) -> None:
        """Apply every pending migration (a new site is created this way).

        Each capability adds its tables in its own branch off 0001, so there may be
        several heads; all of them are applied."""
        with self.engine.begin() as connection:
            if at_heads(connection, MIGRATIONS / "versions"):
                return                      # nothing to apply: alembic is not even imported
            from alembic import command
            command.upgrade(self._alembic_config(connection), "heads")

    def dispose(self) -> None:
        self.engine.dispose()
        if self._writers is not None:
            self._writers.close()


def _make_parent_folder(url: str) -> str | None:
    """The database file's path (its folder made), or None for an in-memory database."""
    path = url.split("///", 1)[-1].split("?", 1)[0]
    if not path or path == ":memory:":
        return None
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return path


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # Let SQLAlchemy, not the driver, decide when a transaction begins (see _sqlite_begin).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_begin(connection) -> None:
    """A write transaction takes the lock at BEGIN, so a read-then-write never fails half-way
    on a lock upgrade (SQLite answers that with "locked" at once, ignoring the busy timeout)."""
    write = connection.get_execution_options().get("skyrelay_write")
    connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def _is_busy(exc: OperationalError) -> bool:
    text = str(exc.orig).lower()
    return "database is locked" in text or "database is busy" in text
