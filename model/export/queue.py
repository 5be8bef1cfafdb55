"""The export queue: what each target still needs, one row per (target, entity).

Entities reach the archive by many paths (added locally, imported from another site, from a
bundle), so nothing hooks the Archive. Instead, at sync time (and when a target is added)
one `INSERT … SELECT` anti-join queues every event and standalone file that matches the
target's filter and has no row yet. It needs no cursor, so it cannot skip an entity that
committed late, and a unique (target, kind, id) plus ON CONFLICT DO NOTHING makes two
concurrent enqueuers harmless.

Statuses are never queued: the importer asks for the ones it lacks (`need_status`).

The only place with SQL for `export_queue`, but for `Targets`: removing a target removes
its rows in the same transaction, and enabling it makes its failed rows due.
"""

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import Connection, and_, func, literal, or_, select, update

from model.protocol.stored_json import StoredJson
from model.protocol.vocabulary import EVENT, FILE
from model.store import schema
from model.store.database import Database, now_ms
from model.store.sql import dialect_of

if TYPE_CHECKING:                       # targets.py reads this module's states
    from model.export.targets import Target

PENDING, DONE, FAILED = "pending", "done", "failed"
_Q = schema.export_queue.c


@dataclass(frozen=True)
class QueueItem:
    id: int
    kind: str              # EVENT | FILE
    entity_id: str
    attempts: int
    body: dict | None      # the entity's stored JSON; None if it left the archive since


@dataclass(frozen=True)
class QueueFailure:
    kind: str
    entity_id: str
    attempts: int
    last_error: str | None


def _insert(connection: Connection, columns: list[str], query):
    return dialect_of(connection).insert(schema.export_queue).from_select(columns, query) \
        .on_conflict_do_nothing()  # rowcount is unreliable here on psycopg: count RETURNING


def _count(rows) -> int:
    """How many rows a result has, read one at a time: a list of the IDs of every newly
    queued entity would be the largest thing an exporter holds, and grow with the backlog."""
    return sum(1 for _ in rows)


def _not_queued(target_id: int, kind: str, id_column):
    return ~select(_Q.id).where(_Q.target_id == target_id, _Q.kind == kind,
                                _Q.entity_id == id_column).exists()


def _time_camera_filter(target: "Target", camera_column, time_column) -> list:
    f, where = target.filter, []
    if f.camera_ids:
        where.append(camera_column.in_(f.camera_ids))
    if f.after_ms is not None:
        where.append(time_column >= f.after_ms)
    if f.before_ms is not None:
        where.append(time_column < f.before_ms)
    return where


class ExportQueue:
    def __init__(self, database: Database):
        self.db = database

    def enqueue_new(self, target: "Target") -> int:
        """Queue every matching event and standalone file that has no row for this target.

        An event-type filter excludes standalone files: they have no event type."""
        columns = ["target_id", "kind", "entity_id", "state", "attempts", "next_attempt_ms",
                   "updated_ms"]
        now, added = now_ms(), 0
        events, files = schema.events.c, schema.files.c
        with self.db.transaction() as tx:
            where = _time_camera_filter(target, events.camera_id, events.event_time)
            if target.filter.event_types:
                where.append(events.event_type.in_(target.filter.event_types))
            query = select(literal(target.target_id), literal(EVENT), events.event_id,
                           literal(PENDING), literal(0), literal(0), literal(now)) \
                .where(_not_queued(target.target_id, EVENT, events.event_id), *where) \
                .order_by(events.event_time, events.event_id)
            added += _count(tx.execute(_insert(tx, columns, query).returning(_Q.id)))
            if not target.filter.event_types:
                where = _time_camera_filter(target, files.camera_id, files.file_time)
                query = select(literal(target.target_id), literal(FILE), files.file_id,
                               literal(PENDING), literal(0), literal(0), literal(now)) \
                    .where(files.event_id.is_(None),
                           _not_queued(target.target_id, FILE, files.file_id), *where) \
                    .order_by(files.file_time, files.file_id)
                added += _count(tx.execute(_insert(tx, columns, query).returning(_Q.id)))
        return added

    def claim(self, target_id: int, after_id: int, limit: int,
              lease_s: float) -> list[QueueItem]:
        """The next page of due rows (pending, or failed whose retry time has come), leased to
        the caller for `lease_s`.

        On PostgreSQL the rows are read `FOR UPDATE SKIP LOCKED`, so workers sharing the queue
        never wait on each other nor take the same row; on SQLite the write transaction
        (BEGIN IMMEDIATE) already serialises claimers."""
        now = now_ms()
        events, files = schema.events, schema.files
        query = (select(_Q.id, _Q.kind, _Q.entity_id, _Q.attempts,
                        func.coalesce(events.c.body, files.c.body).label("body"))
                 .select_from(schema.export_queue
                              .outerjoin(events, and_(_Q.kind == EVENT,
                                                      events.c.event_id == _Q.entity_id))
                              .outerjoin(files, and_(_Q.kind == FILE,
                                                     files.c.file_id == _Q.entity_id)))
                 .where(_Q.target_id == target_id, _Q.state.in_((PENDING, FAILED)),
                        _Q.next_attempt_ms <= now, _Q.id > after_id,
                        or_(_Q.lease_until_ms.is_(None), _Q.lease_until_ms < now))
                 .order_by(_Q.id).limit(limit))
        with self.db.transaction() as tx:
            if tx.dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True, of=schema.export_queue)
            rows = tx.execute(query).all()
            if rows:
                tx.execute(update(schema.export_queue)
                           .where(_Q.id.in_([row.id for row in rows]))
                           .values(lease_until_ms=now + int(lease_s * 1000)))
        return [QueueItem(row.id, row.kind, row.entity_id, row.attempts,
                          StoredJson(row.body) if row.body else None) for row in rows]

    def release_leases(self, target_id: int) -> None:
        """Called by the new holder of a target's sync lock: any lease left on this target's
        rows belongs to a holder that is gone, so its rows are due again at once."""
        with self.db.transaction() as tx:
            tx.execute(update(schema.export_queue)
                       .where(_Q.target_id == target_id, _Q.lease_until_ms.is_not(None))
                       .values(lease_until_ms=None))

    def mark_done(self, item_id: int, note: str | None = None) -> None:
        self._set(item_id, state=DONE, attempts=_Q.attempts + 1, last_error=note)

    def mark_failed(self, item_id: int, message: str, next_attempt_ms: int) -> None:
        self._set(item_id, state=FAILED, attempts=_Q.attempts + 1, last_error=message,
                  next_attempt_ms=next_attempt_ms)

    def mark_deferred(self, item_id: int, message: str) -> None:
        """The target, not the entity, failed (unreachable, 5xx, auth): note why, keep state."""
        self._set(item_id, attempts=_Q.attempts + 1, last_error=message)

    def mark_done_many(self, item_ids: list[int]) -> None:
        """A version 2 batch: every row the importer answered complete, in one transaction."""
        self._set_many(item_ids, state=DONE, attempts=_Q.attempts + 1, last_error=None)

    def mark_deferred_many(self, item_ids: list[int], message: str) -> None:
        self._set_many(item_ids, attempts=_Q.attempts + 1, last_error=message)

    def _set_many(self, item_ids: list[int], **values) -> None:
        with self.db.transaction() as tx:
            for start in range(0, len(item_ids), 500):
                tx.execute(update(schema.export_queue)
                           .where(_Q.id.in_(item_ids[start:start + 500]))
                           .values(lease_until_ms=None, updated_ms=now_ms(), **values))

    def _set(self, item_id: int, **values) -> None:
        with self.db.transaction() as tx:
            tx.execute(update(schema.export_queue).where(_Q.id == item_id)
                       .values(lease_until_ms=None, updated_ms=now_ms(), **values))

    # -- reports ----------------------------------------------------------------------------

    def counts(self, target_id: int) -> dict[str, int]:
        """Rows per state, plus `due`: how many a sync started now would try."""
        now = now_ms()
        with self.db.reading() as conn:
            rows = conn.execute(select(_Q.state, func.count()).where(_Q.target_id == target_id)
                                .group_by(_Q.state)).all()
            due = conn.scalar(select(func.count()).where(
                _Q.target_id == target_id, _Q.state.in_((PENDING, FAILED)),
                _Q.next_attempt_ms <= now))
        counts = {PENDING: 0, DONE: 0, FAILED: 0, **dict(rows)}
        counts["due"] = due
        return counts

    def failures(self, target_id: int, limit: int = 20) -> list[QueueFailure]:
        with self.db.reading() as conn:
            rows = conn.execute(select(_Q.kind, _Q.entity_id, _Q.attempts, _Q.last_error)
                                .where(_Q.target_id == target_id, _Q.state == FAILED)
                                .order_by(_Q.updated_ms.desc(), _Q.id).limit(limit))
            return [QueueFailure(*row) for row in rows]

    def entry(self, target_id: int, kind: str, entity_id: str) -> dict | None:
        """One row as a dict (state, attempts, last_error …): for reports and tests."""
        with self.db.reading() as conn:
            row = conn.execute(select(schema.export_queue).where(
                _Q.target_id == target_id, _Q.kind == kind, _Q.entity_id == entity_id)).first()
        return None if row is None else dict(row._mapping)
