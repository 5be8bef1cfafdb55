"""The Archive: every read and write of statuses, events, file records and their bytes.

Write order keeps the archive crash-safe: a blob is committed before the row that names it,
and a row is deleted before its blob. So a row never points at a missing blob; a crash can
only leave an unreferenced blob, which `gc` removes after a grace period.
"""

import enum
import json
from dataclasses import dataclass
from typing import BinaryIO, Iterable, Sequence

from sqlalchemy import Connection, func, insert, select

from model.archive.cleanup import ArchiveCleanup
from model.archive.races import deciding_again
from model.archive.rows import entity_rows, insert_rows
from model.protocol.entities import Event, FileRecord, Status
from model.protocol.vocabulary import EVENT, FILE, STATUS
from model.store import schema
from model.store.blobs import BlobInfo, BlobStore, Md5Mismatch, PendingBlob
from model.store.database import Database, now_ms
from model.store.sql import IN_CHUNK, insert_ignoring_duplicates, lock_blob, values_by_key


REMOVED_WHILE_STORED = ("the bytes were removed while being stored (a concurrent delete); "
                         "send them again")

class Outcome(enum.Enum):
    STORED = "stored"        # new, now held
    HELD = "held"            # held before with the same content
    CONFLICT = "conflict"    # held before with other content; the held version is kept


class MissingStatus(Exception):
    def __init__(self, status_id: str):
        super().__init__(f"status {status_id} is not held")
        self.status_id = status_id


class MissingData(Exception):
    def __init__(self, file_ids: Sequence[str]):
        super().__init__(f"bytes of file {', '.join(file_ids)} not received")
        self.file_ids = list(file_ids)


@dataclass(frozen=True)
class ImportResult:
    outcome: Outcome
    held_hash: str | None = None   # content hash of the held version, on CONFLICT
    new_hash: str | None = None


@dataclass(frozen=True)
class BundleResult:
    """What `import_bundle` did with one entity of a bundle."""
    kind: str          # status | file | event
    entity_id: str
    result: ImportResult


@dataclass(frozen=True)
class StageResult:
    received: bool
    md5: str
    size: int
    message: str | None = None
    wrong_md5: bool = False         # not received because the bytes are not the expected ones

    @classmethod
    def refused(cls, mismatch: Md5Mismatch) -> "StageResult":
        return cls(False, mismatch.actual, mismatch.size, str(mismatch), wrong_md5=True)


class Archive(ArchiveCleanup):
    def __init__(self, database: Database, blobs: BlobStore, staged_ttl_s: float | None = None):
        """`staged_ttl_s`: staged bytes older than this no longer count as received (gc
        removes them later); None keeps them until gc."""
        self.db = database
        self.blobs = blobs
        self.staged_ttl_s = staged_ttl_s

    # -- statuses ---------------------------------------------------------------------------

    def add_status(self, status: Status) -> ImportResult:
        """Store a new status; one held already is HELD or CONFLICT, also when another
        request stored it first while this one was deciding (`model.archive.races`)."""
        def decide_and_store() -> ImportResult:
            with self.db.transaction() as tx:
                return self._add_status_into(tx, status)
        return deciding_again(decide_and_store, f"status {status.status_id}")

    def _add_status_into(self, tx: Connection, status: Status) -> ImportResult:
        new_hash = status.content_hash
        held = tx.scalar(select(schema.statuses.c.content_hash)
                         .where(schema.statuses.c.status_id == status.status_id))
        if held is not None:
            return _already_held(held, new_hash)
        tx.execute(insert(schema.statuses).values(
            status_id=status.status_id, camera_id=status.camera_id,
            valid_from=status.valid_from, valid_to=status.valid_to,
            body=status.canonical_text, content_hash=new_hash, created_ms=now_ms()))
        return ImportResult(Outcome.STORED)

    def missing_statuses(self, status_ids: Sequence[str]) -> list[str]:
        """The IDs among `status_ids` (in their order, once each) that are not held."""
        wanted = list(dict.fromkeys(status_ids))
        with self.db.reading() as conn:
            held = set(conn.scalars(select(schema.statuses.c.status_id)
                                    .where(schema.statuses.c.status_id.in_(wanted))))
        return [status_id for status_id in wanted if status_id not in held]

    def has_status(self, status_id: str) -> bool:
        return self._exists(schema.statuses.c.status_id, status_id)

    def get_status(self, status_id: str) -> Status | None:
        body = self._body(schema.statuses, schema.statuses.c.status_id, status_id)
        return None if body is None else Status.from_json(body)

    # -- bytes ------------------------------------------------------------------------------

    def stage_bytes(self, file_id: str, md5: str, source: BinaryIO | Iterable[bytes],
                    limit: int | None = None) -> StageResult:
        """Keep bytes for (file_id, md5) until a record claims them, if their MD5 matches.

        Raises `TooLarge` past `limit`; nothing is kept then.
        """
        try:
            pending = self.blobs.write(source, md5=md5, limit=limit)
        except Md5Mismatch as mismatch:
            return StageResult.refused(mismatch)
        return self.stage_pending(file_id, md5, pending)

    def stage_pending(self, file_id: str, md5: str, pending: PendingBlob) -> StageResult:
        """Commit bytes written (and checked against `md5`) by the blob store, then record
        them. The blob is in place before its rows are written: a failure in between leaves
        an unreferenced blob for `gc`, never a row without its bytes."""
        with pending:
            pending.commit()
        info = pending.info
        if not self.stage_received([(file_id, md5, info)])[0]:
            return StageResult(False, info.md5, info.size, REMOVED_WHILE_STORED)
        return StageResult(True, info.md5, info.size)

    def stage_received(self, entries: Sequence[tuple[str, str, BlobInfo]]) -> list[bool]:
        """Rows for bytes already committed to the blob store, (file_id, md5, info) each, in
        one transaction: the blob, and (file_id, md5) → blob. Per entry whether it was
        recorded: nothing is written for an entry whose file is gone by now (a delete of the
        last record using the same bytes removed it after our commit; checked under the
        blob's lock, which that removal takes too)."""
        if not entries:
            return []
        with self.db.transaction() as tx:
            shas = sorted({info.sha256 for _, _, info in entries})  # one lock order: no deadlock
            for sha in shas:
                lock_blob(tx, sha)
            present = self.blobs.existing(shas)
            kept = [info.sha256 in present for _, _, info in entries]
            created = now_ms()
            live = [entry for entry, ok in zip(entries, kept) if ok]
            blobs = {info.sha256: {"sha256": info.sha256, "md5": info.md5, "size": info.size,
                                   "created_ms": created} for _, _, info in live}
            staged = {(f, m): {"file_id": f, "md5": m, "sha256": info.sha256,
                               "created_ms": created} for f, m, info in live}
            if live:
                insert_ignoring_duplicates(tx, schema.blobs, list(blobs.values()))
                insert_ignoring_duplicates(tx, schema.staged, list(staged.values()),
                                            update=("sha256", "created_ms"))
        return kept

    def missing_data(self, records: Sequence[FileRecord]) -> list[str]:
        """IDs of the records (in their order) whose bytes with their MD5 are not here."""
        if not records:
            return []
        with self.db.reading() as conn:
            present = self._present_data(conn, records)
        return [r.file_id for r in records if (r.file_id, r.md5) not in present]

    def data_present(self, records: Sequence[FileRecord]) -> set[tuple[str, str]]:
        """Which (file_id, md5) of `records` have their bytes here, staged or stored: one
        lookup for many records (a version 2 batch)."""
        found = set()
        with self.db.reading() as conn:
            for start in range(0, len(records), IN_CHUNK):
                found |= set(self._present_data(conn, records[start:start + IN_CHUNK]))
        return found

    def has_data(self, file_id: str, md5: str) -> bool:
        with self.db.reading() as conn:
            return (file_id, md5) in self._present_data(conn, [_Key(file_id, md5)])

    def _present_data(self, conn: Connection, records) -> dict[tuple[str, str], str]:
        """(file_id, md5) → sha256 of the bytes held for them, staged or stored."""
        ids = [r.file_id for r in records]
        found = {}
        for table in (schema.staged, schema.files):
            query = select(table.c.file_id, table.c.md5, table.c.sha256).where(
                table.c.file_id.in_(ids))
            if table is schema.staged and self.staged_ttl_s is not None:
                query = query.where(table.c.created_ms >= now_ms() - self.staged_ttl_s * 1000)
            rows = conn.execute(query)
            found.update({(row.file_id, row.md5): row.sha256 for row in rows})
        return found

    def open_data(self, file_id: str) -> tuple[BinaryIO, FileRecord] | None:
        with self.db.reading() as conn:
            row = conn.execute(select(schema.files.c.sha256, schema.files.c.body)
                               .where(schema.files.c.file_id == file_id)).first()
        if row is None:
            return None
        return self.blobs.open(row.sha256), FileRecord.from_json(json.loads(row.body))

    def blob_names(self, file_ids: Sequence[str]) -> dict[str, str]:
        """{file ID: sha256 of its bytes} for the file records held among `file_ids`: what
        an exporter sending many files needs, in one query per 500 IDs (then
        `blobs.open(sha256)`)."""
        with self.db.reading() as conn:
            return values_by_key(conn, schema.files.c.file_id, schema.files.c.sha256, file_ids)

    # -- events and file records ------------------------------------------------------------

    def import_event(self, event: Event) -> ImportResult:
        """Store the event with all its file records in one transaction.

        Raises MissingStatus or MissingData (naming every file whose bytes are missing, in
        the event's order) when it cannot be stored yet.
        """
        return self._import(schema.events.c.event_id, event, event.files, event)

    def import_file(self, record: FileRecord) -> ImportResult:
        """Store a standalone file record (one that belongs to no event)."""
        return self._import(schema.files.c.file_id, record, [record], None)

    def _import(self, id_column, entity, records, event) -> ImportResult:
        """One transaction; after a lost race (another request stored this entity or one of
        its file records first) the decision is made again on what is held then: HELD, or
        CONFLICT, never an error (`model.archive.races`)."""
        def decide_and_store() -> ImportResult:
            with self.db.transaction() as tx:
                return self._import_into(tx, id_column, entity, records, event)
        return deciding_again(decide_and_store, f"{entity.kind} {entity.id}")

    def _import_into(self, tx, id_column, entity, records, event) -> ImportResult:
        """Decide and store inside the caller's transaction; raises MissingStatus or
        MissingData when the entity cannot be stored yet."""
        new_hash = entity.content_hash
        held = tx.scalar(select(id_column.table.c.content_hash).where(id_column == entity.id))
        if held is not None:
            return _already_held(held, new_hash)
        unknown = _first_missing_status(tx, [entity.status_id, *(r.status_id for r in records)])
        if unknown:
            raise MissingStatus(unknown)
        present = self._present_data(tx, records)
        missing = [r.file_id for r in records if (r.file_id, r.md5) not in present]
        if missing:
            raise MissingData(missing)
        clash = self._records_held_elsewhere(tx, records)
        if clash:
            # Under READ COMMITTED a concurrent import of this very entity may have
            # committed since our first look: then it is held, not a conflict.
            held = tx.scalar(select(id_column.table.c.content_hash)
                             .where(id_column == entity.id))
            if held is not None:
                return _already_held(held, new_hash)
            return ImportResult(Outcome.CONFLICT, clash, new_hash)
        insert_rows(tx, *entity_rows(event, records, present))
        return ImportResult(Outcome.STORED)

    def _records_held_elsewhere(self, tx: Connection, records) -> str | None:
        """A file record of this entity already held as part of another: the held hash."""
        return tx.scalar(select(schema.files.c.content_hash).where(
            schema.files.c.file_id.in_([r.file_id for r in records])).limit(1))

    def has_event(self, event_id: str) -> bool:
        return self._exists(schema.events.c.event_id, event_id)

    def has_file(self, file_id: str) -> bool:
        return self._exists(schema.files.c.file_id, file_id)

    def get_event(self, event_id: str) -> Event | None:
        body = self._body(schema.events, schema.events.c.event_id, event_id)
        return None if body is None else Event.from_json(body)

    def get_file(self, file_id: str) -> FileRecord | None:
        body = self._body(schema.files, schema.files.c.file_id, file_id)
        return None if body is None else FileRecord.from_json(body)

    def held_hash(self, kind: str, entity_id: str) -> str | None:
        """Content hash of the held status/event/file `entity_id`, or None."""
        column = {STATUS: schema.statuses.c.status_id, EVENT: schema.events.c.event_id,
                  FILE: schema.files.c.file_id}[kind]
        return self._hash_of(column, entity_id)

    def counts(self) -> dict[str, int]:
        with self.db.reading() as conn:
            return {name: conn.scalar(select(func.count()).select_from(table))
                    for name, table in (("statuses", schema.statuses),
                                        ("events", schema.events), ("files", schema.files),
                                        ("blobs", schema.blobs), ("staged", schema.staged))}

    # -- bundles ----------------------------------------------------------------------------

    def import_bundle(self, statuses: Sequence[Status], files: Sequence[FileRecord],
                      events: Sequence[Event], before_commit=None) -> list["BundleResult"]:
        """Store a bundle's statuses, standalone file records and events in ONE transaction:
        all of it becomes visible at once, or (on MissingStatus, MissingData or any error)
        none of it. Entities already held are left as they are (HELD or CONFLICT results).

        `before_commit(tx, results)` runs inside the transaction, so that what the caller
        writes about the bundle (trace events) commits or vanishes with it.

        After a lost race (another import stored some of these entities first) the whole
        transaction is decided again: those entities are then HELD, the bundle still whole.
        """
        def decide_and_store() -> list[BundleResult]:
            with self.db.transaction() as tx:
                results = [BundleResult(STATUS, s.status_id, self._add_status_into(tx, s))
                           for s in statuses]
                results += [BundleResult(FILE, r.file_id, self._import_into(
                    tx, schema.files.c.file_id, r, [r], None)) for r in files]
                results += [BundleResult(EVENT, e.event_id, self._import_into(
                    tx, schema.events.c.event_id, e, e.files, e)) for e in events]
                if before_commit is not None:
                    before_commit(tx, results)
            return results
        return deciding_again(decide_and_store, "a bundle")

    # -- helpers ----------------------------------------------------------------------------

    def _exists(self, column, value) -> bool:
        with self.db.reading() as conn:
            return conn.scalar(select(func.count()).where(column == value)) > 0

    def _body(self, table, column, value) -> dict | None:
        with self.db.reading() as conn:
            body = conn.scalar(select(table.c.body).where(column == value))
        return None if body is None else json.loads(body)

    def _hash_of(self, column, value) -> str | None:
        with self.db.reading() as conn:
            return conn.scalar(select(column.table.c.content_hash).where(column == value))


@dataclass(frozen=True)
class _Key:
    file_id: str
    md5: str


def _first_missing_status(tx: Connection, status_ids: Sequence[str]) -> str | None:
    """The first of these statuses that is not held: the event's own, then each file
    record's (a record may name another status of the same camera)."""
    wanted = list(dict.fromkeys(status_ids))
    column = schema.statuses.c.status_id
    held = set(tx.scalars(select(column).where(column.in_(wanted))))
    return next((status_id for status_id in wanted if status_id not in held), None)


def _already_held(held_hash: str, new_hash: str) -> ImportResult:
    if held_hash == new_hash:
        return ImportResult(Outcome.HELD)
    return ImportResult(Outcome.CONFLICT, held_hash, new_hash)
