"""Read-side queries of the archive: listings with keyset pagination, stored bodies, and the
few facts the handshake needs that `Archive` does not answer.

Kept apart from `Archive` (which owns writes and bytes) so that the read API can grow
without making that class longer. Bodies are returned as the stored canonical JSON text,
so what the read API sends is byte for byte what was stored.
"""

from dataclasses import dataclass
from typing import Sequence

from sqlalchemy import and_, or_, select

from model.protocol.vocabulary import EVENT, FILE, STATUS
from model.store import schema
from model.store.database import Database
from model.store.sql import values_by_key



@dataclass(frozen=True)
class Page:
    bodies: list[str]                      # canonical JSON of each entity, in order
    next_key: tuple[int, str] | None       # (time, id) of the last one, if more follow


@dataclass(frozen=True)
class Filters:
    """Search filters of a listing; `after` is inclusive, `before` exclusive (milliseconds)."""
    camera_id: str | None = None
    type: str | None = None                # event_type of events, semantic_type of files
    after: int | None = None
    before: int | None = None


_TABLES = {
    EVENT: (schema.events, "event_id", "event_time", "event_type"),
    FILE: (schema.files, "file_id", "file_time", "semantic_type"),
    STATUS: (schema.statuses, "status_id", "valid_from", None),
}


class Catalog:
    def __init__(self, database: Database):
        self.db = database

    def body(self, kind: str, entity_id: str) -> str | None:
        """The stored JSON text of status/event/file `entity_id`, or None."""
        table, id_name, _, _ = _TABLES[kind]
        with self.db.reading() as conn:
            return conn.scalar(select(table.c.body).where(table.c[id_name] == entity_id))

    def file_holders(self, file_ids: Sequence[str]) -> dict[str, str | None]:
        """{file ID: the event that holds it, None for a standalone record} for those of
        `file_ids` the archive holds: whether a file record is held as part of *another*
        entity than the one asking (`importer.handshake.taken_file_ids`)."""
        with self.db.reading() as conn:
            return values_by_key(conn, schema.files.c.file_id, schema.files.c.event_id,
                                 file_ids)

    def held_hashes(self, kind: str, entity_ids: Sequence[str]) -> dict[str, str]:
        """{entity ID: content hash} for those of `entity_ids` the archive holds as `kind`
        (status, event, file): what a version 2 batch needs, in one query per 500 IDs."""
        table, id_name, _, _ = _TABLES[kind]
        with self.db.reading() as conn:
            return values_by_key(conn, table.c[id_name], table.c.content_hash, entity_ids)

    def page(self, kind: str, filters: Filters, limit: int,
             start: tuple[int, str] | None = None) -> Page:
        """Up to `limit` events or files ordered by (time, id), strictly after `start`."""
        table, id_name, time_name, type_name = _TABLES[kind]
        time, ident = table.c[time_name], table.c[id_name]
        conditions = []
        if filters.camera_id is not None:
            conditions.append(table.c.camera_id == filters.camera_id)
        if filters.type is not None:
            conditions.append(table.c[type_name] == filters.type)
        if filters.after is not None:
            conditions.append(time >= filters.after)
        if filters.before is not None:
            conditions.append(time < filters.before)
        if start is not None:
            conditions.append(or_(time > start[0], and_(time == start[0], ident > start[1])))
        query = (select(time, ident, table.c.body).where(*conditions)
                 .order_by(time, ident).limit(limit + 1))
        with self.db.reading() as conn:
            rows = conn.execute(query).all()
        more = len(rows) > limit
        rows = rows[:limit]
        next_key = (rows[-1][0], rows[-1][1]) if more else None
        return Page([row.body for row in rows], next_key)
