"""SQL building blocks shared by the classes that own storage I/O (never used elsewhere)."""

import importlib
from typing import Sequence

from sqlalchemy import Connection, or_, select, text

from model.store import schema
# Values per SQL `IN (…)`: far below SQLite's and PostgreSQL's parameter limits.
IN_CHUNK = 500


def values_by_key(connection: Connection, key, value, keys: Sequence) -> dict:
    """{key: value} of the rows whose column `key` is among `keys` (duplicates asked once),
    IN_CHUNK keys per query."""
    wanted, found = list(dict.fromkeys(keys)), {}
    for start in range(0, len(wanted), IN_CHUNK):
        rows = connection.execute(select(key, value).where(
            key.in_(wanted[start:start + IN_CHUNK])))
        found.update((row[0], row[1]) for row in rows)
    return found


def dialect_of(connection: Connection):
    """The SQLAlchemy dialect module of the connection (for its `insert … ON CONFLICT`),
    imported when first needed: importing a dialect is a large part of a sync's start-up."""
    name = "postgresql" if connection.dialect.name == "postgresql" else "sqlite"
    return importlib.import_module(f"sqlalchemy.dialects.{name}")


def insert_ignoring_duplicates(connection: Connection, table, values: dict | list[dict],
                                update: Sequence[str] = ()) -> None:
    """INSERT … ON CONFLICT DO NOTHING, or DO UPDATE of the `update` columns: one statement,
    so two concurrent writers of the same key cannot both miss it and collide. A list of
    rows (distinct keys) is one executemany."""
    dialect = dialect_of(connection)
    many = isinstance(values, list)
    statement = dialect.insert(table) if many else dialect.insert(table).values(**values)
    if update:
        statement = statement.on_conflict_do_update(
            index_elements=[column.name for column in table.primary_key],
            set_={name: statement.excluded[name] for name in update})
    else:
        statement = statement.on_conflict_do_nothing()
    if many:
        connection.execute(statement, values)
    else:
        connection.execute(statement)


def lock_blob(connection: Connection, sha256: str) -> None:
    """Serialise the writer of a blob's rows and the remover of its file.

    A remover (delete, gc) deletes a file only under this lock and only if no row names the
    blob; a writer (stage_bytes) checks under it that the file is still there before it writes
    the rows. Without it, bytes staged again while the last record using them is deleted
    could get a staged row pointing at a removed file. SQLite needs nothing more (BEGIN
    IMMEDIATE serialises write transactions); PostgreSQL takes an advisory lock held until
    the transaction ends."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                           {"key": int(sha256[:15], 16)})


def blob_referenced(staged_since: float | None = None):
    """A row names the blob: a file record, or a staged upload (created since
    `staged_since`, when given)."""
    sha = schema.blobs.c.sha256
    staged = select(schema.staged.c.file_id).where(schema.staged.c.sha256 == sha)
    if staged_since is not None:
        staged = staged.where(schema.staged.c.created_ms >= staged_since)
    return or_(select(schema.files.c.file_id).where(schema.files.c.sha256 == sha).exists(),
               staged.exists())
